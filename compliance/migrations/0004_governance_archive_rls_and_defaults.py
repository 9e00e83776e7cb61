"""Row-level security on the order archive, and the seed's default retention policies.

The archive holds orders kept for the legal period, out of day-to-day processing: the database
roles of ``policy.ARCHIVE_READER_ROLES`` read it, the system role (retention, erasure) writes it,
every other role sees no row (ENABLE + FORCE, one policy per role).

The defaults (page views deleted after 2 years, orders archived after 7) are created disabled:
a policy is enabled in the admin after its preview (counts, oldest row) has been looked at.
"""

from django.db import migrations
from psycopg import sql

TABLE = "compliance_archivedorder"


def _reader_roles():
    from accounts.policy import ARCHIVE_READER_ROLES, DB_ROLES

    return sorted(DB_ROLES[role] for role in ARCHIVE_READER_ROLES)


def enable_archive_rls(apps, schema_editor):
    from accounts.policy import SYSTEM_DB_ROLE

    table = sql.Identifier(TABLE)
    with schema_editor.connection.cursor() as cursor:
        cursor.execute(sql.SQL("ALTER TABLE {} ENABLE ROW LEVEL SECURITY").format(table))
        cursor.execute(sql.SQL("ALTER TABLE {} FORCE ROW LEVEL SECURITY").format(table))
        for role in _reader_roles():
            cursor.execute(
                sql.SQL("CREATE POLICY {} ON {} FOR SELECT TO {} USING (true)").format(
                    sql.Identifier(f"{TABLE}_{role}_read"), table, sql.Identifier(role)
                )
            )
        cursor.execute(
            sql.SQL("CREATE POLICY {} ON {} FOR ALL TO {} USING (true) WITH CHECK (true)").format(
                sql.Identifier(f"{TABLE}_{SYSTEM_DB_ROLE}_all"), table, sql.Identifier(SYSTEM_DB_ROLE)
            )
        )


def disable_archive_rls(apps, schema_editor):
    from accounts.policy import SYSTEM_DB_ROLE

    table = sql.Identifier(TABLE)
    names = [f"{TABLE}_{role}_read" for role in _reader_roles()] + [f"{TABLE}_{SYSTEM_DB_ROLE}_all"]
    with schema_editor.connection.cursor() as cursor:
        for name in names:
            cursor.execute(sql.SQL("DROP POLICY IF EXISTS {} ON {}").format(sql.Identifier(name), table))
        cursor.execute(sql.SQL("ALTER TABLE {} NO FORCE ROW LEVEL SECURITY").format(table))
        cursor.execute(sql.SQL("ALTER TABLE {} DISABLE ROW LEVEL SECURITY").format(table))


def create_default_policies(apps, schema_editor):
    from compliance.retention_datasets import DEFAULT_POLICIES

    RetentionPolicy = apps.get_model("compliance", "RetentionPolicy")
    db = schema_editor.connection.alias
    for default in DEFAULT_POLICIES:
        RetentionPolicy.objects.using(db).get_or_create(
            dataset=default["dataset"],
            defaults={key: value for key, value in default.items() if key != "dataset"},
        )


class Migration(migrations.Migration):
    dependencies = [
        ("compliance", "0003_governance"),
        ("accounts", "0002_roles_and_db_roles"),
    ]

    operations = [
        migrations.RunPython(enable_archive_rls, disable_archive_rls),
        migrations.RunPython(create_default_policies, migrations.RunPython.noop),
    ]
