"""Benchmark: an analyst's orders through restrict() + row-level security vs. the owner's plain SQL.

Issue requirement: with 1,000,000 orders, an analyst's list page and a grouped aggregate through
``restrict()`` + row-level security, against the same SQL run by the table owner with an explicit
WHERE in the same run; target at most 1.25 for each.  Measured interleaved over many rounds
(medians), all in one process on one database:

(a) list page, the first page of 100 orders as ``/api/v1/orders/`` produces it (COUNT(*), then
    ``ORDER BY id LIMIT 100``):
    - ORM: ``with scoped(analyst): Order.objects.restrict(analyst, "view")`` count + first 100
      (the security context's transaction and SET LOCALs included) vs. the owner running
      ``... WHERE team_id = ANY(%s)`` count + ``ORDER BY id LIMIT 100``;
    - HTTP: ``GET /api/v1/orders/?page_size=100`` with a knox token (django.test.Client), against
      the same request stack over the owner alias with an explicit team filter
      (``bench/baseline.py``), and (for scale) against the owner's plain SQL;
(b) grouped aggregate: ``report_definitions.run(analyst, orders / sum_amount / month)`` under
    ``scoped(analyst)`` vs. the owner's ``date_trunc('month', ...)``, ``sum(amount)``,
    ``WHERE team_id = ANY(%s) GROUP BY 1 ORDER BY 1``.

For (a) and (b) the owner also runs the app's own statements, captured from the secured paths
(restrict()'s ``team_id IN (...)`` is the explicit WHERE there): that ratio is RLS + the security
context alone, even when the app's queries grow other conditions (e.g. consent exclusions).

Then EXPLAIN (ANALYZE, BUFFERS) of the exact statements the secured paths ran, through the app
connection inside ``scoped(analyst)`` (so under RLS), and of the owner's SQL.  A figure to
report, not a test: it exits 0.

Run: ``scripts/services.py -- .venv/bin/python bench/orders_rls.py [--orders N]``.  Data lives in
``<DATABASE_URL name>_bench_orders``: migrated, demo organisation, ``--customers`` demo customers
(with their demo orders), then topped up to ``--orders`` with one INSERT ... SELECT
generate_series (orders spread at random over the customers, hence ~1/6 per team, ids in
created_at order), then VACUUM ANALYZEd.  Reruns reuse the rows.
"""

import argparse
import os
import re
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

ANALYST_EMAIL = "analyst1.north@demo.portal.test"
SECURED_PATH = "/api/v1/orders/"
PAGE_SIZE = 100
TARGET = 1.25
REPORT = {"dataset": "orders", "aggregate": "sum_amount", "group_by": "month"}
HISTORY_DAYS = 730
DATE_RANGE_DAYS = 90  # the extra, untimed EXPLAIN of a date-ranged report
ROWS = re.compile(r"\brows=(\d+)")
SEED = 0.4242

# The owner's SQL: the same statements with an explicit WHERE instead of restrict() + RLS.
OWNER_COUNT_SQL = "SELECT count(*) FROM datasets_order WHERE team_id = ANY(%s)"
OWNER_PAGE_SQL = (
    "SELECT id, customer_id, team_id, amount, currency, status, created_at FROM datasets_order"
    " WHERE team_id = ANY(%s) ORDER BY id LIMIT 100"
)
# TruncMonth under USE_TZ with TIME_ZONE = "UTC" is date_trunc on the UTC wall time.
OWNER_AGGREGATE_SQL = (
    "SELECT date_trunc('month', created_at AT TIME ZONE 'UTC') AS month, sum(amount) FROM datasets_order"
    " WHERE team_id = ANY(%s) GROUP BY 1 ORDER BY 1"
)

# Orders spread at random over the existing customers (team copied from the customer), amounts
# 5.00-500.00, created_at rising with the id over HISTORY_DAYS.  Every value is a parameter; the
# {extra_columns} are the model's other columns (constant identifiers), given their defaults.
GENERATE_ORDERS_SQL = """
INSERT INTO datasets_order (customer_id, team_id, amount, currency, status, created_at{extra_columns})
SELECT c.ids[s.k], c.teams[s.k],
       round((5 + random() * 495)::numeric, 2),
       (%(currencies)s::text[])[1 + floor(random() * cardinality(%(currencies)s::text[]))::int],
       (%(statuses)s::text[])[1 + floor(random() * cardinality(%(statuses)s::text[]))::int],
       %(now)s::timestamptz - make_interval(secs => %(span)s::float8 * (%(count)s - s.g) / %(count)s){extra_values}
FROM (SELECT array_agg(id ORDER BY id) AS ids, array_agg(team_id ORDER BY id) AS teams, count(*) AS n
      FROM datasets_customer) c,
     LATERAL (SELECT g, 1 + floor(random() * c.n)::int AS k FROM generate_series(1, %(count)s) g) s
"""
TRIM_ORDERS_SQL = "DELETE FROM datasets_order WHERE id >= (SELECT id FROM datasets_order ORDER BY id OFFSET %s LIMIT 1)"


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=1_000_000, help="orders in the bench database (default 1000000)")
    parser.add_argument("--customers", type=int, default=20_000, help="demo customers (default 20000)")
    parser.add_argument("--rounds", type=int, default=40, help="interleaved measured rounds (default 40)")
    parser.add_argument("--warmup", type=int, default=5, help="unmeasured rounds first (default 5)")
    parser.add_argument("--no-explain", action="store_true", help="skip the EXPLAIN (ANALYZE, BUFFERS) section")
    return parser.parse_args(argv)


def prepare_data(customers: int, orders: int) -> tuple[int, int]:
    """Migrate, demo organisation and customers, orders topped up (or trimmed) to ``orders``."""
    from django.core.management import call_command
    from django.db import connections
    from django.utils import timezone

    from accounts.services import generate_password
    from datasets import demo
    from datasets.choices import OrderStatus
    from datasets.models import Customer

    call_command("migrate", database="owner", verbosity=0)
    demo.seed_organisation(generate_password())
    owner = connections["owner"]
    with owner.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM datasets_customer")
        existing = cursor.fetchone()[0]
    if existing < customers:
        print(f"seeding customers: {existing} -> {customers} (with their demo orders and page views)", flush=True)
        started = time.perf_counter()
        demo.seed_customers(customers)
        print(f"  done ({time.perf_counter() - started:.0f}s)", flush=True)
    with owner.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM datasets_order")
        existing_orders = cursor.fetchone()[0]
        if existing_orders < orders:
            missing = orders - existing_orders
            print(f"generating orders: {existing_orders} -> {orders} (one INSERT ... SELECT)", flush=True)
            started = time.perf_counter()
            statement, extra_params = generate_orders_statement(owner)
            cursor.execute("SELECT setseed(%s)", [SEED])
            cursor.execute(
                statement,
                {
                    "currencies": ["EUR", "EUR", "USD", "GBP"],
                    "statuses": [status.value for status in OrderStatus],
                    "now": timezone.now(),
                    "span": float(timedelta(days=HISTORY_DAYS).total_seconds()),
                    "count": missing,
                    **extra_params,
                },
            )
            print(f"  done ({time.perf_counter() - started:.0f}s)", flush=True)
        elif existing_orders > orders:
            print(f"trimming orders: {existing_orders} -> {orders} (highest ids go)", flush=True)
            cursor.execute(TRIM_ORDERS_SQL, [orders])
        # Bulk-loaded rows have no statistics and no visibility map yet; a live table has both.
        cursor.execute("VACUUM (ANALYZE) datasets_order")
        cursor.execute("VACUUM (ANALYZE) datasets_customer")
        cursor.execute("SELECT count(*) FROM datasets_order")
        total_orders = cursor.fetchone()[0]
    return Customer.objects.using("owner").count(), total_orders


def generate_orders_statement(owner) -> tuple[str, dict]:
    """GENERATE_ORDERS_SQL with the model's other NOT NULL columns (e.g. ``anonymised``) set to
    their constant defaults, so the bench follows schema changes; the values stay parameters."""
    from psycopg import sql

    from datasets.models import Order

    generated = {"id", "customer_id", "team_id", "amount", "currency", "status", "created_at"}
    columns, values, params = [], [], {}
    for field in Order._meta.concrete_fields:
        if field.column in generated or field.null:
            continue
        if not field.has_default() or callable(field.default):
            sys.exit(f"bench/orders_rls.py does not know what to put in datasets_order.{field.column}")
        name = f"extra_{len(params)}"
        columns.append(sql.SQL(", ") + sql.Identifier(field.column))
        values.append(sql.SQL(f", %({name})s"))
        params[name] = field.get_db_prep_save(field.default, owner)
    owner.ensure_connection()
    statement = sql.SQL(GENERATE_ORDERS_SQL).format(
        extra_columns=sql.Composed(columns), extra_values=sql.Composed(values)
    )
    return statement.as_string(owner.connection), params


def stats(samples: list[float]) -> dict[str, float]:
    ms = sorted(s * 1000 for s in samples)
    return {
        "median": statistics.median(ms),
        "p90": statistics.quantiles(ms, n=10)[8] if len(ms) > 1 else ms[0],
        "min": ms[0],
    }


class Capture:
    """Statements run on one connection (sql, params, seconds) via execute_wrapper."""

    def __init__(self):
        self.statements = []

    def __call__(self, execute, sql, params, many, context):
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            text = sql if isinstance(sql, str) else sql.as_string(context["cursor"].cursor)  # psycopg Composed
            self.statements.append((text, params, time.perf_counter() - started))


def is_scope_statement(sql: str) -> bool:
    """The security context's own statements (save / set / restore the SET LOCALs)."""
    return "set_config(" in sql or "current_setting('role')" in sql


def main(argv=None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    from bench.bench_db import use_bench_database

    db_name = use_bench_database("_bench_orders")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
    import django

    django.setup()

    from django.conf import settings
    from django.db import DatabaseError, connections
    from django.test import Client, override_settings
    from knox.models import AuthToken

    from accounts import policy
    from accounts.models import User
    from bench.baseline import BASELINE_ORDERS_PATH, owner_orders
    from datasets import report_definitions
    from datasets.models import Order
    from portal.security_context import scoped

    customers, total = prepare_data(args.customers, args.orders)
    analyst = User.objects.get(email=ANALYST_EMAIL)
    grant = policy.access(analyst, policy.Action.VIEW)
    if grant.role != policy.Role.ANALYST or not grant.team_ids:
        sys.exit(f"{ANALYST_EMAIL} should be an analyst with a team; got {grant}")
    team_ids = sorted(grant.team_ids)
    owner = connections["owner"]
    with owner.cursor() as cursor:
        cursor.execute("SELECT team_id, count(*) FROM datasets_order GROUP BY 1 ORDER BY 1")
        per_team = cursor.fetchall()

    # --- the six measured operations -------------------------------------------------------
    def orm_secured():
        with scoped(analyst):
            queryset = Order.objects.restrict(analyst, policy.Action.VIEW).order_by("id")
            count = queryset.count()  # the paginator counts first, then slices
            rows = list(queryset[:PAGE_SIZE])
        return count, [row.id for row in rows]

    def orm_owner():
        # The same ORM work (queryset, count, 100 instances) on the owner alias: no RLS, no scope.
        queryset = owner_orders(team_ids)
        count = queryset.count()
        return count, [row.id for row in queryset[:PAGE_SIZE]]

    def owner_page():
        with owner.cursor() as cursor:
            cursor.execute(OWNER_COUNT_SQL, [team_ids])
            count = cursor.fetchone()[0]
            cursor.execute(OWNER_PAGE_SQL, [team_ids])
            rows = cursor.fetchall()
        return count, [row[0] for row in rows]

    def aggregate_secured():
        with scoped(analyst):
            return report_definitions.run(analyst, dict(REPORT))

    def owner_aggregate():
        with owner.cursor() as cursor:
            cursor.execute(OWNER_AGGREGATE_SQL, [team_ids])
            return cursor.fetchall()

    token_row, token = AuthToken.objects.create(analyst, expiry=timedelta(hours=2))
    client = Client()
    auth = {"HTTP_AUTHORIZATION": f"Token {token}"}
    teams_param = ",".join(map(str, team_ids))

    def http_secured():
        return client.get(SECURED_PATH, {"page_size": PAGE_SIZE}, **auth)

    def http_baseline():
        return client.get(BASELINE_ORDERS_PATH, {"teams": teams_param, "page_size": PAGE_SIZE})

    # The owner also runs the app's own statements (captured once from the secured paths): the
    # ORM's WHERE (restrict()'s team filter, and whatever else the app adds) minus RLS and the scope.
    page_statements = secured_statements(orm_secured)
    aggregate_statements = secured_statements(aggregate_secured)
    if len(page_statements) != 2 or len(aggregate_statements) != 1:
        sys.exit(f"expected 2 + 1 secured statements, captured {len(page_statements)} + {len(aggregate_statements)}")

    def owner_exact_page():
        (count_sql, count_params), (page_sql, page_params) = page_statements
        with owner.cursor() as cursor:
            cursor.execute(count_sql, count_params)
            count = cursor.fetchone()[0]
            cursor.execute(page_sql, page_params)
            rows = cursor.fetchall()
        return count, [row[0] for row in rows]

    def owner_exact_aggregate():
        ((sql, params),) = aggregate_statements
        with owner.cursor() as cursor:
            cursor.execute(sql, params)
            return cursor.fetchall()

    operations = {
        "orm_secured": orm_secured,
        "owner_page": owner_page,
        "owner_exact_page": owner_exact_page,
        "orm_owner": orm_owner,
        "http_secured": http_secured,
        "http_baseline": http_baseline,
        "aggregate_secured": aggregate_secured,
        "owner_aggregate": owner_aggregate,
        "owner_exact_aggregate": owner_exact_aggregate,
    }

    hosts = [*settings.ALLOWED_HOSTS, "testserver"]
    try:
        with override_settings(SECURE_SSL_REDIRECT=False, ALLOWED_HOSTS=hosts, ROOT_URLCONF="bench.baseline"):
            check_same_results(
                orm_secured(), owner_page(), owner_exact_page(), orm_owner(), http_secured(), http_baseline()
            )
            check_same_aggregate(aggregate_secured(), owner_aggregate(), owner_exact_aggregate())

            names = list(operations)
            load_before = os.getloadavg()[0]
            for _ in range(args.warmup):
                for name in names:
                    operations[name]()
            samples = {name: [] for name in names}
            for round_no in range(args.rounds):
                # Rotate the order so no operation always runs right after the same other one.
                shift = round_no % len(names)
                for name in names[shift:] + names[:shift]:
                    started = time.perf_counter()
                    result = operations[name]()
                    samples[name].append(time.perf_counter() - started)
                    if name.startswith("http") and result.status_code != 200:
                        sys.exit(f"{name} answered {result.status_code}: {result.content[:300]!r}")

            team_rows = sum(n for team, n in per_team if team in grant.team_ids)
            print(
                f"\ndatabase {db_name}: {total} orders, {customers} customers; orders per team:"
                f" {', '.join(f'{team}: {n}' for team, n in per_team)}"
            )
            print(
                f"analyst {ANALYST_EMAIL}: teams {team_ids} ({team_rows} orders, {team_rows / total:.1%});"
                f" {args.rounds} rounds (rotated order) after {args.warmup} warm-up rounds"
            )
            print(
                f"machine: {os.cpu_count()} CPUs, 1-minute load average {load_before:.2f} before and"
                f" {os.getloadavg()[0]:.2f} after the measured rounds (other work on the machine skews ratios)"
            )
            print(f"\n{'operation':<58} {'median ms':>10} {'p90 ms':>8} {'min ms':>8}")
            labels = {
                "orm_secured": "(a) ORM: scoped(analyst) restrict() count + page (RLS)",
                "owner_page": "(a) owner SQL: count + page, WHERE team_id = ANY(%s)",
                "owner_exact_page": "(a) owner runs the app's own count + page statements",
                "orm_owner": "(a) ORM on the owner alias: count + page (no RLS, no scope)",
                "http_secured": "(a) HTTP: GET /api/v1/orders/ (knox token, RLS)",
                "http_baseline": "(a) HTTP baseline: same stack, owner alias, team filter",
                "aggregate_secured": "(b) report_definitions.run under scoped(analyst) (RLS)",
                "owner_aggregate": "(b) owner SQL: date_trunc month, sum, GROUP BY",
                "owner_exact_aggregate": "(b) owner runs the app's own aggregate statement",
            }
            figures = {name: stats(samples[name]) for name in names}
            for name in names:
                f = figures[name]
                print(f"{labels[name]:<58} {f['median']:>10.2f} {f['p90']:>8.2f} {f['min']:>8.2f}")

            print(f"\n{'ratio of medians (ratio of minimums: less sensitive to other load)':<70}")
            rows = [
                ("(a) list page, ORM restrict()+RLS / owner SQL", "orm_secured", "owner_page", TARGET),
                ("(b) grouped aggregate, run()+RLS / owner SQL", "aggregate_secured", "owner_aggregate", TARGET),
                (
                    "(a) list page, ORM restrict()+RLS / owner, app's statements",
                    "orm_secured",
                    "owner_exact_page",
                    TARGET,
                ),
                (
                    "(b) grouped aggregate, run()+RLS / owner, app's statement",
                    "aggregate_secured",
                    "owner_exact_aggregate",
                    TARGET,
                ),
                ("(a) list page, HTTP secured / HTTP owner baseline", "http_secured", "http_baseline", TARGET),
                ("(a) list page, HTTP secured / owner SQL (+ request stack)", "http_secured", "owner_page", None),
                # The list page's overhead split: RLS + scope with the ORM on both sides, then the ORM alone.
                ("(a) split: ORM restrict()+RLS / ORM on the owner alias", "orm_secured", "orm_owner", None),
                ("(a) split: ORM on the owner alias / owner SQL", "orm_owner", "owner_page", None),
            ]
            for label, secured, baseline, target in rows:
                value = figures[secured]["median"] / figures[baseline]["median"]
                at_min = figures[secured]["min"] / figures[baseline]["min"]
                verdict = "no target" if target is None else ("meets" if value <= target else "MISSES")
                verdict += "" if target is None else f" target <= {target}"
                print(f"{label:<64} = {value:5.2f}  ({verdict}; minimums {at_min:.2f})")

            print_sql_split(operations)
            print_fixed_costs(analyst)
            if not args.no_explain:
                print_plans(analyst, team_ids, orm_secured, aggregate_secured)
    finally:
        try:
            token_row.delete()
        except DatabaseError as exc:  # the bench token expires by itself in two hours
            print(f"\n(could not delete the bench token: {exc.__class__.__name__}: {str(exc).splitlines()[0]})")
    return 0


def secured_statements(fetch) -> list[tuple[str, object]]:
    """The statements one secured call runs on the app connection, less the scope's own."""
    from django.db import connections

    capture = Capture()
    with connections["default"].execute_wrapper(capture):
        fetch()
    return [(sql, params) for sql, params, _ in capture.statements if not is_scope_statement(sql)]


def check_same_results(orm, owner, owner_exact, orm_owner, http, http_base) -> None:
    """Every path must list the same rows, or the ratios mean nothing."""
    for label, response in (("HTTP secured", http), ("HTTP baseline", http_base)):
        if response.status_code != 200:
            sys.exit(f"{label} answered {response.status_code}: {response.content[:300]!r}")
    http_body, base_body = http.json(), http_base.json()
    http_page = (http_body["count"], [row["id"] for row in http_body["results"]])
    base_page = (base_body["count"], [row["id"] for row in base_body["results"]])
    if not (orm == owner == owner_exact == orm_owner == http_page == base_page):
        sys.exit("the secured and owner paths list different orders")
    if len(orm[1]) != PAGE_SIZE:
        sys.exit(f"{len(orm[1])} orders on the first page, expected {PAGE_SIZE} (too few orders?)")


def check_same_aggregate(secured: list[dict], owner: list[tuple], owner_exact: list[tuple]) -> None:
    secured_rows = [(row["group"][:10], row["value"]) for row in secured]
    for label, rows, fatal in (("owner SQL", owner, False), ("owner, app's statement", owner_exact, True)):
        owner_rows = [(month.date().isoformat(), f"{total:.2f}") for month, total in rows]
        if secured_rows != owner_rows:
            message = f"the aggregates differ: secured {secured_rows[:3]}... {label} {owner_rows[:3]}..."
            if fatal:
                sys.exit(message)
            # The app may leave rows out beyond the team scope (e.g. withdrawn analytics consent).
            print(f"note: {message}")


def print_sql_split(operations, repeats: int = 15) -> None:
    """How much of each path is SQL, and for the secured paths the security context's statements."""
    from django.db import connections

    print("\nwhere the time goes (medians over", repeats, "calls; SQL = time in the driver):")
    for name in operations:
        totals, scope, data, counts = [], [], [], []
        for _ in range(repeats):
            default, owner = Capture(), Capture()
            started = time.perf_counter()
            with (
                connections["default"].execute_wrapper(default),
                connections["owner"].execute_wrapper(owner),
            ):
                operations[name]()
            totals.append(time.perf_counter() - started)
            statements = default.statements + owner.statements
            scope.append(sum(s for sql, _, s in statements if is_scope_statement(sql)))
            data.append(sum(s for sql, _, s in statements if not is_scope_statement(sql)))
            counts.append((len(statements), sum(1 for sql, _, _ in statements if is_scope_statement(sql))))
        queries, scope_queries = counts[-1]
        print(
            f"  {name:<22} total {statistics.median(totals) * 1000:7.2f} ms;"
            f" SQL {statistics.median(data) * 1000:7.2f} ms in {queries - scope_queries} statements"
            f" + scope set/restore {statistics.median(scope) * 1000:5.2f} ms in {scope_queries}"
        )


def time_calls(function, repeats: int = 30) -> float:
    """Median ms of one call."""
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples) * 1000


def print_fixed_costs(analyst) -> None:
    """The security context's own per-call cost, which does not grow with the data."""
    from portal.security_context import scoped

    def scope_alone():
        with scoped(analyst):
            pass

    from django.db import connections

    capture = Capture()
    with connections["default"].execute_wrapper(capture):
        scope_alone()
    label = f"scoped(analyst) alone: BEGIN, {len(capture.statements)} scope statement(s), COMMIT"
    print(f"\nfixed cost per call (median of 30): {label}: {time_calls(scope_alone):.2f} ms")


def print_plans(analyst, team_ids, orm_secured, aggregate_secured) -> None:
    """EXPLAIN (ANALYZE, BUFFERS) of the statements the secured paths ran, re-run under the
    analyst's scope on the app connection (so through RLS), and of the owner's SQL."""
    from django.db import connections
    from django.utils import timezone

    from datasets import report_definitions
    from portal.security_context import scoped

    def ranged_aggregate():
        # Not timed: the same report over the last DATE_RANGE_DAYS, where (team_id, created_at) could serve.
        since = (timezone.now() - timedelta(days=DATE_RANGE_DAYS)).date().isoformat()
        with scoped(analyst):
            return report_definitions.run(analyst, {**REPORT, "date_from": since})

    statements = [
        st for fetch in (orm_secured, aggregate_secured, ranged_aggregate) for st in secured_statements(fetch)
    ]

    labels = [
        "count (secured)",
        "first page (secured)",
        "month aggregate (secured)",
        f"month aggregate with date_from = {DATE_RANGE_DAYS} days ago (secured, not timed)",
    ]
    if len(statements) != len(labels):
        print(f"\n(expected {len(labels)} secured statements, captured {len(statements)}: plans skipped)")
        return
    print("\nEXPLAIN (ANALYZE, BUFFERS), secured statements re-run in scoped(analyst) on the app connection:")
    for label, (sql, params) in zip(labels, statements, strict=True):
        with scoped(analyst), connections["default"].cursor() as cursor:
            cursor.execute("SELECT current_user, current_setting('portal.team_ids', true)")
            role, teams = cursor.fetchone()
            # ``sql`` is the ORM's own statement text just captured; the values stay parameters.
            cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + sql, params)
            plan = [row[0] for row in cursor.fetchall()]
        print_plan(f"{label} as {role}, portal.team_ids={teams!r}", " ".join(sql.split()), plan)

    print("\nEXPLAIN (ANALYZE, BUFFERS), the owner's SQL (superuser: RLS bypassed):")
    for label, sql in (
        ("count (owner)", OWNER_COUNT_SQL),
        ("first page (owner)", OWNER_PAGE_SQL),
        ("month aggregate (owner)", OWNER_AGGREGATE_SQL),
    ):
        with connections["owner"].cursor() as cursor:
            cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + sql, [team_ids])
            plan = [row[0] for row in cursor.fetchall()]
        print_plan(label, sql, plan)


def print_plan(label: str, sql: str, plan: list[str]) -> None:
    print(f"\n  -- {label}\n     SQL: {sql[:400]}")
    for line in plan:
        print(f"     {line[:200]}")
    print(f"     => {plan_summary(plan)}")


def plan_summary(plan: list[str]) -> str:
    """Which scan nodes and indexes the plan used, and where the RLS predicate ended up."""
    nodes, rls = [], []
    node = ""
    for line in plan:
        text = line.strip().removeprefix("->").strip()
        for kind in ("Index Only Scan", "Index Scan", "Bitmap Index Scan", "Bitmap Heap Scan", "Seq Scan"):
            if text.startswith(kind) or text.startswith(f"Parallel {kind}"):
                node = text.split("  (")[0]
                rows = ROWS.findall(text)  # planned, then actual (the estimate shows the predicates' selectivity)
                nodes.append(f"{node} (rows est. {rows[0]}, actual {rows[1]})" if len(rows) == 2 else node)
                break
        if "portal.team_ids" in text or "portal_team_ids" in text:
            where = text.split(":")[0]
            rls.append(f"{where} of [{node}]")
    used = "; ".join(nodes) or "no scan node"
    placed = "; ".join(rls) if rls else "not in the plan (owner SQL, or folded away)"
    return f"scans: {used} | RLS predicate: {placed}"


if __name__ == "__main__":
    sys.exit(main())
