"""Benchmark: the analyst dashboard's aggregates under row-level security vs. the same SQL run raw
by the table owner, on 1,000,000 page views; and the dashboard page's server time.

Three timings per interleaved round (medians reported):

- ``secured``: ``dashboards.selectors.row_figures`` for the demo analyst (team North, last twelve
  months), inside a transaction under the analyst's scope (``SET LOCAL ROLE portal_analyst``,
  team ids), i.e. the ORM, ``restrict()``, the analytics-consent filter and PostgreSQL row-level
  security, exactly as the page runs them;
- ``raw owner``: the very SQL statements those selectors sent (captured with their parameters),
  executed by the table owner, a superuser to whom row-level security does not apply: the same
  aggregates with no ORM, no scope switch and no policy;
- ``page``: ``GET /dashboards/analyst/`` through the whole Django stack (test client, session
  login), whose server time is reported at p50.

Target: secured/raw-owner <= 1.3.  It is a figure to report, not a test: it exits 0.

Run: ``make bench-dashboard`` (``BENCH_ARGS="--page-views 1000000 --rounds 30"``).  It works on
its own database, ``<DATABASE_URL name>_dash_bench``: migrated, the demo organisation with
``--customers`` customers (demo seeder), then orders and page views topped up in SQL with
``INSERT ... SELECT generate_series`` through the owner connection, then VACUUM ANALYZE.  Reruns
reuse the rows.
"""

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

from psycopg import sql

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

ANALYST_EMAIL = "analyst1.north@demo.portal.test"
PAGE_PATH = "/dashboards/analyst/"

# Bulk rows for the benchmark, generated in PostgreSQL from the existing customers (owner only).
# Deterministic: row g takes customer number (g * prime) mod n; one page view in five is anonymous.
TOP_UP_PAGE_VIEWS = """
WITH ids AS (SELECT array_agg(id ORDER BY id) AS id, array_agg(team_id ORDER BY id) AS team, count(*) AS n
             FROM datasets_customer)
INSERT INTO datasets_pageview (customer_id, session_id, team_id, page, referrer, city, device, "timestamp")
SELECT CASE WHEN g %% 5 = 0 THEN NULL ELSE ids.id[(1 + (g * 7919) %% ids.n)::int] END,
       's' || to_hex(g), ids.team[(1 + (g * 7919) %% ids.n)::int],
       (ARRAY['/', '/pricing', '/product', '/blog', '/signup', '/checkout', '/support'])[1 + g %% 7],
       (ARRAY['', 'search', 'newsletter', 'partner'])[1 + g %% 4],
       (ARRAY['Berlin', 'Paris', 'Madrid', 'Lisbon', 'Dublin', 'Vienna', 'Prague', 'Oslo'])[1 + g %% 8],
       (ARRAY['desktop', 'mobile', 'tablet'])[1 + g %% 3],
       now() - make_interval(days => ((g * 31) %% 720)::int, secs => (g * 17) %% 86400)
FROM ids, generate_series(%s::bigint, %s::bigint) AS g
"""
TOP_UP_ORDERS = """
WITH ids AS (SELECT array_agg(id ORDER BY id) AS id, array_agg(team_id ORDER BY id) AS team, count(*) AS n
             FROM datasets_customer)
INSERT INTO datasets_order (customer_id, team_id, amount, currency, status, created_at, anonymised)
SELECT ids.id[(1 + (g * 104729) %% ids.n)::int], ids.team[(1 + (g * 104729) %% ids.n)::int], 5 + (g * 37) %% 500,
       (ARRAY['EUR', 'EUR', 'USD', 'GBP'])[1 + g %% 4],
       (ARRAY['pending', 'paid', 'shipped', 'refunded', 'cancelled', 'paid'])[1 + g %% 6],
       now() - make_interval(days => ((g * 13) %% 720)::int, secs => (g * 29) %% 86400), false
FROM ids, generate_series(%s::bigint, %s::bigint) AS g
"""
CHUNK = 250_000


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=20_000, help="customers (demo seeder; default 20000)")
    parser.add_argument("--page-views", type=int, default=1_000_000, help="page views in all (default 1000000)")
    parser.add_argument("--orders", type=int, default=200_000, help="orders in all (default 200000)")
    parser.add_argument("--rounds", type=int, default=30, help="interleaved measured rounds (default 30)")
    parser.add_argument("--warmup", type=int, default=3, help="unmeasured rounds first (default 3)")
    parser.add_argument("--explain", action="store_true", help="print EXPLAIN ANALYZE of each query, both ways")
    return parser.parse_args(argv)


def top_up(cursor, statement: str, table: str, wanted: int) -> int:
    cursor.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table)))
    have = cursor.fetchone()[0]
    while have < wanted:
        upto = min(wanted, have + CHUNK)
        started = time.perf_counter()
        cursor.execute(statement, [have + 1, upto])
        print(f"  {table}: {upto:,} rows ({time.perf_counter() - started:.1f}s)", flush=True)
        have = upto
    return have


def prepare_data(args) -> dict:
    from django.core.management import call_command
    from django.db import connections

    from accounts.services import generate_password
    from datasets import demo
    from datasets.models import Customer
    from portal.security_context import scoped

    call_command("migrate", database="owner", verbosity=0)
    demo.seed_organisation(generate_password())
    with scoped(system=True):
        existing = Customer.objects.count()
    if existing < args.customers:
        print(f"seeding customers: {existing:,} -> {args.customers:,} (encrypted one by one)", flush=True)
        demo.seed_customers(args.customers)
    with connections["owner"].cursor() as cursor:
        counts = {
            "page views": top_up(cursor, TOP_UP_PAGE_VIEWS, "datasets_pageview", args.page_views),
            "orders": top_up(cursor, TOP_UP_ORDERS, "datasets_order", args.orders),
        }
        cursor.execute("SELECT count(*) FROM datasets_customer")
        counts["customers"] = cursor.fetchone()[0]
        for table in ("datasets_customer", "datasets_order", "datasets_pageview"):
            cursor.execute(sql.SQL("VACUUM (ANALYZE) {}").format(sql.Identifier(table)))
    return counts


class Capture:
    """The (sql, params) of every statement sent on a connection (execute_wrapper)."""

    def __init__(self):
        self.statements = []

    def __call__(self, execute, sql, params, many, context):
        self.statements.append((sql, params))
        return execute(sql, params, many, context)


def stats(samples: list[float]) -> dict[str, float]:
    ms = sorted(s * 1000 for s in samples)
    return {"p50": statistics.median(ms), "p90": statistics.quantiles(ms, n=10)[8], "min": ms[0]}


def main(argv=None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    from bench.bench_db import use_bench_database

    db_name = use_bench_database("_dash_bench")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
    import django

    django.setup()

    from django.conf import settings
    from django.db import connections
    from django.test import Client, override_settings

    from accounts import policy
    from accounts.models import User
    from dashboards import selectors
    from dashboards.forms import default_period
    from portal.security_context import scoped

    counts = prepare_data(args)
    analyst = User.objects.get(email=ANALYST_EMAIL)
    grant = policy.access(analyst, policy.Action.VIEW)
    if grant.role != policy.Role.ANALYST or len(grant.team_ids) != 1:
        sys.exit(f"{ANALYST_EMAIL} should be an analyst of one team; got {grant}")
    period = default_period()

    def secured():
        with scoped(analyst):
            return selectors.row_figures(analyst, period)

    # The statements the secured path sends, minus the scope switch around them.
    capture = Capture()
    with scoped(analyst), connections["default"].execute_wrapper(capture):
        expected = selectors.row_figures(analyst, period)
    queries = capture.statements
    owner = connections["owner"]

    def raw_owner():
        results = []
        with owner.cursor() as cursor:
            for sql, params in queries:
                cursor.execute(sql, params)
                results.append(cursor.fetchall())
        return results

    # The same rows both ways, or the ratio means nothing: compare the figures' raw results.
    secured_results = []
    with scoped(analyst), connections["default"].cursor() as cursor:
        for sql, params in queries:
            cursor.execute(sql, params)
            secured_results.append(cursor.fetchall())
    if secured_results != raw_owner():
        sys.exit("the secured and raw paths returned different aggregates")
    if not expected.totals["views"]:
        sys.exit("no page views in the analyst's scope: check the data")

    client = Client()
    client.force_login(analyst)
    hosts = [*settings.ALLOWED_HOSTS, "testserver"]
    samples = {"secured": [], "raw owner": [], "page": []}
    with override_settings(SECURE_SSL_REDIRECT=False, ALLOWED_HOSTS=hosts):

        def page():
            response = client.get(PAGE_PATH)
            if response.status_code != 200:
                sys.exit(f"{PAGE_PATH} answered {response.status_code}")

        runs = [("secured", secured), ("raw owner", raw_owner), ("page", page)]
        for _ in range(args.warmup):
            for _name, run in runs:
                run()
        for round_no in range(args.rounds):
            # Rotate the order so that no path always runs first on a cold cache.
            shift = round_no % len(runs)
            for name, run in runs[shift:] + runs[:shift]:
                started = time.perf_counter()
                run()
                samples[name].append(time.perf_counter() - started)

        per_query = []
        for sql, params in queries:
            secured_ms, owner_ms = [], []
            for _ in range(max(5, args.rounds // 3)):
                with scoped(analyst), connections["default"].cursor() as cursor:
                    started = time.perf_counter()
                    cursor.execute(sql, params)
                    cursor.fetchall()
                    secured_ms.append(time.perf_counter() - started)
                with owner.cursor() as cursor:
                    started = time.perf_counter()
                    cursor.execute(sql, params)
                    cursor.fetchall()
                    owner_ms.append(time.perf_counter() - started)
            per_query.append((sql, statistics.median(secured_ms) * 1000, statistics.median(owner_ms) * 1000))

    team_views = expected.totals["views"]
    print(
        f"\ndatabase {db_name}: {counts['customers']:,} customers, {counts['orders']:,} orders,"
        f" {counts['page views']:,} page views; analyst team {sorted(grant.team_ids)[0]},"
        f" {period.first_day} to {period.last_day}: {team_views:,} page views in scope"
    )
    print(f"{len(queries)} aggregate queries; {args.rounds} interleaved rounds after {args.warmup} warm-up rounds")
    print(f"{'path':<12} {'p50 ms':>9} {'p90 ms':>9} {'min ms':>9}")
    figures = {name: stats(values) for name, values in samples.items()}
    for name, f in figures.items():
        print(f"{name:<12} {f['p50']:>9.2f} {f['p90']:>9.2f} {f['min']:>9.2f}")
    ratio = figures["secured"]["p50"] / figures["raw owner"]["p50"]
    print(f"secured/raw owner = {ratio:.2f} (target <= 1.3)")
    print(f"dashboard page server time p50 = {figures['page']['p50']:.1f} ms (p90 {figures['page']['p90']:.1f} ms)")
    print("\nper query (medians; secured = same SQL under the analyst's scope and RLS):")
    for sql, secured_ms, owner_ms in per_query:
        statement = " ".join(sql.split())[:90]
        print(f"  {secured_ms:8.2f} ms vs {owner_ms:8.2f} ms  ({secured_ms / owner_ms:4.2f}x)  {statement}")
    if args.explain:
        for sql, params in queries:
            for label, alias, scope in (("secured", "default", analyst), ("owner", "owner", None)):
                with connections[alias].cursor() as cursor:
                    if scope is not None:
                        with scoped(scope), connections[alias].cursor() as scoped_cursor:
                            scoped_cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + sql, params)
                            plan = scoped_cursor.fetchall()
                    else:
                        cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + sql, params)
                        plan = cursor.fetchall()
                print(f"\n{label}: {' '.join(sql.split())[:120]}")
                for (line,) in plan:
                    print(f"  {line[:160]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
