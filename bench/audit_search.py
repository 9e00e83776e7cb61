"""Benchmark: admin search by actor and date range vs a primary-key look-up, over 1,000,000 events.

The search is the audit admin's own queryset: ``selectors.visible_events(admin)`` filtered by
``selectors.by_actor`` and a timestamp range, first page of 100 in the admin's order, plus the
admin's bounded count.  The baseline is ``AuditEvent.objects.get(pk=...)``.  Both run through
the ORM on the portal's role, interleaved in one process.  Prints medians and search/pk (target
<= 10).  The events are generated in SQL (``--events``, default 1,000,000; 2,000 actors over a
year) in the database ``<DATABASE_URL name>_bench_audit_search``; reruns reuse them.
"""

import argparse
import random
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta

from audit_common import use_database

ACTORS = 2000


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--days", type=int, default=7, help="width of the searched date range (default 7)")
    return parser.parse_args(argv)


FILL = """
INSERT INTO audit_auditevent (timestamp, actor_id, actor_email, action, resource, object_ids, rows,
  ip_address, user_agent, request_id, success, reason, extra, prev_hash, hash)
SELECT %(start)s::timestamptz + (g * 31536000.0 / %(total)s) * interval '1 second',
       1 + (g * 7919) %% %(actors)s,
       'user' || (1 + (g * 7919) %% %(actors)s) || '@bench.test',
       (ARRAY['VIEW','SEARCH','LOGIN','EXPORT_DATA','PERMISSION_DENIED'])[1 + g %% 5],
       (ARRAY['customer','session','report'])[1 + g %% 3],
       jsonb_build_array((g %% 50000)::text),
       1, '10.0.0.1', 'bench', md5(g::text), true, '', '{}', '', md5(g::text) || md5(g::text)
FROM generate_series(%(first)s::bigint, %(last)s::bigint) AS g
"""


def main(argv=None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    db_name = use_database("bench_audit_search")

    from django.db import connections

    from accounts.models import User
    from accounts.policy import Role
    from accounts.services import create_user, generate_password
    from audit import selectors
    from audit.admin import BoundedCountPaginator
    from audit.models import AuditEvent

    start = datetime(2025, 1, 1, tzinfo=UTC)
    with connections["owner"].cursor() as cursor:
        cursor.execute("SELECT count(*) FROM audit_auditevent")
        existing = cursor.fetchone()[0]
        if existing < args.events:
            print(f"generating events: {existing} -> {args.events}", flush=True)
            step = 200_000
            for first in range(existing, args.events, step):
                last = min(first + step, args.events) - 1
                params = {"start": start, "total": args.events, "actors": ACTORS, "first": first, "last": last}
                cursor.execute(FILL, params)
                print(f"  {last + 1}", flush=True)
            cursor.execute("VACUUM (ANALYZE) audit_auditevent")
        cursor.execute("SELECT min(id), max(id), count(*) FROM audit_auditevent")
        low, high, total = cursor.fetchone()

    admin = User.objects.filter(email="bench.admin@bench.test").first() or create_user(
        "bench.admin@bench.test", Role.ADMIN, password=generate_password()
    )
    rng = random.Random(7)  # noqa: S311 - benchmark sampling

    def search():
        actor = rng.randrange(1, ACTORS + 1)
        since = start + timedelta(days=rng.randrange(0, 365 - args.days))
        events = selectors.visible_events(admin)
        events = selectors.by_actor(events, f"user{actor}@bench.test")
        events = events.filter(timestamp__gte=since, timestamp__lt=since + timedelta(days=args.days))
        events = events.order_by("-id")
        paginator = BoundedCountPaginator(events, 100)
        page = list(paginator.page(1).object_list)
        return paginator.count, page

    def by_pk():
        return AuditEvent.objects.get(pk=rng.randrange(low, high + 1))

    for _ in range(20):
        search()
        by_pk()
    samples = {"search": [], "pk": []}
    found = []
    for round_no in range(args.rounds):
        order = [("search", search), ("pk", by_pk)]
        for name, fn in order if round_no % 2 == 0 else reversed(order):
            started = time.perf_counter()
            result = fn()
            samples[name].append(time.perf_counter() - started)
            if name == "search":
                found.append(result[0])

    sql, params = (
        selectors.by_actor(AuditEvent.objects.all(), "user5@bench.test")
        .filter(timestamp__gte=start, timestamp__lt=start + timedelta(days=args.days))
        .order_by("-id")[:100]
        .query.sql_with_params()
    )
    with connections["default"].cursor() as cursor:
        cursor.execute("EXPLAIN " + sql, params)
        plan = [row[0] for row in cursor.fetchall()]

    search_ms = statistics.median(samples["search"]) * 1000
    pk_ms = statistics.median(samples["pk"]) * 1000
    print(f"\ndatabase {db_name}: {total} events, {ACTORS} actors; {args.rounds} interleaved rounds")
    print(
        f"search by actor email + {args.days}-day range (page of 100 + bounded count): median {search_ms:.2f} ms,"
        f" {statistics.median(found):.0f} matching events per search"
    )
    print(f"primary-key look-up:                                             median {pk_ms:.2f} ms")
    print(f"search/pk = {search_ms / pk_ms:.2f} (target <= 10)")
    print("plan of the search:")
    for line in plan:
        print("   ", line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
