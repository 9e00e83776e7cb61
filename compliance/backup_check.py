"""``verify_backup``: prove that a backup restores, with the data readable.

1. Open a REPEATABLE READ transaction on the database and export its snapshot.
2. ``pg_dump --snapshot`` (the dump sees exactly that snapshot) and, in the same transaction, count
   every table's rows and read a random sample of every encrypted column.
3. Create a scratch database, ``pg_restore`` the dump into it, count its rows and read the same
   sampled rows; decrypt both sides with the portal's keys and compare.
4. Drop the scratch database and record the outcome (``BackupVerification``): counts and digests
   only, never a value.

The PostgreSQL client tools must match the server's major version: ``BACKUP_PG_BIN_DIR`` if set,
else the Debian layout ``/usr/lib/postgresql/<major>/bin``, the binaries bundled with pgserver,
or ``PATH``.  The connection is ``BACKUP_DATABASE_URL`` if set, else the schema owner's; it must
bypass row-level security (superuser or BYPASSRLS), as any role that takes full backups must.
"""

import hashlib
import logging
import os
import re
import secrets
import shutil
import subprocess  # noqa: S404 - runs the PostgreSQL client tools with fixed arguments
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import psycopg
from django.conf import settings
from django.db import connections
from django.utils import timezone
from psycopg import sql

from compliance.governance_models import BackupVerification

logger = logging.getLogger("compliance.backup")

_VERSION = re.compile(r"\(PostgreSQL\)\s+(\d+)")


class BackupCheckError(RuntimeError):
    pass


@dataclass(frozen=True)
class Target:
    """Where to connect (libpq keywords), from BACKUP_DATABASE_URL or the owner alias."""

    params: dict

    @classmethod
    def configured(cls) -> "Target":
        url = getattr(settings, "BACKUP_DATABASE_URL", "")
        if url:
            from psycopg.conninfo import conninfo_to_dict

            return cls(conninfo_to_dict(url))
        db = connections["owner"].settings_dict
        params = {
            "host": db.get("HOST") or "",
            "port": str(db.get("PORT") or ""),
            "user": db.get("USER") or "",
            "password": db.get("PASSWORD") or "",
            "dbname": db["NAME"],
        }
        for key in ("sslmode", "sslrootcert", "sslcert", "sslkey"):
            value = (db.get("OPTIONS") or {}).get(key)
            if value:
                params[key] = str(value)
        return cls({k: v for k, v in params.items() if v})

    @property
    def dbname(self) -> str:
        return self.params["dbname"]

    def connect(self, dbname: str | None = None, **kwargs) -> psycopg.Connection:
        return psycopg.connect(**{**self.params, "dbname": dbname or self.dbname}, **kwargs)

    def environ(self, dbname: str | None = None) -> dict:
        """libpq environment for the client tools: the password never appears on a command line."""
        names = {
            "host": "PGHOST",
            "port": "PGPORT",
            "user": "PGUSER",
            "password": "PGPASSWORD",  # pragma: allowlist secret
            "sslmode": "PGSSLMODE",
            "sslrootcert": "PGSSLROOTCERT",
            "sslcert": "PGSSLCERT",
            "sslkey": "PGSSLKEY",
        }
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env.update({names[k]: str(v) for k, v in self.params.items() if k in names})
        env["PGDATABASE"] = dbname or self.dbname
        return env


def _tool_major(directory: Path) -> int | None:
    tool = directory / "pg_dump"
    if not (tool.is_file() and (directory / "pg_restore").is_file()):
        return None
    result = subprocess.run([str(tool), "--version"], capture_output=True, text=True, timeout=30, check=False)  # noqa: S603
    match = _VERSION.search(result.stdout)
    return int(match.group(1)) if match else None


def _candidates(major: int) -> list[Path]:
    found = []
    configured = getattr(settings, "BACKUP_PG_BIN_DIR", "")
    if configured:
        found.append(Path(configured))
    found.append(Path(f"/usr/lib/postgresql/{major}/bin"))
    try:
        import pgserver

        found.append(Path(pgserver.__file__).parent / "pginstall" / "bin")
    except ImportError:
        pass
    on_path = shutil.which("pg_dump")
    if on_path:
        found.append(Path(on_path).parent)
    return found


def find_tools(major: int) -> tuple[Path, int]:
    """The directory of pg_dump/pg_restore for a server major version (exact match preferred)."""
    newer = []
    for directory in _candidates(major):
        tool_major = _tool_major(directory)
        if tool_major == major:
            return directory, tool_major
        if tool_major is not None and tool_major > major:
            newer.append((tool_major, directory))
    if newer:
        tool_major, directory = min(newer)
        return directory, tool_major
    raise BackupCheckError(f"no pg_dump/pg_restore for PostgreSQL {major}: set BACKUP_PG_BIN_DIR")


def _tables(cursor) -> list[str]:
    cursor.execute(
        "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') ORDER BY c.relname"
    )
    return [row[0] for row in cursor.fetchall()]


def _counts(cursor, tables: list[str]) -> dict[str, int]:
    counts = {}
    for table in tables:
        # Names come from the catalogue, quoted as identifiers.
        cursor.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table)))
        counts[table] = cursor.fetchone()[0]
    return counts


def _encrypted_columns() -> list[tuple[str, str, str, bytes]]:
    """(table, pk column, column, decryption context) of every encrypted field of every model."""
    from django.apps import apps

    from portal.field_crypto import EncryptedTextMixin

    columns = []
    for model in apps.get_models():
        if model._meta.proxy or not model._meta.managed:
            continue
        for field in model._meta.concrete_fields:
            if isinstance(field, EncryptedTextMixin):
                table = model._meta.db_table
                columns.append((table, model._meta.pk.column, field.column, f"{table}.{field.column}".encode()))
    return columns


def _sample(cursor, columns, size: int) -> dict[tuple[str, str], dict]:
    sample = {}
    for table, pk, column, _context in columns:
        cursor.execute(
            sql.SQL("SELECT {pk}, {c} FROM {t} WHERE {c} IS NOT NULL ORDER BY random() LIMIT %s").format(
                pk=sql.Identifier(pk), c=sql.Identifier(column), t=sql.Identifier(table)
            ),
            [size],
        )
        sample[(table, column)] = {row[0]: bytes(row[1]) for row in cursor.fetchall()}
    return sample


def _read_back(cursor, columns, sample) -> dict[tuple[str, str], dict]:
    restored = {}
    for table, pk, column, _context in columns:
        ids = list(sample[(table, column)])
        if not ids:
            restored[(table, column)] = {}
            continue
        cursor.execute(
            sql.SQL("SELECT {pk}, {c} FROM {t} WHERE {pk} = ANY(%s)").format(
                pk=sql.Identifier(pk), c=sql.Identifier(column), t=sql.Identifier(table)
            ),
            [ids],
        )
        restored[(table, column)] = {row[0]: bytes(row[1]) if row[1] is not None else None for row in cursor.fetchall()}
    return restored


def _compare_values(columns, live, restored) -> tuple[int, int]:
    """(values compared, mismatches): both sides decrypted with the configured keys."""
    from portal.field_crypto import DecryptionError, decrypt_value

    compared = mismatched = 0
    for table, _pk, column, context in columns:
        for row_id, blob in live[(table, column)].items():
            compared += 1
            other = restored[(table, column)].get(row_id)
            try:
                same = other is not None and decrypt_value(blob, context) == decrypt_value(other, context)
            except DecryptionError:
                same = False
            mismatched += 0 if same else 1
    return compared, mismatched


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _run(args: list[str], env: dict, timeout: int) -> None:
    result = subprocess.run(args, env=env, capture_output=True, text=True, timeout=timeout, check=False)  # noqa: S603
    if result.returncode != 0:
        # The tools' messages name objects, not row values; keep the last line for the record.
        last = (result.stderr.strip().splitlines() or ["failed"])[-1]
        raise BackupCheckError(f"{Path(args[0]).name} failed: {last[:300]}")


def _describe(exc: Exception) -> str:
    """What failed, without row values (a server message's primary text names objects only)."""
    if isinstance(exc, BackupCheckError):
        return str(exc)[:500]
    diag = getattr(exc, "diag", None)
    primary = getattr(diag, "message_primary", None) if diag is not None else None
    return f"{type(exc).__name__}: {primary or ''}"[:500]


def verify(*, actor=None, sample_size: int | None = None) -> BackupVerification:
    """Dump, restore into a scratch database, compare; the outcome is recorded and returned."""
    target = Target.configured()
    sample_size = sample_size or int(getattr(settings, "BACKUP_VERIFY_SAMPLE", 50))
    timeout = int(getattr(settings, "BACKUP_VERIFY_TIMEOUT", 3600))
    record = BackupVerification.objects.create(
        requested_by=actor if getattr(actor, "is_authenticated", False) else None
    )
    scratch = f"{target.dbname[:40]}_restorecheck_{secrets.token_hex(4)}"
    started = time.monotonic()
    columns = _encrypted_columns()
    created = False
    try:
        with tempfile.TemporaryDirectory(prefix="portal-backup-") as tmp:
            dump = Path(tmp) / "portal.dump"
            with target.connect(autocommit=True) as live:
                with live.cursor() as cursor:
                    cursor.execute("SELECT current_setting('server_version'), current_setting('server_version_num')")
                    record.server_version, version_num = cursor.fetchone()
                tools, _ = find_tools(int(version_num) // 10000)
                record.tool_version = subprocess.run(  # noqa: S603
                    [str(tools / "pg_dump"), "--version"], capture_output=True, text=True, timeout=30, check=False
                ).stdout.strip()[:100]
                live.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
                # Rows hidden by row-level security would make a silently partial backup: refuse.
                live.execute("SET LOCAL row_security = off")
                snapshot = live.execute("SELECT pg_export_snapshot()").fetchone()[0]
                _run(
                    [
                        str(tools / "pg_dump"),
                        "--format=custom",
                        "--no-password",
                        f"--snapshot={snapshot}",
                        f"--file={dump}",
                    ],
                    target.environ(),
                    timeout,
                )
                with live.cursor() as cursor:
                    tables = _tables(cursor)
                    live_counts = _counts(cursor, tables)
                    live_sample = _sample(cursor, columns, sample_size)
                live.execute("ROLLBACK")
            record.dump_bytes = dump.stat().st_size
            record.dump_sha256 = _sha256(dump)
            with target.connect(dbname="postgres", autocommit=True) as admin:
                admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(scratch)))
                created = True
            _run(
                [
                    str(tools / "pg_restore"),
                    "--no-password",
                    "--exit-on-error",
                    "--single-transaction",
                    "--no-owner",
                    "--no-privileges",
                    f"--dbname={scratch}",
                    str(dump),
                ],
                target.environ(scratch),
                timeout,
            )
        with target.connect(dbname=scratch) as restored, restored.cursor() as cursor:
            cursor.execute("SET row_security = off")
            restored_counts = _counts(cursor, _tables(cursor))
            restored_sample = _read_back(cursor, columns, live_sample)
        record.tables = len(live_counts)
        record.rows = sum(live_counts.values())
        record.mismatches = [
            {"table": table, "live": live_counts.get(table), "restored": restored_counts.get(table)}
            for table in sorted(set(live_counts) | set(restored_counts))
            if live_counts.get(table) != restored_counts.get(table)
        ]
        record.sampled_values, record.sample_mismatches = _compare_values(columns, live_sample, restored_sample)
        record.ok = not record.mismatches and not record.sample_mismatches and record.tables > 0
        record.detail = (
            "restored: row counts and sampled decrypted values equal"
            if record.ok
            else f"{len(record.mismatches)} table(s) differ, {record.sample_mismatches} sampled value(s) differ"
        )
    except (BackupCheckError, psycopg.Error, OSError, subprocess.SubprocessError) as exc:
        record.ok = False
        record.detail = _describe(exc)
    finally:
        if created:
            try:
                with target.connect(dbname="postgres", autocommit=True) as admin:
                    admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(scratch)))
            except psycopg.Error as exc:
                logger.error("scratch database %s was not dropped: %s", scratch, type(exc).__name__)
        record.finished_at = timezone.now()
        record.save()
    logger.info(
        "backup verification %s: %s in %.1fs (%s tables, %s rows, %s sampled values)",
        record.pk,
        "ok" if record.ok else "FAILED",
        time.monotonic() - started,
        record.tables,
        record.rows,
        record.sampled_values,
    )
    return record
