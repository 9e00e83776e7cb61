"""Benchmark: the retention purge of 1,000,000 expired page views vs. one raw SQL DELETE of the
same rows, in the same run.

* Baseline: ``DELETE FROM datasets_pageview WHERE timestamp < cutoff`` as the table owner, one
  statement, one transaction (no row-level security, no batching, no bookkeeping).
* Retention: the portal's engine (``compliance.retention.run_policy``) as the portal's login
  role under the system scope and row-level security, in batches of at most 10,000 rows per
  transaction, with per-batch progress, the id digest, the post-condition count, the proof record
  and the audit event.

Each measurement starts from the same freshly loaded table (the expired rows plus ``--fresh``
rows that must stay), vacuumed and analysed.  Rounds alternate the order (B R, R B, ...).  The
script prints the times, the ratio retention/baseline (target <= 2.0) and the longest retention
transaction (target < 2 s).  It is a figure to report, not a test: it exits 0.

Run: ``.venv/bin/python scripts/services.py -- .venv/bin/python bench/retention_purge.py``
(``--rows 1000000 --fresh 100000 --rounds 1``).  It works on its own database,
``<DATABASE_URL name>_retention_bench``.
"""

import argparse
import os
import statistics
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CUSTOMERS = 200


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="expired page views (default 1000000)")
    parser.add_argument("--fresh", type=int, default=100_000, help="page views that must stay (default 100000)")
    parser.add_argument("--rounds", type=int, default=1, help="baseline/retention pairs, alternating order")
    parser.add_argument(
        "--watch",
        action="store_true",
        help="also watch pg_stat_activity (every 20 ms, on both sides) for the longest open transaction of any kind",
    )
    return parser.parse_args(argv)


def prepare() -> tuple[int, list[int]]:
    from django.core.management import call_command

    from accounts.models import Department, Team
    from datasets.models import Customer
    from portal.security_context import scoped

    call_command("migrate", database="owner", verbosity=0)
    department, _ = Department.objects.get_or_create(name="Bench")
    team, _ = Team.objects.get_or_create(name="Bench retention", department=department)
    with scoped(system=True):
        have = list(Customer.objects.filter(team=team).values_list("pk", flat=True))
        for i in range(len(have), CUSTOMERS):
            have.append(Customer.objects.create(team=team, name=f"Bench {i}", email=f"bench{i}@bench.example").pk)
    return team.pk, have


LOAD = """
INSERT INTO datasets_pageview (customer_id, session_id, team_id, page, referrer, city, device, timestamp)
SELECT (%(customers)s::bigint[])[1 + g %% %(n_customers)s], 's' || g, %(team)s, '/page/' || (g %% 500),
       '', 'Lisbon', 'mobile', now() - make_interval(days => %(days)s) - make_interval(secs => g)
FROM generate_series(1, %(rows)s) AS g
"""


def load(team: int, customers: list[int], expired: int, fresh: int) -> None:
    """Empty the table and load expired rows (older than 2 years) and fresh ones, then VACUUM ANALYZE."""
    from django.db import connections

    with connections["owner"].cursor() as cursor:
        cursor.execute("TRUNCATE datasets_pageview")
        common = {"customers": customers, "n_customers": len(customers), "team": team}
        cursor.execute(LOAD, {**common, "days": 800, "rows": expired})
        cursor.execute(LOAD, {**common, "days": 100, "rows": fresh})
        cursor.execute("VACUUM (ANALYZE) datasets_pageview")


def count_pageviews() -> int:
    from django.db import connections

    with connections["owner"].cursor() as cursor:
        cursor.execute("SELECT count(*) FROM datasets_pageview")
        return cursor.fetchone()[0]


class TransactionWatch(threading.Thread):
    """An outside observer: samples pg_stat_activity every 20 ms and keeps the oldest open
    transaction of one role (for retention: every transaction of the run, not only batches)."""

    def __init__(self, role: str, enabled: bool):
        super().__init__(daemon=True)
        self.role = role
        self.enabled = enabled
        self.longest = 0.0
        self.stop = threading.Event()

    def run(self):
        if not self.enabled:
            return
        import psycopg
        from django.db import connections

        owner = connections["owner"].settings_dict
        with psycopg.connect(
            host=owner["HOST"] or None,
            port=owner["PORT"] or None,
            user=owner["USER"],
            password=owner["PASSWORD"] or None,
            dbname=owner["NAME"],
            autocommit=True,
        ) as conn:
            while not self.stop.is_set():
                row = conn.execute(
                    "SELECT extract(epoch FROM max(clock_timestamp() - xact_start)) FROM pg_stat_activity"
                    " WHERE usename = %s AND datname = current_database() AND xact_start IS NOT NULL",
                    [self.role],
                ).fetchone()
                self.longest = max(self.longest, float(row[0] or 0))
                time.sleep(0.02)


def baseline(cutoff, watched: bool) -> tuple[float, int, float]:
    from django.db import connections, transaction

    # Watched like the retention run (same observer cost on both sides).
    watch = TransactionWatch(connections["owner"].settings_dict["USER"], watched)
    watch.start()
    started = time.perf_counter()
    with transaction.atomic(using="owner"), connections["owner"].cursor() as cursor:
        cursor.execute("DELETE FROM datasets_pageview WHERE timestamp < %s", [cutoff])
        deleted = cursor.rowcount
    elapsed = time.perf_counter() - started
    watch.stop.set()
    watch.join()
    return elapsed, deleted, watch.longest


def secured(rule, watched: bool):
    from django.conf import settings

    from compliance import retention
    from compliance.governance_choices import RunTrigger

    watch = TransactionWatch(settings.DATABASE_APP_USER, watched)
    watch.start()
    started = time.perf_counter()
    run = retention.run_policy(rule, trigger=RunTrigger.COMMAND)
    elapsed = time.perf_counter() - started
    watch.stop.set()
    watch.join()
    return elapsed, run, watch.longest


def main(argv=None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    from bench.bench_db import use_bench_database

    db_name = use_bench_database("_retention_bench")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
    import django

    django.setup()
    from django.conf import settings

    from compliance import retention
    from compliance.governance_models import RetentionPolicy, RetentionRun

    settings.RETENTION_BATCH_PAUSE_MS = 0
    team, customers = prepare()
    retention.ensure_default_policies()
    rule = RetentionPolicy.objects.get(dataset="pageviews")
    RetentionRun.objects.filter(policy=rule, status="running").update(status="failed")
    print(
        f"database {db_name}: {args.rows} expired + {args.fresh} fresh page views, "
        f"batch size {retention.batch_size()}, {args.rounds} round(s)",
        flush=True,
    )
    base_times, secured_times, longest = [], [], []
    for round_no in range(args.rounds):
        order = ("baseline", "retention") if round_no % 2 == 0 else ("retention", "baseline")
        for which in order:
            load(team, customers, args.rows, args.fresh)
            if which == "baseline":
                seconds, deleted, observed = baseline(retention.cutoff_for(rule), args.watch)
                base_times.append(seconds)
                seen = f" (one transaction of {observed * 1000:.0f} ms seen)" if args.watch else ""
                print(
                    f"  round {round_no + 1} baseline:  {seconds:7.2f} s, {deleted} rows in one DELETE{seen}",
                    flush=True,
                )
            else:
                retention.preview(rule)
                retention.enable(rule)
                seconds, run, observed = secured(rule, args.watch)
                deleted = run.rows_deleted
                secured_times.append(seconds)
                longest.append(max(run.longest_batch_ms, observed * 1000))
                seen = f", longest transaction seen in pg_stat_activity {observed * 1000:.0f} ms" if args.watch else ""
                print(
                    f"  round {round_no + 1} retention: {seconds:7.2f} s, {deleted} rows in {run.batches} batches "
                    f"(largest {run.largest_batch_rows} rows), longest batch transaction {run.longest_batch_ms} ms"
                    f"{seen}, status {run.status}",
                    flush=True,
                )
            if deleted != args.rows or count_pageviews() != args.fresh:
                print(f"  MISMATCH: deleted {deleted}, left {count_pageviews()}", flush=True)
    base, sec = statistics.median(base_times), statistics.median(secured_times)
    print(f"baseline (one raw DELETE):   median {base:.2f} s")
    print(f"retention (batched, audited): median {sec:.2f} s")
    print(f"retention/baseline = {sec / base:.2f}  (target <= 2.0)")
    print(f"longest retention transaction = {max(longest):.0f} ms  (target < 2000 ms)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
