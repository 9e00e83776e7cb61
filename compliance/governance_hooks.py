"""Wiring of the governance half, imported by ``ComplianceConfig.ready`` in every process:
its Celery tasks, the personal-data system check, and the archive's erasure hook."""

from django.core import checks
from django.db import connections
from psycopg import sql

from compliance import (
    governance_tasks,  # noqa: F401  (registers the tasks with Celery)
    record_of_processing,
)
from compliance.retention_datasets import archive_tables

checks.register(record_of_processing.check_personal_fields, checks.Tags.models)


def anonymise_archives(customer_ids: list[int], using: str) -> dict[str, int]:
    """Erasure hook: archived rows keep their amounts but lose the link to the erased customer
    (the archive holds a plain customer id, no foreign key, so nothing cascades to it)."""
    from django.apps import apps

    counts = {}
    if not customer_ids:
        return counts
    with connections[using].cursor() as cursor:
        for label, column in archive_tables():
            model = apps.get_model(label)
            # Table and column come from the retention allow-list, never from input.
            cursor.execute(
                sql.SQL("UPDATE {t} SET {c} = NULL WHERE {c} = ANY(%s)").format(
                    t=sql.Identifier(model._meta.db_table), c=sql.Identifier(model._meta.get_field(column).column)
                ),
                [list(customer_ids)],
            )
            counts[model._meta.db_table] = cursor.rowcount
    return counts


def _register_erasure_hook() -> None:
    try:
        from compliance import erasure
    except ImportError:
        return
    if hasattr(erasure, "register_hook"):
        erasure.register_hook(anonymise_archives)


_register_erasure_hook()
