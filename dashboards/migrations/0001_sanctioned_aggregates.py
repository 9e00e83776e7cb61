"""The executive's sanctioned aggregate functions (see ``dashboards.aggregate_sql``)."""

from django.db import migrations


def forwards(apps, schema_editor):
    from dashboards import aggregate_sql

    with schema_editor.connection.cursor() as cursor:
        aggregate_sql.install(cursor)


def backwards(apps, schema_editor):
    from dashboards import aggregate_sql

    with schema_editor.connection.cursor() as cursor:
        aggregate_sql.uninstall(cursor)


class Migration(migrations.Migration):
    dependencies = [
        ("datasets", "0004_rls_orders_pageviews_reports"),
        ("accounts", "0002_roles_and_db_roles"),
        ("compliance", "0002_subject_requests_security"),  # consent and restriction tables, their RLS
    ]

    operations = [migrations.RunPython(forwards, backwards)]
