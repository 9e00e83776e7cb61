"""Each benchmark works in a database of its own, so demo data is never touched."""

import hashlib
import os
import sys
from urllib.parse import urlsplit

KEY_NAMES = ("CRYPTOGRAPHY_KEY", "BLIND_INDEX_KEY", "PSEUDONYM_KEY")


def use_bench_database(suffix: str) -> str:
    """Point DATABASE_URL at ``<name><suffix>`` (created if missing) and return that name.

    Any bench suffix already on the name is dropped first, so reruns never stack suffixes."""
    from scripts.services import ensure_database

    url = os.environ.get("DATABASE_URL")
    if not url:
        sys.exit("DATABASE_URL is not set: run through scripts/services.py (or a make bench target)")
    parts = urlsplit(url)
    base = (parts.path.lstrip("/") or "portal").removesuffix(suffix).removesuffix("_bench")
    name = base + suffix
    bench_url = parts._replace(path=f"/{name}").geturl()
    _drop_if_written_under_other_keys(bench_url, name)
    ensure_database(bench_url)
    _label_with_keys(bench_url, name)
    os.environ["DATABASE_URL"] = bench_url
    return name


def keys_label() -> str:
    """A label of the current keys (a truncated hash, never the keys): a bench database seeded under
    other keys (a fresh checkout writes new ones to var/secrets.env) cannot be read any more."""
    material = "|".join(os.environ.get(name, "") for name in KEY_NAMES)
    return "portal-bench-keys:" + hashlib.sha256(("bench-db|" + material).encode()).hexdigest()[:16]


def _maintenance(url: str):
    import psycopg

    return psycopg.connect(urlsplit(url)._replace(path="/postgres").geturl(), autocommit=True)


def _drop_if_written_under_other_keys(url: str, name: str) -> None:
    from psycopg import sql

    with _maintenance(url) as conn:
        row = conn.execute(
            "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = %s", [name]
        ).fetchone()
        if row is not None and row[0] != keys_label():
            print(f"{name} was seeded under other keys: dropping it and seeding again", flush=True)
            conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))


def _label_with_keys(url: str, name: str) -> None:
    from psycopg import sql

    with _maintenance(url) as conn:
        conn.execute(sql.SQL("COMMENT ON DATABASE {} IS {}").format(sql.Identifier(name), sql.Literal(keys_label())))
