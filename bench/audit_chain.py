"""Benchmark: 8 concurrent writers append chained audit events vs plain INSERTs of the same rows.

The chained path is ``audit.services.record`` outside a request (each event its own
transaction: advisory lock, read the head, hash, INSERT, COMMIT).  The baseline builds the same
event and INSERTs it into ``bench_plain_event``, a copy of the audit table with the same
columns and indexes but no chain and no trigger, also one transaction per event, through the
same portal role.  Both run in the same process, one after the other, twice (interleaved), and
the chain is verified afterwards.  Prints events/s and chained/plain (target >= 0.33).  Uses its
own database ``<DATABASE_URL name>_bench_audit_chain``.
"""

import argparse
import statistics
import sys
import threading
import time

from audit_common import use_database


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--writers", type=int, default=8)
    parser.add_argument("--events", type=int, default=400, help="events per writer per round (default 400)")
    parser.add_argument("--rounds", type=int, default=2)
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    db_name = use_database("bench_audit_chain")

    from django.db import connections, models, transaction
    from psycopg import sql

    from audit import chain, services
    from audit.choices import AuditAction
    from audit.models import AuditEvent
    from portal import db_roles

    plain_table = "bench_plain_event"
    with connections["owner"].cursor() as cursor:
        cursor.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(plain_table)))
        cursor.execute(
            sql.SQL("CREATE TABLE {} (LIKE {} INCLUDING ALL)").format(
                sql.Identifier(plain_table), sql.Identifier(AuditEvent._meta.db_table)
            )
        )
        roles = sql.SQL(", ").join(sql.Identifier(r) for r in [db_roles.app_user(), *db_roles.SCOPED_ROLES])
        cursor.execute(sql.SQL("GRANT SELECT, INSERT ON {} TO {}").format(sql.Identifier(plain_table), roles))

    fields = {f.name: f.clone() for f in AuditEvent._meta.local_fields}
    PlainEvent = type(
        "PlainEvent",
        (models.Model,),
        {"__module__": __name__, **fields, "Meta": type("Meta", (), {"app_label": "bench", "db_table": plain_table})},
    )
    names = [f.name for f in AuditEvent._meta.local_fields if f.name != "id"]

    def chained_write(i):
        services.record(AuditAction.VIEW, resource="customer", object_ids=[i, i + 1], rows=2, reason="bench")

    def plain_write(i):
        event = services.build_event(
            AuditAction.VIEW, resource="customer", object_ids=[i, i + 1], rows=2, reason="bench"
        )
        with transaction.atomic():
            PlainEvent.objects.create(**{name: getattr(event, name) for name in names})

    def run(write) -> float:
        barrier = threading.Barrier(args.writers + 1)
        errors = []

        def writer():
            try:
                barrier.wait()
                for i in range(args.events):
                    write(i)
            except Exception as exc:
                errors.append(exc)
            finally:
                connections.close_all()

        threads = [threading.Thread(target=writer) for _ in range(args.writers)]
        for thread in threads:
            thread.start()
        barrier.wait()
        started = time.perf_counter()
        for thread in threads:
            thread.join()
        elapsed = time.perf_counter() - started
        if errors:
            raise errors[0]
        return args.writers * args.events / elapsed

    # Warm up both paths (connections, plans) before measuring.
    for i in range(20):
        chained_write(i)
        plain_write(i)
    rates = {"chained": [], "plain": []}
    for round_no in range(args.rounds):
        order = [("plain", plain_write), ("chained", chained_write)]
        for name, write in order if round_no % 2 == 0 else reversed(order):
            rates[name].append(run(write))

    chained = statistics.median(rates["chained"])
    plain = statistics.median(rates["plain"])
    started = time.perf_counter()
    report = chain.verify()
    verify_seconds = time.perf_counter() - started
    print(f"\ndatabase {db_name}: {args.writers} writers x {args.events} events x {args.rounds} rounds per path")
    print(f"plain INSERT (same shape): {plain:8.0f} events/s rounds {[round(r) for r in rates['plain']]}")
    print(f"chained record(): {chained:8.0f} events/s rounds {[round(r) for r in rates['chained']]}")
    print(f"chained/plain = {chained / plain:.2f} (target >= 0.33)")
    print(
        f"chain verified: {'intact' if report.ok else 'BROKEN at ' + str(report.first_bad_id)},"
        f" {report.events} events in {verify_seconds:.1f}s ({report.events / verify_seconds:.0f} events/s)"
    )
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
