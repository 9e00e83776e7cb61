"""Retention: preview a policy, enable it, and apply it in short batches.

How a run works (``run_policy``):

* A session-level advisory lock per policy keeps two workers off the same policy; a killed
  worker's connection ends and PostgreSQL releases its lock.
* The run is a ``RetentionRun`` row with a fixed cutoff.  Each batch is one statement in one
  short transaction under the system scope: select at most ``RETENTION_BATCH_SIZE`` (<= 10,000)
  expired rows in id order after the run's cursor, lock them, (copy them to the archive,) delete
  or anonymise them, and in the same transaction advance the run's cursor, counters and digest.
  A batch is all or nothing, so the archive never holds a row that is still live or lost one that
  is gone, and a crash leaves the run describing exactly what was committed.
* An unfinished run is resumed by the next run of its policy (same cutoff, same cursor): the
  interrupted batch was rolled back and is simply done again, so an interrupted and resumed run
  ends in the same state, with the same digest, as an uninterrupted one.
* The end: the post-condition (no row older than the cutoff is left, counted in short id-range
  transactions), then in one transaction the run's status, its RETENTION_PURGE audit event
  (counts, digest, proof hash) and the proof-of-deletion record.

SQL is built with ``psycopg.sql`` from the allow-list in ``compliance.retention_datasets``
(table and column names of known models), never from input; values are parameters.
"""

import hashlib
import json
import logging
import time
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connections
from django.utils import timezone
from psycopg import sql

from audit import services as audit
from audit.choices import AuditAction
from compliance.governance_choices import RetentionAction, RunStatus, RunTrigger
from compliance.governance_models import RetentionPolicy, RetentionProof, RetentionRun
from compliance.retention_datasets import DATASETS, RetentionDataset
from portal.security_context import scoped

logger = logging.getLogger("compliance.retention")

MAX_BATCH = 10_000
DATABASE = "default"
# pg_advisory_lock(class, policy id): the class is "RETN" as a 32-bit integer.
LOCK_CLASS = int.from_bytes(b"RETN", "big")
# The post-condition is counted in id windows of this many ids, each in its own short transaction.
VERIFY_WINDOW = 500_000
DIGEST_NOTE = "d_k = sha256(d_(k-1) || sha256(ids of batch k, ascending, comma-separated)); d_0 = 64 zeros"


class RetentionError(ValueError):
    """A retention request that cannot be carried out; the message says why."""


def batch_size() -> int:
    return max(1, min(int(getattr(settings, "RETENTION_BATCH_SIZE", MAX_BATCH)), MAX_BATCH))


def cutoff_for(policy: RetentionPolicy, now: datetime | None = None) -> datetime:
    return (now or timezone.now()) - timedelta(days=policy.max_age_days)


# --- SQL from the allow-list -------------------------------------------------------------------


def _ident(model, field_name: str) -> sql.Identifier:
    return sql.Identifier(model._meta.get_field(field_name).column)


def _table(model) -> sql.Identifier:
    return sql.Identifier(model._meta.db_table)


def _anonymise_values(spec: RetentionDataset) -> list[tuple[sql.Identifier, object]]:
    return [(_ident(spec.model, name), value) for name, value in sorted(spec.anonymise.items())]


def _pending(spec: RetentionDataset, action: str, age_field: str) -> tuple[sql.Composable, list]:
    """WHERE clause (and its parameters after the cutoff) of rows the rule still has to handle."""
    clause = sql.SQL("{} < %s").format(_ident(spec.model, age_field))
    params: list = []
    if action == RetentionAction.ANONYMISE:
        # Rows already anonymised are done: they stay, without the link to the person.
        parts = []
        for column, value in _anonymise_values(spec):
            parts.append(sql.SQL("{} IS DISTINCT FROM %s").format(column))
            params.append(value)
        clause = sql.SQL("{} AND ({})").format(clause, sql.SQL(" OR ").join(parts))
    return clause, params


def _batch_statement(spec: RetentionDataset, action: str, age_field: str) -> tuple[sql.Composed, list]:
    """One statement per batch; returns (max id handled, rows removed, rows archived/anonymised,
    sha256 of the ids handled).  Parameters: cutoff, pending params, after id, limit, then the run
    id and archive time (archive) or the anonymised values (anonymise)."""
    model = spec.model
    table, pk = _table(model), _ident(model, model._meta.pk.name)
    pending, pending_params = _pending(spec, action, age_field)
    digest_of = sql.SQL(
        "(SELECT sha256(convert_to(coalesce(string_agg({pk}::text, ',' ORDER BY {pk}), ''), 'UTF8')) FROM {src})"
    )
    if action == RetentionAction.ARCHIVE:
        archive = spec.archive_model
        columns = sql.SQL(", ").join(sql.Identifier(c) for c in spec.archive_columns)
        statement = sql.SQL(
            "WITH batch AS (SELECT {columns} FROM {table} WHERE {pending} AND {pk} > %s ORDER BY {pk} LIMIT %s"
            " FOR UPDATE),"
            " kept AS (INSERT INTO {archive} ({columns}, {run_col}, {archived_col})"
            " SELECT {columns}, %s, %s FROM batch ON CONFLICT ({archive_pk}) DO NOTHING RETURNING {archive_pk}),"
            " gone AS (DELETE FROM {table} WHERE {pk} IN (SELECT {pk} FROM batch) RETURNING {pk})"
            " SELECT (SELECT max({pk}) FROM batch), (SELECT count(*) FROM gone), (SELECT count(*) FROM kept), {digest}"
        ).format(
            columns=columns,
            table=table,
            pending=pending,
            pk=pk,
            archive=_table(archive),
            run_col=_ident(archive, "run_id"),
            archived_col=_ident(archive, "archived_at"),
            archive_pk=_ident(archive, archive._meta.pk.name),
            digest=digest_of.format(pk=pk, src=sql.Identifier("gone")),
        )
        return statement, pending_params
    if action == RetentionAction.ANONYMISE:
        assignments = sql.SQL(", ").join(sql.SQL("{} = %s").format(c) for c, _ in _anonymise_values(spec))
        statement = sql.SQL(
            "WITH batch AS (SELECT {pk} FROM {table} WHERE {pending} AND {pk} > %s ORDER BY {pk} LIMIT %s"
            " FOR UPDATE),"
            " done AS (UPDATE {table} SET {assignments} WHERE {pk} IN (SELECT {pk} FROM batch) RETURNING {pk})"
            " SELECT (SELECT max({pk}) FROM batch), 0, (SELECT count(*) FROM done), {digest}"
        ).format(
            pk=pk,
            table=table,
            pending=pending,
            assignments=assignments,
            digest=digest_of.format(pk=pk, src=sql.Identifier("done")),
        )
        return statement, pending_params
    statement = sql.SQL(
        "WITH batch AS (SELECT {pk} FROM {table} WHERE {pending} AND {pk} > %s ORDER BY {pk} LIMIT %s FOR UPDATE),"
        " gone AS (DELETE FROM {table} WHERE {pk} IN (SELECT {pk} FROM batch) RETURNING {pk})"
        " SELECT (SELECT max({pk}) FROM batch), (SELECT count(*) FROM gone), 0, {digest}"
    ).format(pk=pk, table=table, pending=pending, digest=digest_of.format(pk=pk, src=sql.Identifier("gone")))
    return statement, pending_params


# --- preview, enable ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Preview:
    dataset: str
    action: str
    cutoff: datetime
    rows: int
    oldest_id: int | None
    oldest_at: datetime | None

    def as_dict(self) -> dict:
        return {
            "dataset": self.dataset,
            "action": self.action,
            "cutoff": self.cutoff.isoformat(),
            "rows": self.rows,
            "oldest_id": self.oldest_id,
            "oldest_at": self.oldest_at.isoformat() if self.oldest_at else None,
        }


def compute_preview(policy: RetentionPolicy, now: datetime | None = None) -> Preview:
    """What a run would handle now: row count and the oldest row (id and age only)."""
    spec = policy.spec
    model = spec.model
    cutoff = cutoff_for(policy, now)
    pending, pending_params = _pending(spec, policy.action, policy.age_field)
    age, pk = _ident(model, policy.age_field), _ident(model, model._meta.pk.name)
    count_sql = sql.SQL("SELECT count(*), min({age}) FROM {table} WHERE {pending}").format(
        age=age, table=_table(model), pending=pending
    )
    oldest_sql = sql.SQL("SELECT {pk} FROM {table} WHERE {age} = %s ORDER BY {pk} LIMIT 1").format(
        pk=pk, table=_table(model), age=age
    )
    with scoped(system=True, using=DATABASE), connections[DATABASE].cursor() as cursor:
        cursor.execute(count_sql, [cutoff, *pending_params])
        rows, oldest_at = cursor.fetchone()
        oldest_id = None
        if oldest_at is not None:
            cursor.execute(oldest_sql, [oldest_at])
            oldest_id = cursor.fetchone()[0]
    return Preview(policy.dataset, policy.action, cutoff, rows, oldest_id, oldest_at)


def preview(policy: RetentionPolicy, *, actor=None) -> Preview:
    """Compute the preview and keep it on the policy: enabling is based on it."""
    result = compute_preview(policy)
    policy.previewed_at = timezone.now()
    policy.previewed_by = actor if getattr(actor, "is_authenticated", False) else None
    policy.preview_cutoff = result.cutoff
    policy.preview_rows = result.rows
    policy.preview_oldest_id = result.oldest_id
    policy.preview_oldest_at = result.oldest_at
    policy.preview_rule = policy.rule()
    policy.save(
        update_fields=[
            "previewed_at",
            "previewed_by",
            "preview_cutoff",
            "preview_rows",
            "preview_oldest_id",
            "preview_oldest_at",
            "preview_rule",
            "updated_at",
        ]
    )
    return result


def enable(policy: RetentionPolicy, *, actor=None) -> None:
    """Enable a policy: only on a recent preview of exactly this rule."""
    hours = int(getattr(settings, "RETENTION_PREVIEW_VALID_HOURS", 24))
    if policy.previewed_at is None or policy.preview_rule != policy.rule():
        raise RetentionError("Preview this policy first: counts and the oldest row are checked before enabling.")
    if timezone.now() - policy.previewed_at > timedelta(hours=hours):
        raise RetentionError(f"The preview is older than {hours} hours: preview again before enabling.")
    policy.enabled = True
    policy.save(update_fields=["enabled", "updated_at"])


def disable(policy: RetentionPolicy, *, actor=None) -> None:
    policy.enabled = False
    policy.save(update_fields=["enabled", "updated_at"])


RULE_FIELDS = ("dataset", "age_field", "max_age_days", "action")


def ensure_default_policies() -> list[RetentionPolicy]:
    """The seed's defaults, created disabled if missing (the migration does the same)."""
    from compliance.retention_datasets import DEFAULT_POLICIES

    return [
        RetentionPolicy.objects.get_or_create(
            dataset=default["dataset"], defaults={k: v for k, v in default.items() if k != "dataset"}
        )[0]
        for default in DEFAULT_POLICIES
    ]


def save_policy(policy: RetentionPolicy, changed: set[str]) -> bool:
    """Save an edited policy; a changed rule is disabled until previewed again.  Returns whether it was."""
    disabled = bool(policy.enabled and changed & set(RULE_FIELDS))
    if disabled:
        policy.enabled = False
    if "legal_hold" in changed or policy.legal_hold_since is None:
        policy.legal_hold_since = timezone.now() if policy.legal_hold else None
    if not policy.legal_hold:
        policy.legal_hold_reason = ""
    policy.save()
    return disabled


# --- runs --------------------------------------------------------------------------------------


@contextmanager
def _policy_lock(policy_id: int):
    """Session-level advisory lock; released on exit or when the connection dies with its worker."""
    connection = connections[DATABASE]
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s, %s)", [LOCK_CLASS, policy_id])
        got = cursor.fetchone()[0]
    try:
        yield got
    finally:
        if got:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s, %s)", [LOCK_CLASS, policy_id])


def _rule_of(policy: RetentionPolicy) -> dict:
    return {
        "policy": policy.pk,
        "dataset": policy.dataset,
        "age_field": policy.age_field,
        "max_age_days": policy.max_age_days,
        "action": policy.action,
    }


def _start_or_resume(policy: RetentionPolicy, trigger: str, actor) -> RetentionRun:
    with scoped(system=True, using=DATABASE):
        run = RetentionRun.objects.select_for_update().filter(policy=policy, status=RunStatus.RUNNING).first()
        if run is not None:
            RetentionRun.objects.filter(pk=run.pk).update(resumed=run.resumed + 1, heartbeat_at=timezone.now())
            run.resumed += 1
            logger.info("retention run %s resumed at id %s", run.pk, run.cursor_id)
            return run
        return RetentionRun.objects.create(
            policy=policy,
            rule=_rule_of(policy),
            trigger=trigger,
            requested_by=actor if getattr(actor, "is_authenticated", False) else None,
            cutoff=cutoff_for(policy),
        )


def _spec_of(run: RetentionRun) -> RetentionDataset:
    return DATASETS[run.rule["dataset"]]


def _one_batch(run: RetentionRun, limit: int) -> int:
    """Handle one batch in one transaction; returns rows handled (0: the run is done)."""
    spec = _spec_of(run)
    action, age_field = run.rule["action"], run.rule["age_field"]
    statement, pending_params = _batch_statement(spec, action, age_field)
    params = [run.cutoff, *pending_params, run.cursor_id, limit]
    if action == RetentionAction.ARCHIVE:
        params += [run.pk, timezone.now()]
    elif action == RetentionAction.ANONYMISE:
        params += [value for _, value in _anonymise_values(spec)]
    started = time.perf_counter()
    with scoped(system=True, using=DATABASE), connections[DATABASE].cursor() as cursor:
        cursor.execute(statement, params)
        max_id, removed, kept, batch_digest = cursor.fetchone()
        if max_id is None:
            return 0
        handled = removed if action != RetentionAction.ANONYMISE else kept
        digest = hashlib.sha256(bytes.fromhex(run.digest) + bytes(batch_digest)).hexdigest()
        run.cursor_id = max_id
        run.batches += 1
        run.rows_deleted += removed
        run.rows_archived += kept if action == RetentionAction.ARCHIVE else 0
        run.rows_anonymised += kept if action == RetentionAction.ANONYMISE else 0
        run.digest = digest
        run.heartbeat_at = timezone.now()
        # queryset.update: progress is not a change-history entry per batch.
        RetentionRun.objects.filter(pk=run.pk).update(
            cursor_id=run.cursor_id,
            batches=run.batches,
            rows_deleted=run.rows_deleted,
            rows_archived=run.rows_archived,
            rows_anonymised=run.rows_anonymised,
            digest=run.digest,
            heartbeat_at=run.heartbeat_at,
            longest_batch_ms=run.longest_batch_ms,
        )
    elapsed_ms = int((time.perf_counter() - started) * 1000)
    run.longest_batch_ms = max(run.longest_batch_ms, elapsed_ms)
    return max(handled, 1)


def remaining(spec: RetentionDataset, action: str, age_field: str, cutoff: datetime) -> int:
    """Rows the rule would still handle, counted in short id-window transactions."""
    model = spec.model
    table, pk = _table(model), _ident(model, model._meta.pk.name)
    pending, pending_params = _pending(spec, action, age_field)
    bounds = sql.SQL("SELECT min({pk}), max({pk}) FROM {table}").format(pk=pk, table=table)
    window = sql.SQL("SELECT count(*) FROM {table} WHERE {pk} >= %s AND {pk} < %s AND {pending}").format(
        table=table, pk=pk, pending=pending
    )
    with scoped(system=True, using=DATABASE), connections[DATABASE].cursor() as cursor:
        cursor.execute(bounds)
        low, high = cursor.fetchone()
    if low is None:
        return 0
    total = 0
    start = low
    while start <= high:
        with scoped(system=True, using=DATABASE), connections[DATABASE].cursor() as cursor:
            cursor.execute(window, [start, start + VERIFY_WINDOW, cutoff, *pending_params])
            total += cursor.fetchone()[0]
        start += VERIFY_WINDOW
    return total


def _canonical(document: dict) -> bytes:
    return json.dumps(document, sort_keys=True, separators=(",", ":"), default=str).encode()


def _finish(run: RetentionRun, status: str, note: str = "") -> RetentionRun:
    spec = _spec_of(run)
    left = remaining(spec, run.rule["action"], run.rule["age_field"], run.cutoff)
    finished = timezone.now()
    document = {
        "kind": "retention-proof/v1",
        "run": run.pk,
        "rule": run.rule,
        "table": spec.model._meta.db_table,
        "cutoff": run.cutoff.isoformat(),
        "trigger": run.trigger,
        "requested_by_id": run.requested_by_id,
        "started_at": run.started_at.isoformat(),
        "finished_at": finished.isoformat(),
        "status": status,
        "note": note,
        "rows": {"deleted": run.rows_deleted, "archived": run.rows_archived, "anonymised": run.rows_anonymised},
        "batches": run.batches,
        "batch_size_limit": batch_size(),
        "resumed": run.resumed,
        "last_id": run.cursor_id,
        "id_digest": run.digest,
        "id_digest_algorithm": DIGEST_NOTE,
        "rows_older_than_cutoff_after_run": left,
    }
    if spec.archive_model_label:
        document["archive_table"] = spec.archive_model._meta.db_table
    proof_sha256 = hashlib.sha256(_canonical(document)).hexdigest()
    handled = run.rows_deleted + run.rows_anonymised
    with scoped(system=True, using=DATABASE):
        RetentionRun.objects.filter(pk=run.pk).update(
            status=status, finished_at=finished, longest_batch_ms=run.longest_batch_ms, error=note[:300]
        )
        event = audit.record(
            AuditAction.RETENTION_PURGE,
            actor=run.requested_by,
            resource=spec.key,
            rows=handled,
            success=status == RunStatus.COMPLETED and left == 0,
            reason=f"retention run {run.pk}: {run.rule['action']} {spec.key} "
            f"older than {run.rule['max_age_days']} days",
            extra={
                "run": run.pk,
                "status": status,
                "cutoff": run.cutoff.isoformat(),
                "deleted": run.rows_deleted,
                "archived": run.rows_archived,
                "anonymised": run.rows_anonymised,
                "batches": run.batches,
                "id_digest": run.digest,
                "remaining": left,
                "proof_sha256": proof_sha256,
            },
        )
        RetentionProof.objects.create(
            run=run,
            created_at=finished,
            document=document,
            sha256=proof_sha256,
            audit_event_id=event.pk,
            audit_event_hash=event.hash or "",
        )
    run.status, run.finished_at = status, finished
    logger.info(
        "retention run %s %s: %s deleted, %s archived, %s anonymised in %s batches (longest %s ms), %s left",
        run.pk,
        status,
        run.rows_deleted,
        run.rows_archived,
        run.rows_anonymised,
        run.batches,
        run.longest_batch_ms,
        left,
    )
    return run


def run_policy(
    policy: RetentionPolicy, *, trigger: str = RunTrigger.COMMAND, actor=None, closed: list | None = None
) -> RetentionRun | None:
    """Apply (or resume) one policy to the end.  None: another worker holds the policy.

    An unfinished run of an older version of the rule is closed (stopped, with its proof) rather
    than resumed: a longer maximum age must not be overridden by a run started under a shorter
    one.  Closed runs are appended to ``closed``."""
    if connections[DATABASE].in_atomic_block:
        raise RuntimeError("retention runs its own short transactions: call it outside transaction.atomic()")
    pause = max(0, int(getattr(settings, "RETENTION_BATCH_PAUSE_MS", 0))) / 1000
    limit = batch_size()
    with _policy_lock(policy.pk) as got:
        if not got:
            logger.info("retention policy %s is being applied by another worker", policy.pk)
            return None
        stale = RetentionRun.objects.filter(policy=policy, status=RunStatus.RUNNING).first()
        if stale is not None and stale.rule != _rule_of(policy):
            stopped = _finish(stale, RunStatus.STOPPED, "stopped: the rule changed before the run finished")
            if closed is not None:
                closed.append(stopped)
        run = _start_or_resume(policy, trigger, actor)
        try:
            while True:
                state = RetentionPolicy.objects.filter(pk=policy.pk).values("enabled", "legal_hold").first() or {}
                if not state.get("enabled") or state.get("legal_hold"):
                    why = "legal hold placed" if state.get("legal_hold") else "policy disabled"
                    return _finish(run, RunStatus.STOPPED, f"stopped: {why}")
                if not _one_batch(run, limit):
                    return _finish(run, RunStatus.COMPLETED)
                if pause:
                    time.sleep(pause)
        except Exception as exc:
            # The batch rolled back; the run stays unfinished and the next run resumes it.
            RetentionRun.objects.filter(pk=run.pk).update(error=f"interrupted: {type(exc).__name__}"[:300])
            logger.error("retention run %s interrupted: %s", run.pk, type(exc).__name__)
            raise


def stop_unfinished(policy: RetentionPolicy) -> RetentionRun | None:
    """Close an unfinished run of a policy that is now disabled or on hold (with its proof)."""
    run = RetentionRun.objects.filter(policy=policy, status=RunStatus.RUNNING).first()
    if run is None:
        return None
    with _policy_lock(policy.pk) as got:
        if not got:
            return None
        run.refresh_from_db()
        if run.status != RunStatus.RUNNING:
            return None
        why = "legal hold placed" if policy.legal_hold else "policy disabled"
        return _finish(run, RunStatus.STOPPED, f"stopped: {why}")


def run_due(*, trigger: str = RunTrigger.SCHEDULE, actor=None, datasets: list[str] | None = None) -> list[RetentionRun]:
    """Apply every enabled policy not on legal hold (orders before the archive they feed)."""
    order = list(DATASETS)
    policies = sorted(RetentionPolicy.objects.all(), key=lambda p: order.index(p.dataset))
    runs = []
    for policy in policies:
        if datasets and policy.dataset not in datasets:
            continue
        if not policy.enabled or policy.legal_hold:
            stopped = stop_unfinished(policy)
            if stopped is not None:
                runs.append(stopped)
            if policy.legal_hold:
                logger.info("retention policy %s skipped: legal hold", policy.pk)
            continue
        run = run_policy(policy, trigger=trigger, actor=actor, closed=runs)
        if run is not None:
            runs.append(run)
    return runs


def dry_run(*, include_disabled: bool = False, datasets: list[str] | None = None) -> list[dict]:
    """What ``run_due`` would do now, changing nothing."""
    result = []
    for policy in RetentionPolicy.objects.all():
        if datasets and policy.dataset not in datasets:
            continue
        if not include_disabled and not policy.enabled:
            continue
        entry = compute_preview(policy).as_dict()
        entry.update(enabled=policy.enabled, legal_hold=policy.legal_hold, max_age_days=policy.max_age_days)
        result.append(entry)
    return result
