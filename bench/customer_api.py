"""Benchmark: 100 customers through the secured API as an analyst vs. an unsecured baseline.

The secured path is ``GET /api/v1/customers/?page_size=100`` with a real knox token for an
analyst: token authentication, the policy, ``restrict()``, PostgreSQL row-level security,
decryption of name/email/phone and masking.  The baseline (``bench/baseline.py``) reads the same
rows through the table owner with none of that.  Both go through the same Django request stack
with the test client, interleaved in one process; the script prints the medians and
``secured/baseline`` (target <= 1.5).  It is a figure to report, not a test: it exits 0.

Run as ``make bench`` (``BENCH_ARGS="--customers 20000 --profile"``).  It works on its own
database, ``<DATABASE_URL name>_bench``: migrated, topped up to ``--customers`` rows with the
demo seeder (reruns reuse the rows; 100,000 take about a minute), then VACUUM ANALYZEd.
"""

import argparse
import cProfile
import io
import os
import pstats
import statistics
import sys
import time
from collections import defaultdict
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

ANALYST_EMAIL = "analyst1.north@demo.portal.test"
SECURED_PATH = "/api/v1/customers/"
PAGE_SIZE = 100
SEED_CHUNK = 20_000


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=100_000, help="rows in the bench database (default 100000)")
    parser.add_argument("--rounds", type=int, default=50, help="interleaved measured rounds (default 50)")
    parser.add_argument("--warmup", type=int, default=5, help="unmeasured rounds first (default 5)")
    parser.add_argument("--page", type=int, default=50, help="a later page also measured (OFFSET cost); 0 skips")
    parser.add_argument("--profile", action="store_true", help="cProfile the secured request and print top costs")
    return parser.parse_args(argv)


def prepare_data(customers: int) -> int:
    """Migrate, create the demo organisation, top up the customers; return the total row count."""
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
    if existing < customers:
        print(f"seeding customers: {existing} -> {customers} (encryption per row; this takes a while)", flush=True)
        started = time.perf_counter()
        while existing < customers:
            # Chunks only to show progress; the seeder itself is idempotent.
            existing += demo.seed_customers(min(customers, existing + SEED_CHUNK))
            print(f"  {existing} customers ({time.perf_counter() - started:.0f}s)", flush=True)
    # Freshly bulk-loaded rows have no planner statistics and no visibility map; a live table
    # has both (autovacuum), so measure that state rather than a cold bitmap-scan-and-sort.
    with connections["owner"].cursor() as cursor:
        cursor.execute("VACUUM (ANALYZE) datasets_customer")
    return existing


def stats(samples: list[float]) -> dict[str, float]:
    ms = sorted(s * 1000 for s in samples)
    return {
        "median": statistics.median(ms),
        "p90": statistics.quantiles(ms, n=10)[8] if len(ms) > 1 else ms[0],
        "min": ms[0],
    }


class SqlTimer:
    """Time spent in the database driver per request, per alias (execute_wrapper)."""

    def __init__(self):
        self.seconds = defaultdict(float)
        self.queries = defaultdict(int)

    def wrapper_for(self, alias):
        def wrapper(execute, sql, params, many, context):
            started = time.perf_counter()
            try:
                return execute(sql, params, many, context)
            finally:
                self.seconds[alias] += time.perf_counter() - started
                self.queries[alias] += 1

        return wrapper


def sql_cost(fetch, repeats: int = 10) -> tuple[float, int]:
    """Median SQL ms per request and the number of queries one request makes."""
    from django.db import connections

    per_request = []
    queries = 0
    for _ in range(repeats):
        timer = SqlTimer()
        with (
            connections["default"].execute_wrapper(timer.wrapper_for("default")),
            connections["owner"].execute_wrapper(timer.wrapper_for("owner")),
        ):
            fetch()
        per_request.append(sum(timer.seconds.values()))
        queries = sum(timer.queries.values())
    return statistics.median(per_request) * 1000, queries


def time_calls(function, repeats: int = 30) -> float:
    """Median ms of one call."""
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples) * 1000


def component_costs(team_id: int, masks) -> dict[str, float]:
    """What parts of the secured work cost on their own, for 100 rows (medians, ms)."""
    from bench.baseline import raw_customer_rows
    from datasets import masking
    from datasets.api.serializers import CustomerSerializer
    from datasets.models import Customer

    raw_rows = list(raw_customer_rows(team_id)[:PAGE_SIZE])
    fields = {name: Customer._meta.get_field(name) for name in Customer.PERSONAL_FIELDS}

    def decrypt():
        return [
            {name: fields[name].from_db_value(bytes(row[f"{name}_ct"]), None, None) for name in fields}
            for row in raw_rows
        ]

    clear = decrypt()
    for row, raw in zip(clear, raw_rows, strict=True):
        row["card_last4"] = raw["card_last4"]

    def mask():
        return [masking.mask_record(masks, row) for row in clear]

    instances = list(Customer.objects.using("owner").filter(team_id=team_id).order_by("id")[:PAGE_SIZE])

    def serialize():
        return CustomerSerializer(instances, many=True, context={"masking": masks}).data

    def load_instances():
        return list(Customer.objects.using("owner").filter(team_id=team_id).order_by("id")[:PAGE_SIZE])

    return {
        "decrypt 300 fields (name, email, phone)": time_calls(decrypt),
        "mask 100 rows": time_calls(mask),
        "serialize 100 decrypted instances (ModelSerializer + masking)": time_calls(serialize),
        "load 100 model instances (SQL + decrypt, owner alias)": time_calls(load_instances),
    }


def main(argv=None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    from bench.bench_db import use_bench_database

    db_name = use_bench_database("_bench")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
    import django

    django.setup()

    from django.conf import settings
    from django.db import DatabaseError
    from django.test import Client, override_settings
    from knox.models import AuthToken

    from accounts import policy
    from accounts.models import User
    from bench.baseline import BASELINE_PATH
    from datasets.models import Customer
    from portal.security_context import scoped

    total = prepare_data(args.customers)
    analyst = User.objects.get(email=ANALYST_EMAIL)
    grant = policy.access(analyst, policy.Action.VIEW)
    if grant.role != policy.Role.ANALYST or len(grant.team_ids) != 1:
        sys.exit(f"{ANALYST_EMAIL} should be an analyst of one team; got {grant}")
    (team_id,) = grant.team_ids
    masks = policy.masking_for(grant.role)
    with scoped(system=True):
        team_rows = Customer.objects.filter(team_id=team_id).count()

    token_row, token = AuthToken.objects.create(analyst, expiry=timedelta(hours=2))
    client = Client()
    auth = {"HTTP_AUTHORIZATION": f"Token {token}"}
    pages = [1] + ([args.page] if args.page and args.page != 1 else [])

    def secured(page):
        return client.get(SECURED_PATH, {"page_size": PAGE_SIZE, "page": page}, **auth)

    def baseline(page):
        return client.get(BASELINE_PATH, {"team": team_id, "page_size": PAGE_SIZE, "page": page})

    hosts = [*settings.ALLOWED_HOSTS, "testserver"]
    try:
        with override_settings(SECURE_SSL_REDIRECT=False, ALLOWED_HOSTS=hosts, ROOT_URLCONF="bench.baseline"):
            for page in pages:
                check_same_rows(secured(page), baseline(page), page)

            for _ in range(args.warmup):
                for page in pages:
                    secured(page)
                    baseline(page)

            samples = {(path, page): [] for path in ("secured", "baseline") for page in pages}
            for round_no in range(args.rounds):
                for page in pages:
                    # Alternate which path goes first so neither always runs on a warmer cache.
                    order = [("secured", secured), ("baseline", baseline)]
                    for name, fetch in order if round_no % 2 == 0 else reversed(order):
                        started = time.perf_counter()
                        response = fetch(page)
                        samples[(name, page)].append(time.perf_counter() - started)
                        if response.status_code != 200:
                            sys.exit(f"{name} page {page} answered {response.status_code}")

            print(
                f"\ndatabase {db_name}: {total} customers; analyst team {team_id} holds {team_rows};"
                f" {args.rounds} interleaved rounds after {args.warmup} warm-up rounds; page_size={PAGE_SIZE}"
            )
            print(f"{'path':<10} {'page':>4} {'median ms':>10} {'p90 ms':>8} {'min ms':>8}")
            results = {}
            for page in pages:
                for name in ("secured", "baseline"):
                    figures = stats(samples[(name, page)])
                    results[(name, page)] = figures
                    print(
                        f"{name:<10} {page:>4} {figures['median']:>10.2f} {figures['p90']:>8.2f} {figures['min']:>8.2f}"
                    )
            for page in pages:
                ratio = results[("secured", page)]["median"] / results[("baseline", page)]["median"]
                label = "secured/baseline" if page == 1 else f"secured/baseline (page {page})"
                print(f"{label} = {ratio:.2f} (target <= 1.5)")

            print("\nwhere the time goes (medians):")
            for page in pages:
                for name, fetch in (("secured", secured), ("baseline", baseline)):
                    sql_ms, queries = sql_cost(lambda fetch=fetch, page=page: fetch(page))
                    print(f"  {name:<9} page {page:>3}: SQL {sql_ms:6.2f} ms in {queries} queries")
            for label, ms in component_costs(team_id, masks).items():
                print(f"  {label:<62} {ms:6.2f} ms")

            if args.profile:
                print_queries("secured", lambda: secured(1))
                print_queries("baseline", lambda: baseline(1))
                print_plans(analyst, team_id, pages[-1])
                profile_secured(lambda: secured(1))
    finally:
        try:
            token_row.delete()
        except DatabaseError as exc:  # the bench token expires by itself in two hours
            print(f"\n(could not delete the bench token: {exc.__class__.__name__}: {str(exc).splitlines()[0]})")
    return 0


def check_same_rows(secured_response, baseline_response, page: int) -> None:
    """Both paths must list the same rows, or the ratio means nothing."""
    if secured_response.status_code != 200 or baseline_response.status_code != 200:
        sys.exit(
            f"page {page}: secured answered {secured_response.status_code}, baseline {baseline_response.status_code}:"
            f" {secured_response.content[:300]!r} {baseline_response.content[:300]!r}"
        )
    secured_body, baseline_body = secured_response.json(), baseline_response.json()
    secured_ids = [row["id"] for row in secured_body["results"]]
    baseline_ids = [row["id"] for row in baseline_body["results"]]
    if secured_ids != baseline_ids or secured_body["count"] != baseline_body["count"]:
        sys.exit(f"page {page}: the secured and baseline paths list different rows")
    if len(secured_ids) != PAGE_SIZE:
        sys.exit(f"page {page}: {len(secured_ids)} rows, expected {PAGE_SIZE} (too few customers?)")
    if "***@" not in secured_body["results"][0]["email"]:
        sys.exit("the secured path did not mask the analyst's view")


def print_queries(label: str, fetch) -> None:
    """Each query of one request with its driver time (both aliases)."""
    from django.db import connections

    captured = []

    def wrapper_for(alias):
        def wrapper(execute, sql, params, many, context):
            started = time.perf_counter()
            try:
                return execute(sql, params, many, context)
            finally:
                captured.append((alias, time.perf_counter() - started, sql_text(sql, context)))

        return wrapper

    with (
        connections["default"].execute_wrapper(wrapper_for("default")),
        connections["owner"].execute_wrapper(wrapper_for("owner")),
    ):
        fetch()
    print(f"\nqueries of one {label} request (page 1):")
    for alias, seconds, sql in captured:
        print(f"  [{alias:<7}] {seconds * 1000:6.2f} ms  {' '.join(sql.split())[:150]}")


def sql_text(sql, context) -> str:
    """The statement as text (some app code passes psycopg ``sql.Composed`` objects)."""
    if isinstance(sql, str):
        return sql
    try:
        return sql.as_string(context["cursor"].cursor)
    except Exception:  # display only
        return repr(sql)


def print_plans(analyst, team_id: int, page: int) -> None:
    """EXPLAIN ANALYZE of the page's list query: under the analyst's scope (RLS) and as the owner."""
    from bench.baseline import raw_customer_rows
    from datasets.models import Customer
    from portal.security_context import scoped

    window = slice((page - 1) * PAGE_SIZE, page * PAGE_SIZE)
    with scoped(analyst):
        secured_plan = Customer.objects.restrict(analyst).order_by("id")[window].explain(analyze=True)
    baseline_plan = raw_customer_rows(team_id)[window].explain(analyze=True)
    for label, plan in (("secured (analyst scope, RLS)", secured_plan), ("baseline (owner)", baseline_plan)):
        print(f"\nplan of the page {page} list query, {label}:")
        for line in plan.splitlines():
            print(f"  {line[:170]}")


# Where a secured request spends its time: (label, file suffix, function name); matches are summed.
PROFILE_PARTS = [
    (
        "authentication (knox token, policy look-ups, SET LOCAL scope)",
        "rest_framework/views.py",
        "perform_authentication",
    ),
    ("permission check (policy)", "rest_framework/views.py", "check_permissions"),
    ("scope save/switch/restore queries (security_context)", "portal/security_context.py", "_current"),
    ("", "portal/security_context.py", "_apply"),
    ("SQL execution, all queries (driver + round trips)", "django/db/backends/utils.py", "_execute"),
    ("decryption (encrypted fields' from_db_value)", "portal/field_crypto.py", "from_db_value"),
    ("model instances (Model.__init__ / from_db)", "django/db/models/base.py", "from_db"),
    ("serialization incl. masking (CustomerSerializer)", "datasets/api/serializers.py", "to_representation"),
    ("masking alone (masking.apply)", "datasets/masking.py", "apply"),
    ("JSON rendering", "rest_framework/renderers.py", "render"),
    ("token last-use update (record_token_use)", "accounts/services.py", "record_token_use"),
    ("audit event: record() in the view", "audit/services.py", "record"),
    ("audit events appended after the transaction (unit_of_work)", "audit/services.py", "unit_of_work"),
]


def profile_secured(fetch, requests: int = 50, top: int = 25) -> None:
    profiler = cProfile.Profile()
    profiler.enable()
    started = time.perf_counter()
    for _ in range(requests):
        fetch()
    elapsed = time.perf_counter() - started
    profiler.disable()
    profile = pstats.Stats(profiler)
    totals: dict[str, float] = {}
    label = ""
    for part_label, suffix, function in PROFILE_PARTS:
        label = part_label or label  # an empty label adds to the previous part
        cumulative = sum(
            row[3]
            for (filename, _line, name), row in profile.stats.items()
            if name == function and filename.replace("\\", "/").endswith(suffix)
        )
        totals[label] = totals.get(label, 0.0) + cumulative
    per_request = elapsed / requests * 1000
    print(f"\ncProfile of {requests} secured requests (page 1): {per_request:.2f} ms each under the profiler")
    print("  (cumulative per request; parts overlap: SQL time is also inside authentication, etc.)")
    for label, seconds in totals.items():
        ms = seconds / requests * 1000
        print(f"  {label:<64} {ms:6.2f} ms  {ms / per_request:4.0%}")
    out = io.StringIO()
    profile.stream = out
    profile.strip_dirs().sort_stats("tottime").print_stats(top)
    print(f"\ntop {top} functions by own time:")
    print(out.getvalue())


if __name__ == "__main__":
    sys.exit(main())
