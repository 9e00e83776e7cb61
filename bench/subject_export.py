"""Benchmark: one subject's access package with 100,000 and with 1,000,000 customers.

Each customer has 10 page views (1,000,000 and 10,000,000 rows).  The subject is a real customer
(encrypted fields written by the model) with 10 page views, 3 orders and a consent; everybody
else is bulk-loaded by ``INSERT ... SELECT generate_series`` through the owner connection, their
encrypted columns reusing a pool of a few thousand values encrypted in Python (the ciphertexts
are real, just repeated) and their blind indexes unique per row.

Measured: ``compliance.subject_export.build_package`` -- the blind-index look-up, the orders,
page views, consents and audit events by index, the ZIP (JSON + CSV), its encryption and the
package row and audit event -- in a transaction that is rolled back after each call (the file is
removed).  The two sizes live in two databases, ``<DATABASE_URL name>_bench_gdpr_100k`` and
``..._1m`` (seeded once, reused by reruns); calls alternate between them one by one, each size on
its own open connection, so both see the same machine state.  Prints medians and ``1M/100k``
(target <= 1.5).  A figure, not a test: exits 0.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/portal REDIS_URL=redis://127.0.0.1:6379/0 \\
        .venv/bin/python scripts/services.py -- .venv/bin/python bench/subject_export.py
"""

import argparse
import os
import statistics
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

from psycopg import sql

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SIZES = {"100k": 100_000, "1m": 1_000_000}
PAGE_VIEWS_PER_CUSTOMER = 10
POOL = 3000  # distinct encrypted values reused by the bulk rows
CHUNK = 100_000  # customers per INSERT ... SELECT (their page views go in the same step)
SUBJECT_EMAIL = "bench.subject@subject.example"
DPO_EMAIL = "dpo.bench@subject.example"


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10, help="rounds of --calls alternating calls (default 10)")
    parser.add_argument("--calls", type=int, default=10, help="measured calls per size per round (default 10)")
    parser.add_argument("--warmup", type=int, default=10, help="unmeasured calls per size first (default 10)")
    return parser.parse_args(argv)


def database_names() -> dict[str, str]:
    from scripts.services import ensure_database

    url = os.environ.get("DATABASE_URL")
    if not url:
        sys.exit("DATABASE_URL is not set: run through scripts/services.py")
    parts = urlsplit(url)
    base = parts.path.lstrip("/") or "portal"
    names = {}
    for label in SIZES:
        name = f"{base}_bench_gdpr_{label}"
        ensure_database(parts._replace(path=f"/{name}").geturl())
        names[label] = name
    return names


def use_database(name: str) -> None:
    """Point both aliases at ``name`` (connections reopen on next use)."""
    from django.db import connections

    connections.close_all()
    for alias in ("default", "owner"):
        connections[alias].settings_dict["NAME"] = name


# --- Seeding --------------------------------------------------------------------------------


def seed(name: str, customers: int) -> None:
    from django.core.management import call_command
    from django.db import connections

    from accounts.services import generate_password
    from datasets import demo
    from datasets.models import Customer
    from portal.security_context import scoped

    use_database(name)
    call_command("migrate", database="owner", verbosity=0)
    demo.seed_organisation(generate_password())
    subject_id = ensure_subject()
    with scoped(system=True):
        existing = Customer.objects.count()
    if existing >= customers:
        return
    print(f"[{name}] seeding customers {existing} -> {customers} (+{PAGE_VIEWS_PER_CUSTOMER} page views each)")
    started = time.perf_counter()
    with connections["owner"].cursor() as cursor:
        fill_pool(cursor)
        cursor.execute("SELECT id FROM accounts_team ORDER BY id")
        teams = [row[0] for row in cursor.fetchall()]
        done = existing
        while done < customers:
            upto = min(customers, done + CHUNK)
            insert_chunk(cursor, teams, done, upto, subject_id)
            done = upto
            print(f"  {done} customers ({time.perf_counter() - started:.0f}s)", flush=True)
        cursor.execute("DROP TABLE IF EXISTS bench_pool")
    with connections["owner"].cursor() as cursor:
        for table in ("datasets_customer", "datasets_pageview", "datasets_order", "compliance_consentrecord"):
            cursor.execute(sql.SQL("VACUUM (ANALYZE) {}").format(sql.Identifier(table)))


def fill_pool(cursor) -> None:
    """A few thousand real ciphertexts per personal column (each bound to its column)."""
    from faker import Faker

    from portal.field_crypto import encrypt_value

    fake = Faker()
    Faker.seed(20250119)
    cursor.execute("DROP TABLE IF EXISTS bench_pool")
    cursor.execute("CREATE UNLOGGED TABLE bench_pool (n int PRIMARY KEY, name bytea, email bytea, phone bytea)")
    rows = [
        (
            n,
            encrypt_value(fake.name(), b"datasets_customer.name"),
            encrypt_value(f"pool{n}.{fake.user_name()}@mail.example", b"datasets_customer.email"),
            encrypt_value(fake.numerify("+1-###-###-####"), b"datasets_customer.phone"),
        )
        for n in range(POOL)
    ]
    cursor.executemany("INSERT INTO bench_pool VALUES (%s, %s, %s, %s)", rows)


# Blind indexes unique per row (a sha256 of the row number stands in for the HMAC of a unique
# address): the index has the shape of a real one, and no bulk row matches the subject.
INSERT_CUSTOMERS = """
INSERT INTO datasets_customer
  (team_id, name, email, phone, email_index, phone_index, card_last4, card_token, created_at)
SELECT (%(teams)s::bigint[])[1 + g %% cardinality(%(teams)s::bigint[])], p.name, p.email, p.phone,
       encode(sha256(('e' || g)::bytea), 'hex'), encode(sha256(('p' || g)::bytea), 'hex'),
       lpad((g %% 10000)::text, 4, '0'), 'tok_' || g, now() - (g %% 20000) * interval '1 hour'
FROM generate_series(%(start)s, %(stop)s) AS g JOIN bench_pool p ON p.n = g %% %(pool)s
"""
INSERT_PAGE_VIEWS = """
INSERT INTO datasets_pageview (customer_id, session_id, team_id, page, referrer, city, device, timestamp)
SELECT c.id, '', c.team_id, '/page/' || (v %% 40), '', 'Berlin', 'desktop', c.created_at + v * interval '1 minute'
FROM datasets_customer c CROSS JOIN generate_series(1, %(views)s) AS v
WHERE c.id > %(after)s AND c.id <> %(subject)s
"""


def insert_chunk(cursor, teams, start: int, stop: int, subject_id: int) -> None:
    cursor.execute("SELECT coalesce(max(id), 0) FROM datasets_customer")
    after = cursor.fetchone()[0]
    cursor.execute(INSERT_CUSTOMERS, {"teams": teams, "start": start + 1, "stop": stop, "pool": POOL})
    cursor.execute(INSERT_PAGE_VIEWS, {"views": PAGE_VIEWS_PER_CUSTOMER, "after": after, "subject": subject_id})


def ensure_subject() -> int:
    """The subject (model-written, so encryption and blind indexes are the real thing)."""
    from decimal import Decimal

    from accounts import services
    from accounts.models import Team, User
    from compliance import consent
    from datasets.models import Customer, Order, PageView
    from portal.security_context import scoped

    if not User.objects.filter(email=DPO_EMAIL).exists():
        services.create_user(DPO_EMAIL, "DPO", password=services.generate_password())
    with scoped(system=True):
        existing = Customer.objects.by_email(SUBJECT_EMAIL).first()
        if existing:
            return existing.pk
        team = Team.objects.order_by("id").first()
        subject = Customer.objects.create(team=team, name="Bench Subject", email=SUBJECT_EMAIL, phone="+1 555 0100")
        for n in range(PAGE_VIEWS_PER_CUSTOMER):
            PageView.objects.create(customer=subject, page=f"/page/{n}", city="Lisbon")
        for amount in ("19.90", "5.00", "120.00"):
            Order.objects.create(customer=subject, amount=Decimal(amount), status="paid")
        consent.grant([subject.pk], "analytics", notice_version="bench")
        return subject.pk


# --- Measuring ------------------------------------------------------------------------------


def subject_request():
    from accounts.models import User
    from compliance import requests
    from compliance.models import SubjectRequest

    dpo = User.objects.get(email=DPO_EMAIL)
    request = SubjectRequest.objects.filter(kind="access", created_by=dpo).first()
    if request is None:
        request = requests.intake(dpo, requests.Intake("access", "email", email=SUBJECT_EMAIL))
    return request, dpo


def one_call(request, dpo) -> tuple[float, dict]:
    """One package build, rolled back afterwards (and its file removed)."""
    from django.db import transaction

    from compliance import subject_export

    with transaction.atomic():
        started = time.perf_counter()
        package = subject_export.build_package(request, dpo)
        elapsed = time.perf_counter() - started
        rows = dict(package.rows)
        transaction.set_rollback(True)
    subject_export.delete_files([package.file_name])
    return elapsed, rows


class Target:
    """One database size with its own open connection: calls alternate between the sizes one by
    one, so load on the machine falls on both alike (no reconnect between calls)."""

    def __init__(self, label: str, name: str):
        from django.db import connections

        self.label = label
        settings_dict = {**connections.settings["default"], "NAME": name}
        self.connection = connections["default"].__class__(settings_dict, alias="default")
        self.samples: list[float] = []
        self.rows: dict = {}
        with self.active():
            self.request, self.dpo = subject_request()

    def active(self):
        from contextlib import contextmanager

        from django.db import connections

        @contextmanager
        def swap():
            previous = connections["default"]
            connections["default"] = self.connection
            try:
                yield
            finally:
                connections["default"] = previous

        return swap()

    def call(self, measured: bool) -> None:
        with self.active():
            elapsed, self.rows = one_call(self.request, self.dpo)
        if measured:
            self.samples.append(elapsed)


def plan(name: str) -> str:
    """EXPLAIN of the page-view read, to show it is an index look-up at this size."""
    from django.db import connections

    use_database(name)
    with connections["owner"].cursor() as cursor:
        cursor.execute("SELECT id FROM datasets_customer WHERE email_index = ANY(%s)", [_subject_indexes()])
        ids = [row[0] for row in cursor.fetchall()]
        cursor.execute("EXPLAIN SELECT * FROM datasets_pageview WHERE customer_id = ANY(%s)", [ids])
        return " | ".join(row[0].strip() for row in cursor.fetchall())


def _subject_indexes() -> list[str]:
    from datasets import blind_index

    return blind_index.email_candidates(SUBJECT_EMAIL)


def main(argv=None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    names = database_names()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
    import django

    django.setup()
    from django.db import connections

    for label, customers in SIZES.items():
        seed(names[label], customers)
    sizes = {}
    for label in SIZES:
        use_database(names[label])
        with connections["owner"].cursor() as cursor:
            cursor.execute("SELECT (SELECT count(*) FROM datasets_customer), (SELECT count(*) FROM datasets_pageview)")
            sizes[label] = cursor.fetchone()
    use_database(names["100k"])
    targets = [Target(label, names[label]) for label in SIZES]
    for target in targets:
        for _ in range(args.warmup):
            target.call(measured=False)
    for _ in range(args.rounds * args.calls):
        for target in targets:
            target.call(measured=True)
    medians = {t.label: statistics.median(t.samples) * 1000 for t in targets}
    print()
    for target in targets:
        customers, page_views = sizes[target.label]
        ms = sorted(v * 1000 for v in target.samples)
        p90 = statistics.quantiles(ms, n=10)[8] if len(ms) > 1 else ms[0]
        print(
            f"{target.label:>5}: {customers:>9,} customers, {page_views:>11,} page views | subject package "
            f"median {medians[target.label]:.1f} ms, p90 {p90:.1f} ms, min {ms[0]:.1f} ms, n={len(ms)} "
            f"| rows {target.rows}"
        )
    print(f"  plan at 1M: {plan(names['1m'])}")
    ratio = medians["1m"] / medians["100k"]
    print(f"ratio 1M/100k (median): {ratio:.2f}  (target <= 1.5: {'met' if ratio <= 1.5 else 'NOT met'})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
