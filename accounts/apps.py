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


class AccountsConfig(AppConfig):
    name = "accounts"

    def ready(self):
        post_migrate.connect(_grant_privileges, sender=self, dispatch_uid="portal_grant_privileges")
