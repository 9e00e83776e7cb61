"""Migrations run as the schema owner only; the app role never changes the schema."""


class OwnerMigratesRouter:
    def allow_migrate(self, db, app_label, **hints):
        return db == "owner"
