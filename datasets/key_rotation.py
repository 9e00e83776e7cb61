"""Key rotation without downtime: re-encrypt every encrypted field and recompute blind indexes.

The operator sets the new CRYPTOGRAPHY_KEY / BLIND_INDEX_KEY and lists the previous ones in
CRYPTOGRAPHY_OLD_KEYS / BLIND_INDEX_OLD_KEYS; the portal keeps serving (old keys still decrypt,
look-ups try every index key) while ``rotate_keys`` walks each model in primary-key order, one
short transaction per batch, saving a checkpoint after each batch.  A run that dies resumes
from its checkpoint; rows already under the new key are rewritten harmlessly.
"""

from django.apps import apps
from django.db import connection, models, transaction
from django.db.models import Count
from django.db.models.functions import Substr
from django.utils import timezone

from audit import services as audit
from audit.choices import AuditAction
from datasets.models import KeyRotation
from portal import bulk_rows, field_crypto
from portal.security_context import scoped

BATCH = 1000
# pg_advisory_xact_lock(class, key) class for choosing the run ("rotk").
RUN_LOCK_CLASS = int.from_bytes(b"rotk", "big")


def encrypted_models() -> list[tuple[type, list[str]]]:
    """Every model with encrypted fields in its own table, and those fields' names (a proxy, or a
    child model's inherited fields, would rewrite the parent's rows a second time)."""
    found = []
    for model in apps.get_models():
        if model._meta.proxy:
            continue
        names = [f.name for f in model._meta.local_concrete_fields if isinstance(f, field_crypto.EncryptedTextMixin)]
        if names:
            found.append((model, names))
    return found


def current_run() -> KeyRotation:
    """The unfinished run for the current key, or a new one.

    Serialised by a transaction-level advisory lock, so that two ``rotate_keys`` started together
    share one run (and then take its batches in turn) instead of each starting its own."""
    key_id = field_crypto.current_key_id().hex()
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s, 0)", [RUN_LOCK_CLASS])
        run = KeyRotation.objects.filter(finished_at__isnull=True, key_id=key_id).first()
        return run or KeyRotation.objects.create(key_id=key_id)


def rotate_batch(model, fields: list[str], after_pk, batch: int = BATCH) -> tuple[int, object]:
    """Rewrite the batch after ``after_pk`` (None: from the start) under the current keys;
    returns (rows, last primary key)."""
    with scoped(system=True):
        pending = model.objects.select_for_update().order_by("pk")
        if after_pk is not None:
            pending = pending.filter(pk__gt=after_pk)
        rows = list(pending[:batch])
        if not rows:
            return 0, after_pk
        update = list(fields)
        if hasattr(model, "refresh_blind_indexes"):
            for row in rows:
                row.refresh_blind_indexes()
            update += list(model.BLIND_INDEX_FIELDS)
        # Each encrypted value is re-encrypted under the current key by its field on the way out;
        # one statement per batch (not bulk_update: see portal.bulk_rows).
        written = bulk_rows.update(model, rows, update)
        if written not in (0, len(rows)):  # 0: every value NULL, nothing to rewrite
            raise RuntimeError(f"{model._meta.label}: {written} of {len(rows)} rows rewritten")
        return len(rows), rows[-1].pk


def rotate(batch: int = BATCH, progress=None) -> KeyRotation:
    """Run (or resume) the rotation to completion; audit it once done."""
    run = current_run()
    for model, fields in encrypted_models():
        label = model._meta.label
        while True:
            with transaction.atomic():
                # The run row is locked and its checkpoint re-read for every batch: a second
                # rotate_keys started by mistake waits for this batch and carries on after it
                # instead of rewriting the same rows (or overwriting the checkpoint).
                run = KeyRotation.objects.select_for_update().get(pk=run.pk)
                done, last = rotate_batch(model, fields, run.checkpoints.get(label), batch)
                if not done:
                    break
                run.checkpoints[label] = last
                run.rows[label] = run.rows.get(label, 0) + done
                run.save(update_fields=["checkpoints", "rows"])
            if progress:
                progress(label, run.rows[label])
    with transaction.atomic():
        run = KeyRotation.objects.select_for_update().get(pk=run.pk)
        if run.finished_at is not None:  # a concurrent rotate_keys got there first (and audited it)
            return run
        run.finished_at = timezone.now()
        run.save(update_fields=["finished_at"])
    audit.record(AuditAction.KEY_ROTATED, resource="encrypted fields", rows=sum(run.rows.values()), extra=run.rows)
    return run


def keys_in_use() -> dict[str, dict[str, int]]:
    """Per model, rows per field-key id (first encrypted field), to confirm an old key can go.

    Read from the stored bytes (version byte, then the 8-byte key id): nothing is decrypted."""
    usage = {}
    with scoped(system=True):
        for model, fields in encrypted_models():
            key_id = Substr(fields[0], 2, 8, output_field=models.BinaryField())
            rows = model.objects.order_by().annotate(k=key_id).values("k").annotate(n=Count("pk"))
            usage[model._meta.label] = {bytes(row["k"]).hex(): row["n"] for row in rows}
    return usage
