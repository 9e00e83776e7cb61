"""Key rotation at scale: ``manage.py rotate_keys`` re-keys 100,000 customers in a process of its
own while a portal user keeps reading through the API; then a second rotation is killed half-way
and resumed.

What is proved, on the real command, the real API (knox token, policy, row-level security,
decryption) and real PostgreSQL:

* during the rotation every read answers 200 with the right clear values (a manager sees them
  unmasked), list pages straddle the rotated/not-yet-rotated boundary, and a blind-index email
  search finds its customer whether the row was rotated before the search, or not yet;
* afterwards every value of every encrypted column in the database carries the new key id (a
  scan of every bytea column, not only the models that the rotation knows of), every blind index
  (customers and subject requests) is the HMAC under the new key, and with the old keys removed
  from the ring everything still decrypts and is found;
* a rotation killed (SIGKILL) after some batches resumes from its checkpoint: the rows done
  before the kill are not rewritten (their ciphertext is byte-for-byte the same; a rewrite would
  draw fresh nonces), and it ends exactly where an uninterrupted run ends.

The figures (rows, wall time, rows/s, reads served, read latency before/during) are printed;
run with ``-s`` to see them.
"""

import bisect
import os
import re
import signal
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from django.db import connections
from django.utils import timezone
from psycopg import sql

from accounts.policy import Role
from audit.models import AuditEvent
from compliance.models import SubjectRequest
from datasets import blind_index, demo, key_rotation
from datasets.models import Customer, KeyRotation
from portal import field_crypto
from portal.security_context import scoped
from tests.conftest import BOTH_DATABASES, token_client
from tests.factories import DepartmentFactory, TeamFactory, make_user

pytestmark = pytest.mark.django_db(transaction=True, databases=BOTH_DATABASES)

ROOT = Path(__file__).resolve().parent.parent
CUSTOMERS = 100_000
SUBJECT_REQUESTS = 300
SEED_CHUNK = 10_000
BATCH = key_rotation.BATCH  # the command's default: what production runs
KILL_AFTER_ROWS = 30_000  # the second rotation is killed once it reports at least this many
PAGE_SIZE = 50
READS_BEFORE = 150  # requests measured before the rotation starts (a third of each kind)
APP_NAME = "rotate_keys_scale_test"  # the subprocess's PGAPPNAME, to see its sessions end
TIMEOUT = 600
# (field key, blind-index key) per generation; generation 0 is the suite's own.
KEYS_1 = ("rotation-field-key-1-0123456789-0123456789-abcdef", "rotation-index-key-1-0123456789-0123456789-abc")
KEYS_2 = ("rotation-field-key-2-0123456789-0123456789-abcdef", "rotation-index-key-2-0123456789-0123456789-abc")
PROGRESS = re.compile(r"^(?P<label>[\w.]+): (?P<rows>\d+) rows$")


def clear_values(n: int) -> tuple[str, str, str]:
    """Customer ``n``'s name, email and phone (known, so every read can be checked)."""
    return f"Customer {n:06d}", f"customer{n:06d}@rotation.example", f"+1-555-{n:07d}"


def seed_customers(team_ids: list[int]) -> dict[int, tuple[str, str, str]]:
    """100,000 customers through the shared fast insert (ciphertext and blind indexes computed in
    Python, one statement per chunk); returns pk -> clear values."""
    expected = {}
    for start in range(0, CUSTOMERS, SEED_CHUNK):
        chunk = []
        for n in range(start, min(CUSTOMERS, start + SEED_CHUNK)):
            name, email, phone = clear_values(n)
            chunk.append(
                Customer(team_id=team_ids[n % len(team_ids)], name=name, email=email, phone=phone, card_last4="4242")
            )
        with scoped(system=True):
            demo.insert_customers(chunk)
        expected.update((c.pk, (c.name, c.email, c.phone)) for c in chunk)
    return expected


def seed_subject_requests(expected: dict[int, tuple[str, str, str]]) -> dict[int, tuple[str, str, str]]:
    """Subject requests hold encrypted fields and blind indexes too; two are erased (no values)."""
    pks = sorted(expected)[:: len(expected) // SUBJECT_REQUESTS][:SUBJECT_REQUESTS]
    now = timezone.now()
    requests = []
    for n, pk in enumerate(pks):
        _, email, phone = expected[pk]
        erased = n < 2
        request = SubjectRequest(
            kind="access",
            channel="email",
            subject_email="" if erased else email,
            subject_phone="" if erased else phone,
            details="" if erased else f"Please send me my data ({n})",
            due_at=now + timedelta(days=30),
            subject_hash="e" * 64 if erased else "",
            email_index="" if erased else blind_index.email_index(email),
            phone_index="" if erased else blind_index.phone_index(phone),
        )
        requests.append(request)
    with scoped(system=True):
        SubjectRequest.objects.bulk_create(requests)
    return {r.pk: (r.subject_email, r.subject_phone, r.details) for r in requests}


# --- Keys, the command ---------------------------------------------------------------------


def switch_keys(settings, keys: tuple[str, str]) -> None:
    """What an operator deploys: the new keys current, the previous ones listed as old."""
    settings.CRYPTOGRAPHY_OLD_KEYS = [settings.CRYPTOGRAPHY_KEY]
    settings.BLIND_INDEX_OLD_KEYS = [settings.BLIND_INDEX_KEY]
    settings.CRYPTOGRAPHY_KEY, settings.BLIND_INDEX_KEY = keys


def drop_old_keys(settings) -> None:
    settings.CRYPTOGRAPHY_OLD_KEYS = []
    settings.BLIND_INDEX_OLD_KEYS = []


def command_env(settings) -> dict[str, str]:
    """The subprocess: production settings, this test database, the key ring as configured here."""
    name = connections["owner"].settings_dict["NAME"]
    url = urlsplit(os.environ["DATABASE_URL"])._replace(path=f"/{name}").geturl()
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "portal.settings",
        "DATABASE_URL": url,
        "CRYPTOGRAPHY_KEY": settings.CRYPTOGRAPHY_KEY,
        "BLIND_INDEX_KEY": settings.BLIND_INDEX_KEY,
        "CRYPTOGRAPHY_OLD_KEYS": ",".join(settings.CRYPTOGRAPHY_OLD_KEYS),
        "BLIND_INDEX_OLD_KEYS": ",".join(settings.BLIND_INDEX_OLD_KEYS),
        "PGAPPNAME": APP_NAME,
        "PYTHONUNBUFFERED": "1",  # progress lines as they happen, to kill at the right moment
    }


def start_rotation(settings) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "manage.py", "rotate_keys", f"--batch={BATCH}"],
        cwd=ROOT,
        env=command_env(settings),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def progress_of(line: str) -> tuple[str, int] | None:
    match = PROGRESS.match(line.strip())
    return (match["label"], int(match["rows"])) if match else None


def wait_for_sessions_to_end() -> None:
    """After a kill, the server aborts the orphaned transaction once it notices; wait for that, so
    what is read next is what the run left committed."""
    deadline = time.monotonic() + 60
    with connections["owner"].cursor() as cursor:
        while time.monotonic() < deadline:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND application_name = %s",
                [APP_NAME],
            )
            if cursor.fetchone()[0] == 0:
                return
            time.sleep(0.05)
    raise AssertionError("the killed rotation's database session did not end")


# --- Reading the stored bytes (nothing decrypted) ---------------------------------------------


def key_id_column(column: str) -> sql.Composable:
    # Stored layout: version byte, then the 8-byte key id (portal.field_crypto).
    return sql.SQL("substring({} from 2 for 8)").format(sql.Identifier(column))


def bytea_columns() -> list[tuple[str, str]]:
    """Every bytea column of the schema: an encrypted column that no model declares would be here."""
    with connections["owner"].cursor() as cursor:
        cursor.execute(
            "SELECT table_name, column_name FROM information_schema.columns"
            " WHERE table_schema = current_schema() AND data_type = 'bytea' ORDER BY 1, 2"
        )
        return cursor.fetchall()


def key_ids_in_database() -> dict[tuple[str, str], dict[bytes, int]]:
    """Per bytea column, the number of values per key id.  Read as the owner (a superuser here, so
    row-level security hides nothing; the exact customer counts asserted on would show it if it did)."""
    usage = {}
    with connections["owner"].cursor() as cursor:
        for table, column in bytea_columns():
            cursor.execute(
                sql.SQL("SELECT {key}, count(*) FROM {table} WHERE {column} IS NOT NULL GROUP BY 1").format(
                    key=key_id_column(column), table=sql.Identifier(table), column=sql.Identifier(column)
                )
            )
            usage[(table, column)] = {bytes(key): n for key, n in cursor.fetchall()}
    return usage


def customer_ciphertext(up_to_pk: int) -> dict[int, tuple[bytes, ...]]:
    """The stored ciphertext of the customers up to a primary key."""
    fields = [Customer._meta.get_field(name) for name in Customer.PERSONAL_FIELDS]
    with connections["owner"].cursor() as cursor:
        cursor.execute(
            sql.SQL("SELECT id, {columns} FROM {table} WHERE id <= %s").format(
                columns=sql.SQL(", ").join(sql.Identifier(f.column) for f in fields),
                table=sql.Identifier(Customer._meta.db_table),
            ),
            [up_to_pk],
        )
        return {row[0]: tuple(bytes(v) for v in row[1:]) for row in cursor.fetchall()}


def customer_key_ids_around(checkpoint: int) -> dict[bool, set[bytes]]:
    """Key ids of the customers' encrypted values: {done (pk <= checkpoint): key ids}."""
    fields = [Customer._meta.get_field(name) for name in Customer.PERSONAL_FIELDS]
    found = {True: set(), False: set()}
    with connections["owner"].cursor() as cursor:
        for f in fields:
            cursor.execute(
                sql.SQL("SELECT DISTINCT id <= %s, {key} FROM {table}").format(
                    key=key_id_column(f.column), table=sql.Identifier(Customer._meta.db_table)
                ),
                [checkpoint],
            )
            for done, key in cursor.fetchall():
                found[done].add(bytes(key))
    return found


# --- The end state -----------------------------------------------------------------------------


def assert_everything_under_current_keys(customers, subject_requests, old_key_ids: list[bytes]) -> None:
    """Every encrypted value under the current field key, every blind index the HMAC under the
    current look-up key, everything decrypting to what was written; call with the old keys gone."""
    current = field_crypto.current_key_id()
    usage = key_ids_in_database()
    for (table, column), counts in usage.items():
        assert not set(counts) & set(old_key_ids), f"{table}.{column} still holds values under an old key"
    for model, fields in key_rotation.encrypted_models():
        for name in fields:
            column = model._meta.get_field(name).column
            assert set(usage[(model._meta.db_table, column)]) <= {current}, f"{model._meta.label}.{name}"
    for name in Customer.PERSONAL_FIELDS:
        assert usage[("datasets_customer", name)] == {current: CUSTOMERS}
    with scoped(system=True):
        stored = {
            pk: (values, (email_index, phone_index))
            for pk, *values, email_index, phone_index in Customer.objects.values_list(
                "pk", "name", "email", "phone", "email_index", "phone_index"
            ).iterator(chunk_size=10_000)
        }
    assert {pk: tuple(values) for pk, (values, _) in stored.items()} == customers
    wrong_index = [
        pk
        for pk, ((_, email, phone), indexes) in stored.items()
        if indexes != (blind_index.email_index(email), blind_index.phone_index(phone))
    ]
    assert wrong_index == [], f"{len(wrong_index)} customers' blind indexes are not under the current key"
    with scoped(system=True):
        requests = list(SubjectRequest.objects.all())
    assert {r.pk: (r.subject_email, r.subject_phone, r.details) for r in requests} == subject_requests
    for request in requests:
        email, phone = request.subject_email, request.subject_phone
        indexes = (blind_index.email_index(email), blind_index.phone_index(phone))
        assert (request.email_index, request.phone_index) == indexes, f"subject request {request.pk}"
        if request.subject_email:  # found by the DPO's search (the admin filters on the candidates)
            with scoped(system=True):
                found = SubjectRequest.objects.filter(
                    email_index__in=blind_index.email_candidates(request.subject_email)
                )
                assert request.pk in set(found.values_list("pk", flat=True))


# --- The portal user reading while the rotation runs -------------------------------------------


@dataclass
class Read:
    kind: str  # list | detail | search
    started: float  # time.time()
    seconds: float
    # search: the row's index was under the new key from before the search on ("rotated"), still
    # under the old one after it ("pending"), or changed while the search ran ("moving").
    side: str = ""


@dataclass
class PortalReader:
    """A manager reading through the API: list pages, details, exact email searches.

    Every answer is checked against the known clear values; failures are collected (raised in
    the test's thread).  ``frontier`` pages and search targets follow the rotation's checkpoint,
    so that reads land on both sides of it."""

    client: object
    customers: dict[int, tuple[str, str, str]]
    index_keys: tuple[str, str] | None = None  # (old, new) look-up keys, to tell a row's side
    reads: list[Read] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self):
        self.pks = sorted(self.customers)
        self.step = 0

    # One request of each kind per round.
    def round(self) -> None:
        checkpoint = self.checkpoint()
        self.read_list(checkpoint)
        self.read_detail(checkpoint)
        self.search(checkpoint)
        self.step += 1

    def run_for(self, requests: int) -> None:
        while len(self.reads) < requests:
            self.round()

    def run_until_stopped(self) -> None:
        try:
            while not self.stop.is_set():
                self.round()
        except Exception as exc:  # noqa: BLE001 - reported to the test thread, which fails
            self.failures.append(f"reader crashed: {exc!r}")
        finally:
            connections.close_all()

    def checkpoint(self) -> int | None:
        if self.index_keys is None:
            return None
        run = KeyRotation.objects.filter(finished_at__isnull=True).order_by("-started_at").first()
        return run.checkpoints.get(Customer._meta.label) if run else None

    def pick(self, checkpoint: int | None, rotated: bool) -> int:
        """A customer on the rotated side of the checkpoint, or well ahead of it (not yet rotated)."""
        position = bisect.bisect_right(self.pks, checkpoint) if checkpoint else 0
        if rotated and position > 0:
            return self.pks[(self.step * 7919) % position]
        ahead = min(position + 5 * BATCH, len(self.pks) - 1)
        return self.pks[ahead + (self.step * 7919) % max(1, len(self.pks) - ahead)]

    def get(self, kind: str, path: str, params=None):
        started, clock = time.time(), time.perf_counter()
        response = self.client.get(path, params or {})
        read = Read(kind, started, time.perf_counter() - clock)
        self.reads.append(read)
        if response.status_code != 200:
            self.failures.append(f"{kind} {path} {params}: {response.status_code} {response.content[:200]!r}")
            return read, None
        return read, response.json()

    def check_row(self, kind: str, row: dict) -> None:
        if (row["name"], row["email"], row["phone"]) != self.customers.get(row["id"]):
            self.failures.append(f"{kind}: customer {row['id']} read as {row['name']!r} {row['email']!r}")

    def read_list(self, checkpoint: int | None) -> None:
        # Every other page is the one holding the checkpoint: rows on both sides in one answer.
        if checkpoint and self.step % 2 == 0:
            position = min(bisect.bisect_right(self.pks, checkpoint), len(self.pks) - 1)
        else:
            position = (self.step * 104_729) % len(self.pks)
        page = position // PAGE_SIZE + 1
        _, body = self.get("list", "/api/v1/customers/", {"page_size": PAGE_SIZE, "page": page})
        if body is not None:
            if body["count"] != len(self.pks) or len(body["results"]) != PAGE_SIZE:
                self.failures.append(f"list page {page}: count {body['count']}, {len(body['results'])} rows")
            for row in body["results"]:
                self.check_row("list", row)

    def read_detail(self, checkpoint: int | None) -> None:
        pk = self.pick(checkpoint, rotated=self.step % 2 == 1)
        _, body = self.get("detail", f"/api/v1/customers/{pk}/")
        if body is not None:
            self.check_row("detail", body)

    def search(self, checkpoint: int | None) -> None:
        pk = self.pick(checkpoint, rotated=self.step % 2 == 0)
        email = self.customers[pk][1]
        query = email.upper() if self.step % 3 == 0 else email  # the index is over the normalised value
        before = self.index_side(pk, email)
        read, body = self.get("search", "/api/v1/customers/", {"email": query})
        after = self.index_side(pk, email)
        read.side = before if before == after else "moving"
        if body is not None:
            if [row["id"] for row in body["results"]] != [pk]:
                self.failures.append(f"search {query} ({read.side}): {[row['id'] for row in body['results']]}")
            for row in body["results"]:
                self.check_row("search", row)

    def index_side(self, pk: int, email: str) -> str:
        """Whether the row's email index is (still) under the old look-up key or already the new."""
        if self.index_keys is None:
            return ""
        with scoped(system=True):
            stored = Customer.objects.filter(pk=pk).values_list("email_index", flat=True).get()
        old, new = self.index_keys
        sides = {blind_index.email_index(email, old): "pending", blind_index.email_index(email, new): "rotated"}
        if stored not in sides:
            self.failures.append(f"customer {pk}: email index under neither key")
        return sides.get(stored, "?")

    def during(self, started: float, finished: float) -> list[Read]:
        return [r for r in self.reads if r.started >= started and r.started + r.seconds <= finished]


class Background:
    """Runs a reader in a thread for the duration of a ``with`` block."""

    def __init__(self, reader: PortalReader):
        self.reader = reader
        self.thread = threading.Thread(target=reader.run_until_stopped, name="portal-reader", daemon=True)

    def __enter__(self):
        self.thread.start()
        return self.reader

    def __exit__(self, *exc):
        self.reader.stop.set()
        self.thread.join(timeout=120)
        assert not self.thread.is_alive(), "the reader did not stop"


def latency(reads: list[Read]) -> tuple[float, float]:
    ms = sorted(r.seconds * 1000 for r in reads)
    return statistics.median(ms), statistics.quantiles(ms, n=100, method="inclusive")[98]


def assert_reads_ok(reader: PortalReader, reads: list[Read], what: str) -> None:
    assert reader.failures == [], f"{what}: {len(reader.failures)} failed reads, first: {reader.failures[:5]}"
    kinds = {kind: sum(r.kind == kind for r in reads) for kind in ("list", "detail", "search")}
    assert min(kinds.values()) >= 5, f"{what}: too few reads to mean anything: {kinds}"
    sides = {side: sum(r.side == side for r in reads if r.kind == "search") for side in ("rotated", "pending")}
    # Searches found rows already under the new index key and rows still under the old one.
    assert min(sides.values()) >= 2, f"{what}: searches did not land on both sides: {sides}"


# --- The test ------------------------------------------------------------------------------------


def test_rotate_keys_on_100k_customers_while_serving_then_resume_after_a_kill(settings):
    timings = {}
    clock = time.perf_counter()
    department = DepartmentFactory(name="Rotation")
    teams = [TeamFactory(name=f"Rotation {n}", department=department) for n in range(2)]
    manager = make_user(Role.MANAGER, department=department)
    customers = seed_customers([team.pk for team in teams])
    subject_requests = seed_subject_requests(customers)
    with connections["owner"].cursor() as cursor:  # as a live table would be (autovacuum)
        cursor.execute(sql.SQL("VACUUM (ANALYZE) {}").format(sql.Identifier(Customer._meta.db_table)))
    timings["seed"] = time.perf_counter() - clock
    key_id_0 = field_crypto.current_key_id()
    index_key_0 = settings.BLIND_INDEX_KEY
    client = token_client(manager)

    # The new keys are deployed (the old ones still in the ring); nothing is rotated yet.
    switch_keys(settings, KEYS_1)
    key_id_1 = field_crypto.current_key_id()
    assert key_id_1 != key_id_0
    baseline = PortalReader(client, customers)
    baseline.run_for(READS_BEFORE)
    assert baseline.failures == []
    before_p50, before_p99 = latency(baseline.reads)

    # Rotation 1, uninterrupted, with the portal reading throughout.
    reader = PortalReader(client, customers, index_keys=(index_key_0, KEYS_1[1]))
    clock = time.perf_counter()
    with Background(reader):
        process = start_rotation(settings)
        output, _ = process.communicate(timeout=TIMEOUT)
    process_seconds = time.perf_counter() - clock
    assert process.returncode == 0, output[-3000:]
    run_1 = KeyRotation.objects.get(key_id=key_id_1.hex())
    assert run_1.finished_at is not None
    assert run_1.rows == {"datasets.Customer": CUSTOMERS, "compliance.SubjectRequest": SUBJECT_REQUESTS}
    assert f"rotation {run_1.pk} complete" in output
    progress = [p for p in map(progress_of, output.splitlines()) if p]
    assert progress[: CUSTOMERS // BATCH] == [
        ("datasets.Customer", n * BATCH) for n in range(1, CUSTOMERS // BATCH + 1)
    ]
    rotation_seconds = (run_1.finished_at - run_1.started_at).total_seconds()
    during = reader.during(run_1.started_at.timestamp(), run_1.finished_at.timestamp())
    assert_reads_ok(reader, during, "rotation 1")
    during_p50, during_p99 = latency(during)

    # The old keys can go: everything decrypts and is found under the new keys alone.
    drop_old_keys(settings)
    clock = time.perf_counter()
    assert_everything_under_current_keys(customers, subject_requests, [key_id_0])
    timings["verify"] = time.perf_counter() - clock
    after = PortalReader(client, customers)
    after.run_for(30)
    assert after.failures == []

    # Rotation 2 (keys 1 -> 2): killed after some batches, then resumed; reads go on throughout.
    switch_keys(settings, KEYS_2)
    key_id_2 = field_crypto.current_key_id()
    reader_2 = PortalReader(client, customers, index_keys=(KEYS_1[1], KEYS_2[1]))
    clock = time.perf_counter()
    with Background(reader_2):
        process = start_rotation(settings)
        try:
            reported = 0
            for line in process.stdout:
                done = progress_of(line)
                if done and done[0] == "datasets.Customer":
                    reported = done[1]
                    if reported >= KILL_AFTER_ROWS:
                        process.send_signal(signal.SIGKILL)  # the worker dies mid-run, no clean-up
                        timings["kill"] = time.perf_counter() - clock
                        break
            process.wait(timeout=TIMEOUT)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
        assert process.returncode == -signal.SIGKILL, f"the rotation ended before the kill ({reported} rows)"
        wait_for_sessions_to_end()

        interrupted = KeyRotation.objects.get(key_id=key_id_2.hex())
        assert interrupted.finished_at is None
        checkpoint = interrupted.checkpoints["datasets.Customer"]
        rows_done = interrupted.rows["datasets.Customer"]
        assert rows_done >= KILL_AFTER_ROWS and rows_done % BATCH == 0
        assert rows_done == sum(pk <= checkpoint for pk in customers)
        # Committed batches are whole: all rows up to the checkpoint are under key 2, none after it.
        assert customer_key_ids_around(checkpoint) == {True: {key_id_2}, False: {key_id_1}}
        done_before_kill = customer_ciphertext(checkpoint)
        assert len(done_before_kill) == rows_done

        resume_clock = time.perf_counter()
        resumed = start_rotation(settings)
        resumed_output, _ = resumed.communicate(timeout=TIMEOUT)
        timings["resume"] = time.perf_counter() - resume_clock
        assert resumed.returncode == 0, resumed_output[-3000:]
    interrupted_seconds = time.perf_counter() - clock
    resumed_progress = [p for p in map(progress_of, resumed_output.splitlines()) if p]
    # It went on from the checkpoint: its first batch is the one after the rows already done ...
    assert resumed_progress[0] == ("datasets.Customer", rows_done + BATCH)
    # ... and left those rows alone (a rewrite would have drawn new nonces).
    assert customer_ciphertext(checkpoint) == done_before_kill
    run_2 = KeyRotation.objects.get(key_id=key_id_2.hex())
    assert run_2.pk == interrupted.pk and run_2.finished_at is not None
    # The same end as the uninterrupted run: every row counted once, the same last rows.
    assert run_2.rows == run_1.rows
    assert run_2.checkpoints == run_1.checkpoints
    assert AuditEvent.objects.using("owner").filter(action="KEY_ROTATED").count() == 2
    assert_reads_ok(reader_2, reader_2.reads, "rotation 2 (killed, resumed)")
    drop_old_keys(settings)
    assert_everything_under_current_keys(customers, subject_requests, [key_id_0, key_id_1])
    after_2 = PortalReader(client, customers)
    after_2.run_for(15)
    assert after_2.failures == []

    rows = sum(run_1.rows.values())
    searches = [r for r in during if r.kind == "search"]
    print(
        f"\nkey rotation at scale: {CUSTOMERS} customers + {SUBJECT_REQUESTS} subject requests"
        f" (seeded in {timings['seed']:.1f}s; batch {BATCH})"
        f"\n  rotation 1: {rows} rows in {rotation_seconds:.1f}s = {rows / rotation_seconds:,.0f} rows/s"
        f" (command process {process_seconds:.1f}s including Django start-up)"
        f"\n  reads served during rotation 1: {len(during)}"
        f" ({sum(r.kind == 'list' for r in during)} list pages, {sum(r.kind == 'detail' for r in during)} details,"
        f" {len(searches)} email searches: {sum(r.side == 'rotated' for r in searches)} on rotated rows,"
        f" {sum(r.side == 'pending' for r in searches)} on rows not yet rotated), all 200 and correct"
        f"\n  read latency p50/p99: before {before_p50:.1f}/{before_p99:.1f} ms,"
        f" during {during_p50:.1f}/{during_p99:.1f} ms"
        f"\n  end-state check (every row decrypted, every index recomputed, bytea scan): {timings['verify']:.1f}s"
        f"\n  rotation 2: SIGKILL {timings['kill']:.1f}s after start, {rows_done} rows done (checkpoint pk"
        f" {checkpoint}); the re-run went on from there: {timings['resume']:.1f}s for the remaining"
        f" {sum(run_2.rows.values()) - rows_done} rows; {interrupted_seconds:.1f}s in all,"
        f" {len(reader_2.reads)} reads meanwhile, all 200 and correct"
    )
