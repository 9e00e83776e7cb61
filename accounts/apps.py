from django.apps import AppConfig
from django.db.models.signals import post_migrate


def _grant_privileges(using, **kwargs):
    # Tables created by any migration get the portal roles' privileges.
    from django.db import connections

    from portal import db_roles

    if using != "owner":
        return
    with connections[using].cursor() as cursor:
        db_roles.ensure_roles(cursor)
        db_roles.grant_table_privileges(cursor)


def _schedule_periodic_tasks(using, **kwargs):
    # Created once, then admin-editable (django-celery-beat): a later migrate never overwrites
    # an edited schedule, but puts back a deleted one.
    from accounts import schedules

    if using != "owner":
        return
    schedules.ensure_periodic_tasks(using)


class AccountsConfig(AppConfig):
    name = "accounts"

    def ready(self):
        from accounts import signals

        signals.connect()
        post_migrate.connect(_grant_privileges, sender=self, dispatch_uid="portal_grant_privileges")
        post_migrate.connect(_schedule_periodic_tasks, sender=self, dispatch_uid="accounts_periodic_tasks")
