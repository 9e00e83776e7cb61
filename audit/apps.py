from django.apps import AppConfig
from django.db.models.signals import post_migrate

# Tables the portal's roles may only INSERT into and SELECT from (a trigger refuses the rest).
APPEND_ONLY = ("audit_auditevent", "audit_auditchaincheck", "audit_evidencesnapshot")
# The change history may not be deleted from; its actor column is set to NULL by Django when an
# account is removed, so UPDATE stays granted and the table's trigger allows only that change.
NO_DELETE = ("auditlog_logentry",)


def _revoke_delete(using, **kwargs):
    from django.db import connections
    from psycopg import sql

    from portal import db_roles

    if using != "owner":
        return
    roles = sql.SQL(", ").join(sql.Identifier(r) for r in [db_roles.app_user(), *db_roles.SCOPED_ROLES])
    with connections[using].cursor() as cursor:
        for table in NO_DELETE:
            cursor.execute(sql.SQL("REVOKE DELETE, TRUNCATE ON {} FROM {}").format(sql.Identifier(table), roles))


class AuditConfig(AppConfig):
    name = "audit"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from audit import registration, signals, task_context
        from portal import db_roles

        db_roles.APPEND_ONLY_TABLES.update(APPEND_ONLY)
        registration.register_models()
        signals.connect()
        task_context.connect()
        # Runs after accounts' grant handler (apps send post_migrate in INSTALLED_APPS order).
        post_migrate.connect(_revoke_delete, sender=self, dispatch_uid="audit_revoke_delete")
