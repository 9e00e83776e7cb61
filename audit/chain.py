"""The hash chain over audit events: canonical form, hashing, appending and verification.

``hash = SHA-256(canonical JSON of the event's fields, prev_hash included)``, with sorted keys
and no whitespace.  Appends are serialised with a transaction-scoped advisory lock so that
concurrent writers (web threads, workers, hosts) still build one unbroken chain in id order.
"""

import hashlib
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC

from django.db import connections, transaction
from psycopg import sql

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


def append(events: list[AuditEvent], using: str = DATABASE) -> list[AuditEvent]:
    """Chain and insert ``events`` in one short transaction (one INSERT for all of them)."""
    if not events:
        return events
    table = sql.Identifier(AuditEvent._meta.db_table)
    with transaction.atomic(using=using):
        with connections[using].cursor() as cursor:
            # Held to the end of the transaction: the next writer reads this one's head.
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [CHAIN_LOCK_KEY])
            # A new statement, so a new snapshot: the previous holder's commit is visible.
            cursor.execute(sql.SQL("SELECT hash FROM {} ORDER BY id DESC LIMIT 1").format(table))
            row = cursor.fetchone()
        previous = row[0] if row else GENESIS
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
