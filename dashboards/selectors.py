"""Dashboard figures, computed in PostgreSQL.

Two sources, chosen by the policy (``accounts.policy.DASHBOARD_RULES``):

- ``rows``: aggregates over ``restrict(user, "view")`` (less subjects without analytics
  consent), run inside the request's transaction
  under the user's database role, so row-level security bounds every figure as well.
- ``sanctioned_aggregates``: the executive's company-wide KPIs, read only through the
  SECURITY DEFINER functions of ``dashboards.migrations.0001_sanctioned_aggregates``; they
  return aggregates alone, with every group under the small-group threshold already replaced
  by NULL in SQL (shown as "<5").  No row about a person ever reaches Python on that path.
"""

from calendar import monthrange
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from django.db import connection
from django.db.models import Count, DateField, Q, Sum
from django.db.models.functions import TruncMonth

from accounts import policy
from accounts.models import Department, Team
from compliance.selectors import analytics_consented
from datasets.choices import OrderStatus
from datasets.models import Customer, Order, PageView

# Orders that brought money in (revenue, buyers, conversion); refunds and cancellations do not.
PAID_STATUSES = (OrderStatus.PAID, OrderStatus.SHIPPED)
TOP_PAGES = 10


@dataclass(frozen=True)
class Period:
    """Whole days ``first_day``..``last_day``, as the half-open UTC range [start, end)."""

    first_day: date
    last_day: date

    @property
    def start(self) -> datetime:
        return datetime(self.first_day.year, self.first_day.month, self.first_day.day, tzinfo=UTC)

    @property
    def end(self) -> datetime:
        return self.start + timedelta(days=(self.last_day - self.first_day).days + 1)

    def months(self) -> list[date]:
        months, current = [], self.first_day.replace(day=1)
        while current <= self.last_day:
            months.append(current)
            current = (current + timedelta(days=32)).replace(day=1)
        return months

    def whole_months(self) -> "Period":
        last = self.last_day
        return Period(self.first_day.replace(day=1), last.replace(day=monthrange(last.year, last.month)[1]))


@dataclass
class Figures:
    """What one dashboard shows: headline figures, monthly series, top pages, breakdowns."""

    totals: dict = field(default_factory=dict)
    revenue_totals: dict[str, Decimal | None] = field(default_factory=dict)  # currency -> amount
    months: list[dict] = field(default_factory=list)  # one dict per month of the period
    revenue_by_month: dict[str, dict[date, Decimal | None]] = field(default_factory=dict)  # currency -> month -> amount
    top_pages: list[dict] = field(default_factory=list)
    breakdowns: dict[str, list[dict]] = field(default_factory=dict)  # "team"/"department" -> rows


def conversion(buyers, visitors) -> float | None:
    if buyers is None or visitors is None or not visitors:
        return None
    return round(buyers / visitors, 4)


# --- Rows source (restrict + row-level security) ---------------------------------------------


def _rows(model, user, team_ids):
    # Dashboards are analytics: subjects who withdrew analytics consent, or whose processing is
    # restricted, are left out (the compliance app's one filter for every analytics path).
    queryset = analytics_consented(model.objects.restrict(user, policy.Action.VIEW))
    if team_ids is not None:
        queryset = queryset.filter(team_id__in=sorted(team_ids))
    return queryset


def _in(queryset, column: str, period: Period):
    # A plain range on the column (no cast to date), so (team_id, column) indexes serve it.
    return queryset.filter(**{f"{column}__gte": period.start, f"{column}__lt": period.end})


def _month(column: str):
    return TruncMonth(column, output_field=DateField())


_PAID = Q(status__in=PAID_STATUSES)
# COUNT(*), not COUNT(id): every aggregated column is in the covering indexes (dashboards
# migration 0002), so PostgreSQL can answer a team's range from the index alone.


def customers_by_month(user, period: Period, team_ids=None) -> dict[date, int]:
    rows = (
        _in(_rows(Customer, user, team_ids), "created_at", period)
        .annotate(month=_month("created_at"))
        .values("month")
        .annotate(n=Count("id"))
        .order_by("month")
    )
    return {row["month"]: row["n"] for row in rows}


def orders_by_month(user, period: Period, team_ids=None) -> dict[date, dict]:
    rows = (
        _in(_rows(Order, user, team_ids), "created_at", period)
        .annotate(month=_month("created_at"))
        .values("month")
        .annotate(orders=Count("*"), buyers=Count("customer_id", filter=_PAID, distinct=True))
        .order_by("month")
    )
    return {row["month"]: {"orders": row["orders"], "buyers": row["buyers"]} for row in rows}


def revenue_by_month(user, period: Period, team_ids=None) -> dict[str, dict[date, Decimal]]:
    """Paid revenue per currency and month (amounts in different currencies are never added)."""
    rows = (
        _in(_rows(Order, user, team_ids), "created_at", period)
        .filter(_PAID)
        .annotate(month=_month("created_at"))
        .values("currency", "month")
        .annotate(revenue=Sum("amount"))
        .order_by("currency", "month")
    )
    result: dict[str, dict[date, Decimal]] = {}
    for row in rows:
        result.setdefault(row["currency"], {})[row["month"]] = row["revenue"]
    return result


def page_views_by_month(user, period: Period, team_ids=None) -> dict[date, dict]:
    rows = (
        _in(_rows(PageView, user, team_ids), "timestamp", period)
        .annotate(month=_month("timestamp"))
        .values("month")
        .annotate(views=Count("*"), visitors=Count("customer_id", distinct=True))
        .order_by("month")
    )
    return {row["month"]: {"views": row["views"], "visitors": row["visitors"]} for row in rows}


def order_totals(user, period: Period, team_ids=None) -> dict:
    return _in(_rows(Order, user, team_ids), "created_at", period).aggregate(
        orders=Count("*"), buyers=Count("customer_id", filter=_PAID, distinct=True)
    )


def page_view_totals(user, period: Period, team_ids=None) -> dict:
    return _in(_rows(PageView, user, team_ids), "timestamp", period).aggregate(
        views=Count("*"), visitors=Count("customer_id", distinct=True)
    )


def top_pages(user, period: Period, team_ids=None, limit: int = TOP_PAGES) -> list[dict]:
    rows = (
        _in(_rows(PageView, user, team_ids), "timestamp", period)
        .values("page")
        .annotate(views=Count("*"), visitors=Count("customer_id", distinct=True))
        .order_by("-views", "page")[:limit]
    )
    return [dict(row) for row in rows]


def breakdown(user, period: Period, by: str, team_ids=None) -> list[dict]:
    """Per team or per department: new customers, orders, buyers, visitors, conversion, revenue."""
    key = {"team": "team_id", "department": "team__department_id"}[by]
    customers = {
        row[key]: row["n"]
        for row in _in(_rows(Customer, user, team_ids), "created_at", period).values(key).annotate(n=Count("id"))
    }
    orders = {
        row[key]: row
        for row in _in(_rows(Order, user, team_ids), "created_at", period)
        .values(key)
        .annotate(orders=Count("*"), buyers=Count("customer_id", filter=_PAID, distinct=True))
    }
    revenue: dict[int, dict[str, Decimal]] = {}
    for row in (
        _in(_rows(Order, user, team_ids), "created_at", period)
        .filter(_PAID)
        .values(key, "currency")
        .annotate(revenue=Sum("amount"))
    ):
        revenue.setdefault(row[key], {})[row["currency"]] = row["revenue"]
    views = {
        row[key]: row
        for row in _in(_rows(PageView, user, team_ids), "timestamp", period)
        .values(key)
        .annotate(views=Count("*"), visitors=Count("customer_id", distinct=True))
    }
    ids = set(customers) | set(orders) | set(views)
    if by == "team":
        scope = team_ids if team_ids is not None else policy.access(user, policy.Action.VIEW).team_ids
        if policy.access(user, policy.Action.VIEW).scope != policy.Scope.ALL:
            ids |= set(scope)
        names = dict(Team.objects.filter(pk__in=ids).values_list("pk", "name"))
    else:
        names = dict(Department.objects.filter(pk__in=ids).values_list("pk", "name"))
    result = []
    for pk in sorted(ids, key=lambda i: names.get(i, "")):
        buyers = orders.get(pk, {}).get("buyers", 0)
        visitors = views.get(pk, {}).get("visitors", 0)
        result.append(
            {
                "name": names.get(pk, "?"),
                "new_customers": customers.get(pk, 0),
                "orders": orders.get(pk, {}).get("orders", 0),
                "buyers": buyers,
                "views": views.get(pk, {}).get("views", 0),
                "visitors": visitors,
                "conversion": conversion(buyers, visitors),
                "revenue": revenue.get(pk, {}),
            }
        )
    return result


def row_figures(user, period: Period, team_ids=None, breakdowns: tuple[str, ...] = ()) -> Figures:
    """An analyst's, manager's or admin's dashboard: everything within restrict(user, "view")."""
    customers = customers_by_month(user, period, team_ids)
    orders = orders_by_month(user, period, team_ids)
    views = page_views_by_month(user, period, team_ids)
    revenue = revenue_by_month(user, period, team_ids)
    order_sum = order_totals(user, period, team_ids)
    view_sum = page_view_totals(user, period, team_ids)
    figures = Figures()
    figures.totals = {
        "new_customers": sum(customers.values()),
        "orders": order_sum["orders"],
        "buyers": order_sum["buyers"],
        "views": view_sum["views"],
        "visitors": view_sum["visitors"],
        "conversion": conversion(order_sum["buyers"], view_sum["visitors"]),
    }
    figures.revenue_by_month = revenue
    figures.revenue_totals = {currency: sum(by_month.values(), Decimal(0)) for currency, by_month in revenue.items()}
    for month in period.months():
        o, v = orders.get(month, {}), views.get(month, {})
        figures.months.append(
            {
                "month": month,
                "new_customers": customers.get(month, 0),
                "orders": o.get("orders", 0),
                "buyers": o.get("buyers", 0),
                "views": v.get("views", 0),
                "visitors": v.get("visitors", 0),
                "conversion": conversion(o.get("buyers", 0), v.get("visitors", 0)),
            }
        )
    figures.top_pages = top_pages(user, period, team_ids)
    for by in breakdowns:
        figures.breakdowns[by] = breakdown(user, period, by, team_ids)
    return figures


# --- Sanctioned aggregates (executive) -------------------------------------------------------
# Constant statements; the functions are created by this app's migrations.
_KPIS_SQL = "SELECT new_customers, visitors, views, buyers, orders, conversion FROM portal_dash_kpis(%s, %s)"
_MONTHLY_SQL = (
    "SELECT month, new_customers, visitors, views, buyers, orders, conversion FROM portal_dash_monthly(%s, %s)"
)
_REVENUE_SQL = "SELECT month, currency, revenue FROM portal_dash_revenue(%s, %s)"
_DEPARTMENTS_SQL = (
    "SELECT department, new_customers, visitors, views, buyers, orders, conversion FROM portal_dash_departments(%s, %s)"
)
_TOP_PAGES_SQL = "SELECT page, views, visitors FROM portal_dash_top_pages(%s, %s, %s)"
_THRESHOLD_SQL = "SELECT portal_small_group_threshold()"
_MONTH_FIGURES = ("new_customers", "visitors", "views", "buyers", "orders", "conversion")


def _fetch(statement: str, params) -> list[dict]:
    with connection.cursor() as cursor:
        cursor.execute(statement, params)
        names = [column.name for column in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def _number(value):
    return float(value) if isinstance(value, Decimal) else value


def sanctioned_figures(period: Period) -> Figures:
    """Company-wide KPIs for the executive: aggregates only, small groups already NULL."""
    bounds = [period.start, period.end]
    figures = Figures()
    kpis = _fetch(_KPIS_SQL, bounds)
    figures.totals = {k: _number(v) for k, v in (kpis[0] if kpis else {}).items()}
    monthly = {row["month"]: row for row in _fetch(_MONTHLY_SQL, bounds)}
    for month in period.months():
        row = monthly.get(month) or {k: 0 for k in _MONTH_FIGURES} | {"conversion": None}
        figures.months.append({"month": month, **{k: _number(row[k]) for k in _MONTH_FIGURES}})
    for row in _fetch(_REVENUE_SQL, bounds):
        figures.revenue_by_month.setdefault(row["currency"], {})[row["month"]] = row["revenue"]
    # A currency total is shown only when no month of it was suppressed; otherwise the total
    # minus the shown months would give the small group's amount away.
    for currency, by_month in figures.revenue_by_month.items():
        amounts = list(by_month.values())
        figures.revenue_totals[currency] = None if any(a is None for a in amounts) else sum(amounts, Decimal(0))
    figures.top_pages = [
        {k: _number(v) for k, v in row.items()} for row in _fetch(_TOP_PAGES_SQL, [*bounds, TOP_PAGES])
    ]
    figures.breakdowns["department"] = [
        {"name": row.pop("department"), **{k: _number(v) for k, v in row.items()}}
        for row in _fetch(_DEPARTMENTS_SQL, bounds)
    ]
    return figures


def database_small_group_threshold() -> int:
    return _fetch(_THRESHOLD_SQL, [])[0]["portal_small_group_threshold"]


def team_choices(user) -> list[tuple[int, str]]:
    """Teams a dashboard or list filter may narrow to: the user's view scope (all for "all")."""
    grant = policy.access(user, policy.Action.VIEW)
    teams = Team.objects.order_by("name")
    if grant.scope != policy.Scope.ALL:
        teams = teams.filter(pk__in=sorted(grant.team_ids))
    return list(teams.values_list("pk", "name"))
