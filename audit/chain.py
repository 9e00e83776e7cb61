"""The hash chain over audit events: canonical form, hashing, appending and verification.

``hash = SHA-256(canonical JSON of the event's fields, prev_hash included)``, with sorted keys
and no whitespace.  Appends are serialised with a transaction-scoped advisory lock so that
concurrent writers (web threads, workers, hosts) still build one unbroken chain in id order.
"""

import hashlib
import json
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC

from django.db import connections, transaction

from audit.models import AuditChainCheck, AuditEvent

GENESIS = "0" * 64
# pg_advisory_xact_lock key of the chain ("auditchn" as a 64-bit integer).
CHAIN_LOCK_KEY = int.from_bytes(b"auditchn", "big")
DATABASE = "default"

# The fields a hash covers, in the order they are read back for verification.
HASHED_FIELDS = (
    "timestamp",
    "actor_id",
    "actor_email",
    "action",
    "resource",
    "object_ids",
    "rows",
    "ip_address",
    "user_agent",
    "request_id",
    "success",
    "reason",
    "extra",
    "prev_hash",
)


def canonical(values: dict) -> bytes:
    """The canonical bytes of one event: sorted-key compact JSON; timestamps in UTC, microseconds."""
    doc = dict(values)
    doc["timestamp"] = values["timestamp"].astimezone(UTC).isoformat(timespec="microseconds")
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def event_hash(values: dict) -> str:
    return hashlib.sha256(canonical(values)).hexdigest()


def values_of(event: AuditEvent) -> dict:
    return {name: getattr(event, name) for name in HASHED_FIELDS}


class _Ticket:
    def __init__(self, events):
        self.events = events
        self.done = False
        self.error: BaseException | None = None


# Group commit: the chain serialises appends up to their COMMIT, so one writer at a time would
# pay one WAL flush per event.  Threads of a process that append at the same moment are
# combined: whoever holds the leader lock writes every pending event in one transaction.
_leader = threading.Lock()
_pending_lock = threading.Lock()
_pending: list[_Ticket] = []


def append(events: list[AuditEvent], using: str = DATABASE) -> list[AuditEvent]:
    """Chain and insert ``events``, committed when this returns.

    Outside a transaction, concurrent callers in this process share one transaction (group
    commit).  Inside one (a caller's atomic block), the events join that transaction alone."""
    if not events:
        return events
    if connections[using].in_atomic_block:
        return _append_now(events, using)
    ticket = _Ticket(events)
    with _pending_lock:
        _pending.append(ticket)
    with _leader:
        if not ticket.done:
            with _pending_lock:
                batch = list(_pending)
                _pending.clear()
            try:
                _append_now([event for t in batch for event in t.events], using)
            except BaseException as exc:
                for t in batch:
                    t.error = exc
                raise
            finally:
                for t in batch:
                    t.done = True
    if ticket.error is not None:
        raise ticket.error
    return events


def _append_now(events: list[AuditEvent], using: str) -> list[AuditEvent]:
    """Chain and insert ``events`` in one short transaction (one INSERT for all of them)."""
    with transaction.atomic(using=using):
        with connections[using].cursor() as cursor:
            # The advisory lock is held to the end of the transaction, so the next writer reads
            # this one's head; the head is read after the lock, under a fresh snapshot
            # (audit_chain_lock_head, migration 0003).
            cursor.execute("SELECT audit_chain_lock_head(%s)", [CHAIN_LOCK_KEY])
            row = cursor.fetchone()
        previous = row[0] if row and row[0] else GENESIS
        for event in events:
            event.prev_hash = previous
            event.hash = event_hash(values_of(event))
            previous = event.hash
        AuditEvent.objects.using(using).bulk_create(events)
    return events


@dataclass
class ChainReport:
    ok: bool
    events: int
    head_id: int | None
    head_hash: str
    first_bad_id: int | None = None
    detail: str = ""


def _rows(using: str, batch: int) -> Iterator[tuple]:
    """Every event in id order, in keyset-paginated batches (bounded memory, index scans)."""
    last_id = 0
    fields = ("id", *HASHED_FIELDS, "hash")
    while True:
        rows = list(AuditEvent.objects.using(using).filter(id__gt=last_id).order_by("id").values_list(*fields)[:batch])
        if not rows:
            return
        yield from rows
        last_id = rows[-1][0]


def verify(using: str = DATABASE, *, anchors: Iterable[tuple[int, str]] = (), batch: int = 5000) -> ChainReport:
    """Walk the chain from the genesis; report the first event whose hash or link is wrong.

    ``anchors`` are (id, hash) pairs seen by earlier runs: a missing or changed anchor means
    events were cut off the end of the chain since."""
    previous_hash = GENESIS
    count = 0
    head_id = None
    seen_anchor = {}
    wanted = dict(anchors)
    for row in _rows(using, batch):
        event_id, *values, stored_hash = row
        fields = dict(zip(HASHED_FIELDS, values, strict=True))
        count += 1
        if fields["prev_hash"] != previous_hash:
            return ChainReport(
                False, count, head_id, previous_hash, event_id, f"event {event_id}: link to its predecessor is broken"
            )
        if event_hash(fields) != stored_hash:
            return ChainReport(
                False, count, head_id, previous_hash, event_id, f"event {event_id}: content does not match its hash"
            )
        if event_id in wanted:
            seen_anchor[event_id] = stored_hash
        previous_hash = stored_hash
        head_id = event_id
    for anchor_id, anchor_hash in wanted.items():
        if seen_anchor.get(anchor_id) != anchor_hash:
            return ChainReport(
                False,
                count,
                head_id,
                previous_hash,
                anchor_id,
                f"event {anchor_id}: verified earlier, now missing or changed (chain cut)",
            )
    return ChainReport(True, count, head_id, previous_hash)


def last_anchor(using: str = DATABASE) -> list[tuple[int, str]]:
    """The head recorded by the last successful check, if any."""
    check = AuditChainCheck.objects.using(using).filter(ok=True, head_id__isnull=False).order_by("-id").first()
    return [(check.head_id, check.head_hash)] if check else []
