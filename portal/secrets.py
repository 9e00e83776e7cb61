"""Secrets come from the environment or from a file named by ``<NAME>_FILE``; never a default."""

import os
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured


def read_secret(name: str) -> str:
    """Return secret ``name`` from ``$NAME`` or the file at ``$NAME_FILE``; refuse to go on without it."""
    value = os.environ.get(name, "")
    file_path = os.environ.get(f"{name}_FILE", "")
    if not value and file_path:
        try:
            value = Path(file_path).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ImproperlyConfigured(f"{name}_FILE={file_path} cannot be read: {exc.strerror}") from None
    if not value:
        raise ImproperlyConfigured(f"Missing secret {name}: set {name} or {name}_FILE")
    if len(value) < 32:
        raise ImproperlyConfigured(f"Secret {name} is too short: use at least 32 characters")
    return value
