"""Role groups (Analyst, Manager, Admin, Executive), the DPO duty group, and the database roles."""

from django.db import migrations


def create_groups(apps, schema_editor):
    from accounts.policy import Duty, Role

    Group = apps.get_model("auth", "Group")
    for name in [*(r.value for r in Role), *(d.value for d in Duty)]:
        Group.objects.using(schema_editor.connection.alias).get_or_create(name=name)


def create_db_roles(apps, schema_editor):
    from portal import db_roles

    with schema_editor.connection.cursor() as cursor:
        db_roles.ensure_roles(cursor)


class Migration(migrations.Migration):
    dependencies = [("accounts", "0001_initial"), ("auth", "0012_alter_user_first_name_max_length")]

    operations = [
        migrations.RunPython(create_groups, migrations.RunPython.noop),
        migrations.RunPython(create_db_roles, migrations.RunPython.noop),
    ]
