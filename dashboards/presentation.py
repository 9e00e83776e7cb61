"""Figures -> what a page shows: headline tiles, and panels that pair a chart with its table.

A chart's data goes to the page through ``json_script`` (read by ``dashboards/js/charts.js``);
the table beside it shows the same numbers as text for screen readers and for copying.  On the
executive's dashboard a value the SQL suppressed (NULL) is shown as "<5" and drawn as a gap.
"""

from dataclasses import dataclass, field
from decimal import Decimal

from accounts.policy import SMALL_GROUP_THRESHOLD
from dashboards.selectors import Figures

SUPPRESSED = f"<{SMALL_GROUP_THRESHOLD}"
NOT_APPLICABLE = "–"


@dataclass
class Panel:
    key: str
    title: str
    chart: dict
    columns: list[str]
    rows: list[list[str]] = field(default_factory=list)
    note: str = ""

    @property
    def dom_id(self) -> str:
        return f"chart-data-{self.key}"


class Formatter:
    def __init__(self, suppressed: bool):
        self.missing = SUPPRESSED if suppressed else NOT_APPLICABLE

    def count(self, value) -> str:
        return self.missing if value is None else f"{int(value):,}"

    def money(self, value) -> str:
        return self.missing if value is None else f"{Decimal(value):,.2f}"

    def percent(self, value) -> str:
        return self.missing if value is None else f"{float(value) * 100:.1f}%"

    def conversion(self, value, visitors) -> str:
        """No visitors: no conversion to speak of (not a suppressed figure)."""
        return NOT_APPLICABLE if visitors == 0 else self.percent(value)


def _plot(value):
    """Chart values are plain numbers (None: a gap)."""
    if value is None:
        return None
    return float(value) if isinstance(value, Decimal) else value


def tiles(figures: Figures, fmt: Formatter) -> list[tuple[str, str]]:
    t = figures.totals
    result = [
        ("New customers", fmt.count(t.get("new_customers"))),
        ("Orders", fmt.count(t.get("orders"))),
        ("Buyers (paid orders)", fmt.count(t.get("buyers"))),
        ("Page views", fmt.count(t.get("views"))),
        ("Visitors (customers)", fmt.count(t.get("visitors"))),
        ("Conversion", fmt.conversion(t.get("conversion"), t.get("visitors"))),
    ]
    for currency, amount in sorted(figures.revenue_totals.items()):
        result.append((f"Revenue {currency}", fmt.money(amount)))
    return result


def panels(figures: Figures, fmt: Formatter) -> list[Panel]:
    months = [row["month"].strftime("%Y-%m") for row in figures.months]
    result = [
        Panel(
            "customers",
            "New customers by month",
            {"type": "bar", "labels": months, "datasets": [_series("New customers", figures.months, "new_customers")]},
            ["Month", "New customers"],
            [[m, fmt.count(row["new_customers"])] for m, row in zip(months, figures.months, strict=True)],
        ),
        Panel(
            "orders",
            "Orders by month",
            {
                "type": "bar",
                "labels": months,
                "datasets": [
                    _series("Orders", figures.months, "orders"),
                    _series("Buyers", figures.months, "buyers"),
                ],
            },
            ["Month", "Orders", "Buyers"],
            [
                [m, fmt.count(row["orders"]), fmt.count(row["buyers"])]
                for m, row in zip(months, figures.months, strict=True)
            ],
        ),
    ]
    currencies = sorted(figures.revenue_by_month)
    month_keys = [row["month"] for row in figures.months]
    result.append(
        Panel(
            "revenue",
            "Revenue by month (paid orders, per currency)",
            {
                "type": "line",
                "labels": months,
                "datasets": [
                    {"label": c, "data": [_plot(figures.revenue_by_month[c].get(m, 0)) for m in month_keys]}
                    for c in currencies
                ],
            },
            ["Month", *currencies],
            [
                [label, *[fmt.money(figures.revenue_by_month[c].get(m, 0)) for c in currencies]]
                for label, m in zip(months, month_keys, strict=True)
            ],
            note="" if currencies else "No paid orders in this period.",
        )
    )
    result.append(
        Panel(
            "conversion",
            "Conversion by month",
            {
                "type": "line",
                "percent": True,
                "labels": months,
                "datasets": [_series("Conversion", figures.months, "conversion")],
            },
            ["Month", "Buyers", "Visitors", "Conversion"],
            [
                [
                    m,
                    fmt.count(row["buyers"]),
                    fmt.count(row["visitors"]),
                    fmt.conversion(row["conversion"], row["visitors"]),
                ]
                for m, row in zip(months, figures.months, strict=True)
            ],
            note="Customers with a paid order divided by customers with page views.",
        )
    )
    pages = figures.top_pages
    result.append(
        Panel(
            "pages",
            "Top pages",
            {
                "type": "bar",
                "horizontal": True,
                "labels": [p["page"] for p in pages],
                "datasets": [{"label": "Views", "data": [_plot(p["views"]) for p in pages]}],
            },
            ["Page", "Views", "Visitors"],
            [[p["page"], fmt.count(p["views"]), fmt.count(p["visitors"])] for p in pages],
            note="" if pages else "No page views in this period.",
        )
    )
    for by, rows in figures.breakdowns.items():
        result.append(_breakdown_panel(by, rows, currencies, fmt))
    return result


def _series(label: str, rows: list[dict], key: str) -> dict:
    return {"label": label, "data": [_plot(row[key]) for row in rows]}


def _breakdown_panel(by: str, rows: list[dict], currencies: list[str], fmt: Formatter) -> Panel:
    with_revenue = any("revenue" in row for row in rows)
    columns = [by.title(), "New customers", "Orders", "Buyers", "Page views", "Visitors", "Conversion"]
    if with_revenue:
        columns += [f"Revenue {c}" for c in currencies]
    table = []
    for row in rows:
        cells = [
            row["name"],
            fmt.count(row["new_customers"]),
            fmt.count(row["orders"]),
            fmt.count(row["buyers"]),
            fmt.count(row["views"]),
            fmt.count(row["visitors"]),
            fmt.conversion(row["conversion"], row["visitors"]),
        ]
        if with_revenue:
            cells += [fmt.money(row["revenue"].get(c, 0)) for c in currencies]
        table.append(cells)
    return Panel(
        f"by-{by}",
        f"By {by}",
        {
            "type": "bar",
            "labels": [row["name"] for row in rows],
            "datasets": [
                {"label": "Visitors", "data": [_plot(row["visitors"]) for row in rows]},
                {"label": "Buyers", "data": [_plot(row["buyers"]) for row in rows]},
            ],
        },
        columns,
        table,
        note="" if rows else f"No activity per {by} in this period.",
    )
