"""Retention: preview a policy, enable it, and apply it in short batches.

How a run works (``run_policy``):

* A session-level advisory lock per policy keeps two workers off the same policy; a killed
  worker's connection ends and PostgreSQL releases its lock.
* The run is a ``RetentionRun`` row with a fixed cutoff.  It walks the table's heap in windows of
  blocks (a TID range scan: the same sequential access as one big DELETE, which is what makes a
  batched purge nearly as fast as that DELETE).  Each batch is one statement, hence one
  transaction, on a private connection of the portal's login role in the system scope (row-level
  security applies): count the window's expired rows (up to ``RETENTION_BATCH_SIZE`` + 1); only
  if they are at most ``RETENTION_BATCH_SIZE`` (<= 10,000), delete or anonymise them (archive:
  delete them and insert exactly the deleted versions into the archive); and advance the run's
  cursor, window, counters and fingerprint, all in that one statement.  A window with too many
  expired rows is halved and tried again (nothing changed); a block holding more than a batch is
  taken in block order, a batch at a time.  Windows then grow or shrink towards the batch size.
* A batch is all or nothing: the archive never holds a row that is still live or lost one that
  is gone, and after a crash the run row describes exactly what was committed.  Batches commit
  without waiting for their WAL flush (``synchronous_commit = off`` on the batch connection):
  a server crash can lose only whole recent batches together with their progress, which the
  resumed run does again; the final proof transaction commits synchronously.  An unfinished run
  is resumed by the next run of its policy (same cutoff, cursor and window), so an interrupted and
  resumed run ends in the same state, with the same fingerprint, as an uninterrupted one.
* Delete and anonymise count and fingerprint the expired rows a batch found in its window, all of
  which are gone (or anonymised) when it commits; a concurrent erasure that removed one of them a
  moment earlier is counted here too.  Archive counts the rows the batch itself deleted.
* At the end of a pass the post-condition is counted (rows still older than the cutoff, in short
  block-window transactions).  Rows left behind (moved by VACUUM FULL between an interruption and
  its resumption, or inserted with an old date meanwhile) start another pass, up to
  ``MAX_PASSES``.  Then, in one transaction: the run's status, its RETENTION_PURGE audit event
  (counts, fingerprint, proof hash) and the proof-of-deletion record.

The fingerprint is a set digest, independent of batching: four 64-bit lanes, lane k the XOR over
the handled ids of PostgreSQL's ``hashint8extended(id, k)`` (``fingerprint``).  From a backup taken
before the run, an auditor recomputes it over the ids older than the cutoff and compares.

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
from functools import lru_cache

from django.conf import settings
from django.db import connections
from django.utils import timezone
from psycopg import sql

from audit import services as audit
from audit.choices import AuditAction
from compliance.governance_choices import RetentionAction, RunStatus, RunTrigger
from compliance.governance_models import DIGEST_GENESIS, RetentionPolicy, RetentionProof, RetentionRun
from compliance.retention_datasets import DATASETS, RetentionDataset
from portal.security_context import scoped

logger = logging.getLogger("compliance.retention")

MAX_BATCH = 10_000
DATABASE = "default"
# pg_advisory_lock(class, policy id): the class is "RETN" as a 32-bit integer.
LOCK_CLASS = int.from_bytes(b"RETN", "big")
FIRST_WINDOW = 64  # heap blocks scanned by a run's first batch
# At most 32 MB of heap per batch (and per post-condition count), however sparse the expired rows
# are: a batch's two passes over its window stay far below the 2-second transaction budget.
MAX_WINDOW = 4096
MAX_PASSES = 3
STATE_CHECK_SECONDS = 1.0
DIGEST_LANES = 4
DIGEST_NOTE = (
    "256-bit set fingerprint: lane k (k=1..4, 16 hex digits each) = XOR over the handled ids of "
    "hashint8extended(id, k) as unsigned 64-bit; independent of batch boundaries and order"
)
_MASK64 = (1 << 64) - 1


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


def _pk(model) -> sql.Identifier:
    return sql.Identifier(model._meta.pk.column)


def _anonymise_values(spec: RetentionDataset) -> list[tuple[sql.Identifier, str, object]]:
    """(column, parameter name, value) of each column an anonymisation resets."""
    return [
        (_ident(spec.model, name), f"anon_{i}", value) for i, (name, value) in enumerate(sorted(spec.anonymise.items()))
    ]


def _pending(spec: RetentionDataset, action: str, age_field: str) -> tuple[sql.Composable, dict]:
    """WHERE clause (named parameters, ``cutoff`` set by the caller) of rows the rule still has to handle."""
    clause = sql.SQL("{} < %(cutoff)s").format(_ident(spec.model, age_field))
    params: dict = {}
    if action == RetentionAction.ANONYMISE:
        # Rows already anonymised are done: they stay, without the link to the person.
        parts = []
        for column, name, value in _anonymise_values(spec):
            parts.append(sql.SQL("{} IS DISTINCT FROM {}").format(column, sql.Placeholder(name)))
            params[name] = value
        clause = sql.SQL("{} AND ({})").format(clause, sql.SQL(" OR ").join(parts))
    return clause, params


_WINDOW = sql.SQL("ctid >= %(lo)s::tid AND ctid < %(hi)s::tid")


def _lanes(column: sql.Composable) -> sql.Composable:
    return sql.SQL(", ").join(
        sql.SQL("coalesce(bit_xor(hashint8extended({c}, {k})), 0)").format(c=column, k=sql.Literal(k))
        for k in range(1, DIGEST_LANES + 1)
    )


def _batch_statement(spec: RetentionDataset, action: str, age_field: str, ordered: bool) -> sql.Composed:
    """One batch, one statement (so one transaction and one round trip on the batch connection).

    ``probe`` counts the window's expired rows (up to ``over``); the change (delete, anonymise, or
    delete-and-archive) applies only if they are at most ``limit``; ``prog`` advances the run's row
    in the same statement: cursor, window, counters and the fingerprint.  Returns one row: the
    count, the table's size in blocks, and the run's new progress (NULLs: the window was too
    dense and nothing changed).  Ordered (one block holds more than a batch): the first ``limit``
    expired rows of the block in block order.

    Delete and anonymise count the window's expired rows and fingerprint their ids from the probe,
    which avoids building a RETURNING set (a batch then costs about what a plain DELETE costs).
    Archive counts and fingerprints the rows actually deleted (RETURNING), since the archive must
    receive exactly the deleted versions."""
    model = spec.model
    table, pk = _table(model), _pk(model)
    pending, _ = _pending(spec, action, age_field)
    window = sql.SQL("ctid >= %(lo_tid)s::tid AND ctid < %(hi_tid)s::tid")
    if ordered:
        pick = sql.SQL(
            "pick AS (SELECT ctid AS tid, {pk} AS id FROM {table} WHERE {window} AND {pending}"
            " ORDER BY ctid LIMIT %(limit)s), "
        ).format(pk=pk, table=table, window=window, pending=pending)
        counted = sql.SQL("pick")
        target = sql.SQL("ctid = ANY(ARRAY(SELECT tid FROM pick))")
        applies = sql.SQL("true")
        cursor_next = sql.SQL(
            "CASE WHEN (SELECT n FROM probe) >= %(limit)s THEN %(lo_block)s ELSE %(lo_block)s + 1 END"
        )
        window_next = sql.SQL("1")
    else:
        pick = sql.SQL("")
        counted = sql.SQL("(SELECT {pk} AS id FROM {table} WHERE {window} AND {pending} LIMIT %(over)s) w").format(
            pk=pk, table=table, window=window, pending=pending
        )
        applies = sql.SQL("(SELECT n FROM probe) <= %(limit)s")
        target = sql.SQL("{window} AND {pending} AND {applies}").format(window=window, pending=pending, applies=applies)
        cursor_next = sql.SQL("%(hi_block)s")
        # Aim the next window at about 95% of a batch, growing at most fourfold at a time.
        window_next = sql.SQL(
            "GREATEST(1, LEAST(floor(%(window)s::numeric * %(limit)s * 0.95"
            " / NULLIF((SELECT n FROM probe), 0))::bigint, %(window)s * 4, %(max_window)s))"
        )
    if action == RetentionAction.ARCHIVE:
        archive = spec.archive_model
        columns = sql.SQL(", ").join(sql.Identifier(c) for c in spec.archive_columns)
        change = sql.SQL(
            "probe AS (SELECT count(*) AS n FROM {counted}),"
            " gone AS (DELETE FROM {table} WHERE {target} RETURNING {columns}),"
            " kept AS (INSERT INTO {archive} ({columns}, {run_col}, {archived_col})"
            " SELECT {columns}, %(run)s, %(now)s FROM gone"
            " ON CONFLICT ({archive_pk}) DO NOTHING RETURNING {archive_pk}),"
            " x AS (SELECT count(*) AS removed, (SELECT count(*) FROM kept) AS archived, 0 AS anonymised,"
            " count(*) AS handled, ARRAY[{lanes}] AS lanes FROM gone)"
        ).format(
            counted=counted,
            table=table,
            target=target,
            columns=columns,
            archive=_table(archive),
            run_col=_ident(archive, "run_id"),
            archived_col=_ident(archive, "archived_at"),
            archive_pk=_pk(archive),
            lanes=_lanes(pk),
        )
    else:
        probe = sql.SQL("probe AS (SELECT count(*) AS n, ARRAY[{lanes}] AS lanes FROM {counted})").format(
            lanes=_lanes(sql.Identifier("id")), counted=counted
        )
        if action == RetentionAction.ANONYMISE:
            assignments = sql.SQL(", ").join(
                sql.SQL("{} = {}").format(column, sql.Placeholder(name)) for column, name, _ in _anonymise_values(spec)
            )
            modify = sql.SQL("gone AS (UPDATE {table} SET {assignments} WHERE {target})").format(
                table=table, assignments=assignments, target=target
            )
            tally = sql.SQL(
                "x AS (SELECT 0 AS removed, 0 AS archived, n AS anonymised, n AS handled, lanes FROM probe)"
            )
        else:
            modify = sql.SQL("gone AS (DELETE FROM {table} WHERE {target})").format(table=table, target=target)
            tally = sql.SQL(
                "x AS (SELECT n AS removed, 0 AS archived, 0 AS anonymised, n AS handled, lanes FROM probe)"
            )
        change = sql.SQL("{probe}, {modify}, {tally}").format(probe=probe, modify=modify, tally=tally)
    progress = sql.SQL(
        "prog AS (UPDATE {runs} AS r SET cursor_block = {cursor_next}, window_blocks = {window_next},"
        " batches = r.batches + (x.handled > 0)::int, rows_deleted = r.rows_deleted + x.removed,"
        " rows_archived = r.rows_archived + x.archived, rows_anonymised = r.rows_anonymised + x.anonymised,"
        " largest_batch_rows = GREATEST(r.largest_batch_rows, x.handled), heartbeat_at = %(now)s,"
        " longest_batch_ms = GREATEST(r.longest_batch_ms, %(longest)s),"
        " digest = (SELECT string_agg(lpad(to_hex(('x' || substr(r.digest, i * 16 + 1, 16))::bit(64)::bigint"
        " # x.lanes[i + 1]), 16, '0'), '' ORDER BY i) FROM generate_series(0, {last_lane}) AS i)"
        " FROM x WHERE r.id = %(run)s AND {applies}"
        " RETURNING r.cursor_block, r.window_blocks, r.batches, r.rows_deleted, r.rows_archived,"
        " r.rows_anonymised, r.largest_batch_rows, r.digest)"
    ).format(
        runs=sql.Identifier(RetentionRun._meta.db_table),
        cursor_next=cursor_next,
        window_next=window_next,
        last_lane=sql.Literal(DIGEST_LANES - 1),
        applies=applies,
    )
    return sql.SQL(
        "WITH {pick}{change}, {progress}"
        " SELECT (SELECT n FROM probe), pg_relation_size(%(table)s::regclass) / current_setting('block_size')::bigint,"
        " prog.* FROM (SELECT 1) AS one LEFT JOIN prog ON true"
    ).format(pick=pick, change=change, progress=progress)


@lru_cache(maxsize=32)
def _cached_statement(dataset: str, action: str, age_field: str, ordered: bool) -> sql.Composed:
    return _batch_statement(DATASETS[dataset], action, age_field, ordered)


def _statement_for(spec: RetentionDataset, action: str, age_field: str, ordered: bool) -> sql.Composed:
    """The batch statement, built once per process (it only depends on the rule)."""
    return _cached_statement(spec.key, action, age_field, ordered)


@contextmanager
def _batch_connection():
    """A private connection for the batches, as the portal's login role in the system scope.

    Each batch is one statement in autocommit: one transaction, one round trip, with its progress
    in the same statement, and prepared after a few runs.  The system role is set for this
    connection's session (it is never shared and is closed when the run ends, also on errors);
    row-level security applies as to any system-scope transaction.  Batches commit without waiting
    for their WAL flush: each carries its own progress, so a server crash can only lose whole
    recent batches, which the resumed run does again."""
    import psycopg

    from portal.security_context import SYSTEM_SCOPE, TEAM_IDS_SETTING, USER_ID_SETTING

    params = connections[DATABASE].get_connection_params()
    params.update(cursor_factory=psycopg.Cursor, prepare_threshold=3, autocommit=True)
    connection = psycopg.connect(**params)
    try:
        connection.execute(
            "SELECT set_config('role', %s, false), set_config(%s, '', false), set_config(%s, '', false),"
            " set_config('synchronous_commit', 'off', false)",
            [SYSTEM_SCOPE.db_role, TEAM_IDS_SETTING, USER_ID_SETTING],
        )
        yield connection
    finally:
        connection.close()


def _fold(digest: str, lanes) -> str:
    """XOR a batch's lanes into the run's fingerprint (hex, 4 x 16 digits)."""
    current = [int(digest[i * 16 : (i + 1) * 16], 16) for i in range(DIGEST_LANES)]
    for i, lane in enumerate(lanes or []):
        if lane is not None:
            current[i] ^= lane & _MASK64
    return "".join(f"{value:016x}" for value in current)


def fingerprint(ids) -> str:
    """The same fingerprint computed by PostgreSQL over a list of ids (for auditors and tests)."""
    lanes = sql.SQL(", ").join(
        sql.SQL("bit_xor(hashint8extended(i, {}))").format(sql.Literal(k)) for k in range(1, DIGEST_LANES + 1)
    )
    with connections[DATABASE].cursor() as cursor:
        cursor.execute(sql.SQL("SELECT ARRAY[{}] FROM unnest(%s::bigint[]) AS i").format(lanes), [list(ids)])
        return _fold(DIGEST_GENESIS, cursor.fetchone()[0])


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
    pending, params = _pending(spec, policy.action, policy.age_field)
    params["cutoff"] = cutoff
    age, pk = _ident(model, policy.age_field), _pk(model)
    count_sql = sql.SQL("SELECT count(*), min({age}) FROM {table} WHERE {pending}").format(
        age=age, table=_table(model), pending=pending
    )
    oldest_sql = sql.SQL("SELECT {pk} FROM {table} WHERE {age} = %(oldest)s ORDER BY {pk} LIMIT 1").format(
        pk=pk, table=_table(model), age=age
    )
    with scoped(system=True, using=DATABASE), connections[DATABASE].cursor() as cursor:
        cursor.execute(count_sql, params)
        rows, oldest_at = cursor.fetchone()
        oldest_id = None
        if oldest_at is not None:
            cursor.execute(oldest_sql, {"oldest": oldest_at})
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
            logger.info("retention run %s resumed at block %s (pass %s)", run.pk, run.cursor_block, run.passes)
            return run
        return RetentionRun.objects.create(
            policy=policy,
            rule=_rule_of(policy),
            trigger=trigger,
            requested_by=actor if getattr(actor, "is_authenticated", False) else None,
            cutoff=cutoff_for(policy),
            window_blocks=FIRST_WINDOW,
        )


def _spec_of(run: RetentionRun) -> RetentionDataset:
    return DATASETS[run.rule["dataset"]]


_PROGRESS_FIELDS = (
    "cursor_block",
    "window_blocks",
    "passes",
    "batches",
    "rows_deleted",
    "rows_archived",
    "rows_anonymised",
    "largest_batch_rows",
    "digest",
    "heartbeat_at",
    "longest_batch_ms",
)


def _save_progress(run: RetentionRun) -> None:
    # queryset.update: progress is not a change-history entry per batch.
    RetentionRun.objects.filter(pk=run.pk).update(**{name: getattr(run, name) for name in _PROGRESS_FIELDS})


@dataclass
class _Step:
    done: bool  # the pass reached the end of the table
    handled: int


_RETURNED = (
    "cursor_block",
    "window_blocks",
    "batches",
    "rows_deleted",
    "rows_archived",
    "rows_anonymised",
    "largest_batch_rows",
    "digest",
)


def _one_batch(run: RetentionRun, limit: int, connection) -> _Step:
    """One window in one statement (a too-dense window is halved and tried again)."""
    spec = _spec_of(run)
    action, age_field = run.rule["action"], run.rule["age_field"]
    ordered = False
    while True:
        lo = run.cursor_block
        hi = lo + (1 if ordered else run.window_blocks)
        _, params = _pending(spec, action, age_field)
        params.update(
            cutoff=run.cutoff,
            lo_tid=f"({lo},0)",
            hi_tid=f"({hi},0)",
            lo_block=lo,
            hi_block=hi,
            window=run.window_blocks,
            max_window=MAX_WINDOW,
            over=limit + 1,
            limit=limit,
            run=run.pk,
            now=timezone.now(),
            longest=run.longest_batch_ms,
            table=spec.model._meta.db_table,
        )
        started = time.perf_counter()
        row = connection.execute(_statement_for(spec, action, age_field, ordered), params).fetchone()
        run.longest_batch_ms = max(run.longest_batch_ms, int((time.perf_counter() - started) * 1000))
        found, blocks, *progress = row
        if progress[0] is not None:
            batches_before = run.batches
            for name, value in zip(_RETURNED, progress, strict=True):
                setattr(run, name, value)
            run.heartbeat_at = params["now"]
            return _Step(done=run.cursor_block >= blocks, handled=run.batches - batches_before)
        # Too many expired rows in the window (found > limit): nothing changed; halve it.
        if run.window_blocks > 1:
            run.window_blocks = max(1, run.window_blocks // 2)
        else:
            ordered = True


def remaining(spec: RetentionDataset, action: str, age_field: str, cutoff: datetime) -> int:
    """Rows the rule would still handle, counted in short block-window transactions."""
    table = _table(spec.model)
    pending, params = _pending(spec, action, age_field)
    params["cutoff"] = cutoff
    size = sql.SQL("SELECT pg_relation_size(%(table)s::regclass) / current_setting('block_size')::bigint")
    window = sql.SQL("SELECT count(*) FROM {table} WHERE {window} AND {pending}").format(
        table=table, window=_WINDOW, pending=pending
    )
    total, lo = 0, 0
    while True:
        with scoped(system=True, using=DATABASE), connections[DATABASE].cursor() as cursor:
            cursor.execute(size, {"table": spec.model._meta.db_table})
            blocks = cursor.fetchone()[0]
            if lo >= blocks:
                return total
            cursor.execute(window, {**params, "lo": f"({lo},0)", "hi": f"({lo + MAX_WINDOW},0)"})
            total += cursor.fetchone()[0]
        lo += MAX_WINDOW


def _canonical(document: dict) -> bytes:
    return json.dumps(document, sort_keys=True, separators=(",", ":"), default=str).encode()


def _finish(run: RetentionRun, status: str, note: str = "", left: int | None = None) -> RetentionRun:
    spec = _spec_of(run)
    if left is None:
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
        "largest_batch_rows": run.largest_batch_rows,
        "longest_transaction_ms": run.longest_batch_ms,
        "passes": run.passes,
        "resumed": run.resumed,
        "id_fingerprint": run.digest,
        "id_fingerprint_algorithm": DIGEST_NOTE,
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
                "id_fingerprint": run.digest,
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
        spec = _spec_of(run)
        try:
            with _batch_connection() as batches:
                return _run_batches(run, spec, limit, pause, batches, policy.pk)
        except Exception as exc:
            # The batch rolled back; the run stays unfinished and the next run resumes it.
            RetentionRun.objects.filter(pk=run.pk).update(error=f"interrupted: {type(exc).__name__}"[:300])
            logger.error("retention run %s interrupted: %s", run.pk, type(exc).__name__)
            raise


def _run_batches(
    run: RetentionRun, spec: RetentionDataset, limit: int, pause: float, connection, policy_id
) -> RetentionRun:
    checked = 0.0
    while True:
        # A legal hold or a disable reaches a running run within a second.
        if time.monotonic() - checked >= STATE_CHECK_SECONDS:
            state = RetentionPolicy.objects.filter(pk=policy_id).values("enabled", "legal_hold").first() or {}
            if not state.get("enabled") or state.get("legal_hold"):
                why = "legal hold placed" if state.get("legal_hold") else "policy disabled"
                return _finish(run, RunStatus.STOPPED, f"stopped: {why}")
            checked = time.monotonic()
        step = _one_batch(run, limit, connection)
        if step.done:
            left = remaining(spec, run.rule["action"], run.rule["age_field"], run.cutoff)
            if left == 0 or run.passes >= MAX_PASSES:
                return _finish(run, RunStatus.COMPLETED, left=left)
            # Rows were left behind: walk the table again from the start.
            run.passes += 1
            run.cursor_block, run.window_blocks = 0, FIRST_WINDOW
            with scoped(system=True, using=DATABASE):
                _save_progress(run)
        elif pause and step.handled:
            time.sleep(pause)


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
    runs: list[RetentionRun] = []
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
