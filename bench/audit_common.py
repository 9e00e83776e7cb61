"""Shared set-up of the audit benchmarks: a database of their own, migrated."""

import os
import sys
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def use_database(suffix: str) -> str:
    """Point DATABASE_URL at ``<name>_<suffix>`` (created if missing), set up Django, migrate."""
    from scripts.services import ensure_database

    url = os.environ.get("DATABASE_URL")
    if not url:
        sys.exit("DATABASE_URL is not set: run through scripts/services.py")
    parts = urlsplit(url)
    name = f"{parts.path.lstrip('/') or 'portal'}_{suffix}"
    bench_url = parts._replace(path=f"/{name}").geturl()
    ensure_database(bench_url)
    os.environ["DATABASE_URL"] = bench_url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", database="owner", verbosity=0)
    return name
