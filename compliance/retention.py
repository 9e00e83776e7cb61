"""Retention: preview a policy, enable it, and apply it in short batches.

How a run works (``run_policy``):

* A session-level advisory lock per policy keeps two workers off the same policy; a killed
  worker's connection ends and PostgreSQL releases its lock.
* The run is a ``RetentionRun`` row with a fixed cutoff.  It walks the table's heap in windows of
  blocks (a TID range scan: the same sequential access as one big DELETE, which is what makes a
  batched purge nearly as fast as that DELETE).  Each batch is one statement in one short
  transaction under the system scope: count the window's expired rows (at most
  ``RETENTION_BATCH_SIZE`` + 1), and only if they are at most ``RETENTION_BATCH_SIZE`` (<= 10,000)
  delete / anonymise them (archive: delete them and insert exactly the deleted versions into the
  archive, in the same statement).  In the same transaction the run's cursor, window, counters
  and digest advance.  A window with too many expired rows is halved and tried again; a single
  block with more than the batch size is handled in block order, ``RETENTION_BATCH_SIZE`` rows at
  a time.  The window then grows or shrinks towards the batch size.
* A batch is all or nothing: the archive never holds a row that is still live or lost one that
  is gone, and after a crash the run describes exactly what was committed.  Batches commit
  without waiting for their WAL flush (``synchronous_commit = off`` for that transaction only):
  a server crash can lose only whole recent batches together with their progress, which the
  resumed run does again; the final proof transaction commits synchronously.  An unfinished run is
  resumed by the next run of its policy (same cutoff, cursor and window), so an interrupted and
  resumed run ends in the same state, with the same digest, as an uninterrupted one.
* At the end of a pass the post-condition is counted (rows still older than the cutoff, in short
  block-window transactions).  Rows left behind (moved by VACUUM FULL between an interruption and
  its resumption, or inserted with an old date meanwhile) start another pass, up to
  ``MAX_PASSES``.  Then, in one transaction: the run's status, its RETENTION_PURGE audit event
  (counts, digest, proof hash) and the proof-of-deletion record.

The digest is a set fingerprint, independent of batching: four 64-bit lanes, lane k the XOR over
the handled ids of PostgreSQL's ``hashint8extended(id, k)``.  From a backup taken before the run,
an auditor recomputes it over the ids older than the cutoff and compares.

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
MAX_WINDOW = 16_384  # at most 128 MB of heap per batch, however sparse the expired rows are
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


_TALLY = "portal.retention_batch"  # transaction-local: "rows,lane1,lane2,lane3,lane4" of the batch


def _lanes(column: sql.Composable) -> sql.Composable:
    return sql.SQL(", ").join(
        sql.SQL("coalesce(bit_xor(hashint8extended({c}, {k})), 0)").format(c=column, k=sql.Literal(k))
        for k in range(1, DIGEST_LANES + 1)
    )


def _batch_statement(spec: RetentionDataset, action: str, age_field: str, ordered: bool) -> tuple[sql.Composed, dict]:
    """One statement per batch.  Parameters: cutoff, lo, hi, over, limit, and run/now (archive) or
    the anonymised values (anonymise).

    Delete and anonymise: the main statement is the DELETE / UPDATE itself (its row count is exact,
    and no RETURNING set is built, which keeps a batch close to the cost of a plain DELETE).  A CTE
    counts the window's expired rows (up to ``over``) and stores that count and the digest lanes of
    their ids in a transaction-local setting (``_TALLY``); the change applies only if the count is
    at most ``limit``.  Archive: one statement returning (expired rows counted, rows removed, rows
    archived, digest lanes of the removed ids), the archive receiving exactly the deleted versions.
    Ordered (one block holds more than a batch): the first ``limit`` expired rows in block order."""
    model = spec.model
    table, pk = _table(model), _pk(model)
    pending, params = _pending(spec, action, age_field)
    if ordered:
        pick = sql.SQL(
            "pick AS (SELECT ctid AS tid, {pk} AS id FROM {table} WHERE {window} AND {pending}"
            " ORDER BY ctid LIMIT %(limit)s), "
        ).format(pk=pk, table=table, window=_WINDOW, pending=pending)
        counted = sql.SQL("pick")
        target = sql.SQL("ctid = ANY(ARRAY(SELECT tid FROM pick)) AND (SELECT n FROM probe) >= 0")
    else:
        pick = sql.SQL("")
        counted = sql.SQL("(SELECT {pk} AS id FROM {table} WHERE {window} AND {pending} LIMIT %(over)s) w").format(
            pk=pk, table=table, window=_WINDOW, pending=pending
        )
        target = sql.SQL("{window} AND {pending} AND (SELECT n FROM probe) <= %(limit)s").format(
            window=_WINDOW, pending=pending
        )
    if action == RetentionAction.ARCHIVE:
        archive = spec.archive_model
        columns = sql.SQL(", ").join(sql.Identifier(c) for c in spec.archive_columns)
        statement = sql.SQL(
            "WITH {pick}probe AS (SELECT count(*) AS n FROM {counted}),"
            " gone AS (DELETE FROM {table} WHERE {target} RETURNING {columns}),"
            " kept AS (INSERT INTO {archive} ({columns}, {run_col}, {archived_col})"
            " SELECT {columns}, %(run)s, %(now)s FROM gone"
            " ON CONFLICT ({archive_pk}) DO NOTHING RETURNING {archive_pk})"
            " SELECT (SELECT n FROM probe), g.removed, (SELECT count(*) FROM kept), g.lanes"
            " FROM (SELECT count(*) AS removed, ARRAY[{lanes}] AS lanes FROM gone) g"
        ).format(
            pick=pick,
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
        return statement, params
    probe = sql.SQL(
        "probe AS (SELECT count(*) AS n, set_config(%(tally)s, concat_ws(',', count(*), {lanes}), true) AS tally"
        " FROM {counted})"
    ).format(lanes=_lanes(sql.Identifier("id")), counted=counted)
    if action == RetentionAction.ANONYMISE:
        assignments = sql.SQL(", ").join(
            sql.SQL("{} = {}").format(column, sql.Placeholder(name)) for column, name, _ in _anonymise_values(spec)
        )
        change = sql.SQL("UPDATE {table} SET {assignments} WHERE {target}").format(
            table=table, assignments=assignments, target=target
        )
    else:
        change = sql.SQL("DELETE FROM {table} WHERE {target}").format(table=table, target=target)
    params["tally"] = _TALLY
    return sql.SQL("WITH {pick}{probe} {change}").format(pick=pick, probe=probe, change=change), params


@lru_cache(maxsize=32)
def _cached_statement(dataset: str, action: str, age_field: str, ordered: bool) -> tuple[str, tuple]:
    statement, params = _batch_statement(DATASETS[dataset], action, age_field, ordered)
    connection = connections[DATABASE]
    connection.ensure_connection()
    return statement.as_string(connection.connection), tuple(params.items())


def _statement_for(spec: RetentionDataset, action: str, age_field: str, ordered: bool) -> tuple[str, dict]:
    """The batch statement rendered once per process (it only depends on the rule)."""
    text, params = _cached_statement(spec.key, action, age_field, ordered)
    return text, dict(params)


# Read back after a delete/anonymise batch, in its transaction: the tally (unset when the window
# held no expired row: the guard was never evaluated), the table's size, and
# the batch's asynchronous commit (it carries its own progress: a server crash can only lose whole
# recent batches, which the resumed run does again).
_AFTER_BATCH = sql.SQL(
    "SELECT coalesce(nullif(current_setting(%(tally)s, true), ''), '0,0,0,0,0'),"
    " pg_relation_size(%(table)s::regclass) / current_setting('block_size')::bigint,"
    " set_config('synchronous_commit', 'off', true)"
)


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


def _next_window(window: int, found: int, limit: int) -> int:
    """Aim the next window at about 95% of a batch, growing at most fourfold at a time."""
    if found == 0:
        return min(window * 4, MAX_WINDOW)
    return max(1, min(int(window * limit * 0.95 / found), window * 4, MAX_WINDOW))


@dataclass
class _Step:
    done: bool  # the pass reached the end of the table
    handled: int


class _Raced(Exception):
    """The window changed under the batch (a concurrent delete of the same rows): redo it."""


# The progress of a delete/anonymise batch, in its transaction, in one round trip: the counters
# computed by the caller, the digest folded with the batch's lanes (read from the tally), on the
# condition that the tally counted exactly the rows changed (else a concurrent change raced the
# batch and nothing is returned).  Returns the new digest, the table's size in blocks, and the
# batch's asynchronous commit (see _AFTER_BATCH).
_PROGRESS = sql.SQL(
    "UPDATE {runs} AS r SET cursor_block = %(cursor)s, window_blocks = %(window)s, batches = %(batches)s,"
    " rows_deleted = %(deleted)s, rows_anonymised = %(anonymised)s, largest_batch_rows = %(largest)s,"
    " heartbeat_at = %(now)s, longest_batch_ms = %(longest)s,"
    " digest = (SELECT string_agg(lpad(to_hex(('x' || substr(r.digest, i * 16 + 1, 16))::bit(64)::bigint"
    " # tally.t[i + 2]), 16, '0'), '' ORDER BY i) FROM generate_series(0, {last_lane}) AS i)"
    " FROM (SELECT string_to_array(current_setting(%(tally)s), ',')::bigint[] AS t) AS tally"
    " WHERE r.id = %(run)s AND tally.t[1] = %(changed)s"
    " RETURNING r.digest, pg_relation_size(%(table)s::regclass) / current_setting('block_size')::bigint,"
    " set_config('synchronous_commit', 'off', true)"
).format(runs=sql.Identifier(RetentionRun._meta.db_table), last_lane=sql.Literal(DIGEST_LANES - 1))


def _advance(run: RetentionRun, lo: int, hi: int, found: int, limit: int, ordered: bool) -> None:
    if ordered:
        # The dense block may hold more: stay on it until a batch comes back short.
        run.cursor_block = lo if found == limit else lo + 1
        run.window_blocks = 1
    else:
        run.cursor_block = hi
        run.window_blocks = _next_window(run.window_blocks, found, limit)


def _count(run: RetentionRun, action: str, removed: int, kept: int) -> None:
    handled = kept if action == RetentionAction.ANONYMISE else removed
    if handled:
        run.batches += 1
        run.rows_deleted += removed
        run.rows_archived += kept if action == RetentionAction.ARCHIVE else 0
        run.rows_anonymised += kept if action == RetentionAction.ANONYMISE else 0
        run.largest_batch_rows = max(run.largest_batch_rows, handled)


def _one_batch(run: RetentionRun, limit: int) -> _Step:
    """One window in one transaction (a too-dense window is halved and tried again)."""
    spec = _spec_of(run)
    action, age_field = run.rule["action"], run.rule["age_field"]
    table_name = spec.model._meta.db_table
    ordered = False
    while True:
        lo = run.cursor_block
        hi = lo + (1 if ordered else run.window_blocks)
        statement, params = _statement_for(spec, action, age_field, ordered)
        params.update(cutoff=run.cutoff, lo=f"({lo},0)", hi=f"({hi},0)", over=limit + 1, limit=limit)
        if action == RetentionAction.ARCHIVE:
            params.update(run=run.pk, now=timezone.now())
        started = time.perf_counter()
        before = {name: getattr(run, name) for name in _PROGRESS_FIELDS}
        too_dense = False
        try:
            with scoped(system=True, using=DATABASE), connections[DATABASE].cursor() as cursor:
                cursor.execute(statement, params)
                if action == RetentionAction.ARCHIVE:
                    found, removed, kept, lanes = cursor.fetchone()
                    too_dense = found > limit and not ordered
                    if not too_dense:
                        _advance(run, lo, hi, found, limit, ordered)
                        _count(run, action, removed, kept)
                        if removed or kept:
                            run.digest = _fold(run.digest, lanes)
                        cursor.execute(_AFTER_BATCH, {"tally": _TALLY, "table": table_name})
                        blocks = cursor.fetchone()[1]
                        run.heartbeat_at = timezone.now()
                        _save_progress(run)
                elif cursor.rowcount > 0:
                    # The usual case: the guard passed and rows changed; one more round trip.
                    changed = cursor.rowcount
                    _advance(run, lo, hi, changed, limit, ordered)
                    _count(run, action, changed if action == RetentionAction.DELETE else 0, changed)
                    run.heartbeat_at = timezone.now()
                    cursor.execute(
                        _PROGRESS,
                        {
                            "cursor": run.cursor_block,
                            "window": run.window_blocks,
                            "batches": run.batches,
                            "deleted": run.rows_deleted,
                            "anonymised": run.rows_anonymised,
                            "largest": run.largest_batch_rows,
                            "now": run.heartbeat_at,
                            "longest": run.longest_batch_ms,
                            "tally": _TALLY,
                            "run": run.pk,
                            "changed": changed,
                            "table": table_name,
                        },
                    )
                    row = cursor.fetchone()
                    if row is None:
                        raise _Raced
                    run.digest, blocks = row[0], row[1]
                else:
                    # Nothing changed: an empty window, or a too-dense one (the guard held).
                    cursor.execute(_AFTER_BATCH, {"tally": _TALLY, "table": table_name})
                    tally, blocks, _ = cursor.fetchone()
                    found = int(tally.split(",")[0])
                    too_dense = found > limit and not ordered
                    if not too_dense:
                        _advance(run, lo, hi, 0, limit, ordered)
                        run.heartbeat_at = timezone.now()
                        _save_progress(run)
        except _Raced:
            for name, value in before.items():
                setattr(run, name, value)
            continue
        run.longest_batch_ms = max(run.longest_batch_ms, int((time.perf_counter() - started) * 1000))
        if not too_dense:
            return _Step(done=run.cursor_block >= blocks, handled=run.batches - before["batches"])
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
        checked = 0.0
        try:
            while True:
                # A legal hold or a disable reaches a running run within a second.
                if time.monotonic() - checked >= STATE_CHECK_SECONDS:
                    state = RetentionPolicy.objects.filter(pk=policy.pk).values("enabled", "legal_hold").first() or {}
                    if not state.get("enabled") or state.get("legal_hold"):
                        why = "legal hold placed" if state.get("legal_hold") else "policy disabled"
                        return _finish(run, RunStatus.STOPPED, f"stopped: {why}")
                    checked = time.monotonic()
                step = _one_batch(run, limit)
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
