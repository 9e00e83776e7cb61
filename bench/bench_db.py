"""Each benchmark works in a database of its own, so demo data is never touched."""

import os
import sys
from urllib.parse import urlsplit


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
    ensure_database(bench_url)
    os.environ["DATABASE_URL"] = bench_url
    return name
