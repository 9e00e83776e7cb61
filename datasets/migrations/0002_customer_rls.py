"""Row-level security on the customer table (ENABLE + FORCE, one policy per database role)."""

from django.db import migrations


def forwards(apps, schema_editor):
    from portal.rls import enable_team_rls

    with schema_editor.connection.cursor() as cursor:
        enable_team_rls(cursor, "datasets_customer")


def backwards(apps, schema_editor):
    from portal.rls import disable_team_rls

    with schema_editor.connection.cursor() as cursor:
        disable_team_rls(cursor, "datasets_customer")


class Migration(migrations.Migration):
    dependencies = [("datasets", "0001_initial"), ("accounts", "0002_roles_and_db_roles")]

    operations = [migrations.RunPython(forwards, backwards)]
