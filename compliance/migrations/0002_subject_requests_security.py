"""Subject requests: the PrivacyIntake duty group, row-level security on consent and restriction
rows, and the one change the append-only change history accepts from an erasure.

* Consent records and restrictions are visible to a team-scoped role exactly when their customer
  is (the policy asks the customer table, whose own row-level security applies); the admin and
  system roles reach all rows.  The analytics filter (an anti-join on these tables) therefore
  sees every withdrawal that concerns a row the caller can see.
* ``audit_logentry_guard`` (audit 0003) refuses every UPDATE of django-auditlog's table but
  Django's own actor NULL-ing.  GDPR erasure must redact the diffs about the erased subject, so
  the guard also accepts an UPDATE that replaces every value of ``changes`` with "[erased]"
  (field names kept), empties ``changes_text`` and ``serialized_data``, marks
  ``additional_data`` ``{"erased": true}`` and changes nothing else.  Such an update can only
  destroy diff values, never write new content.  The function below is audit 0003's with that
  branch added: keep the two in step.
"""

from django.db import migrations

from accounts.policy import DB_ROLES, SYSTEM_DB_ROLE, Role

TABLES = ("compliance_consentrecord", "compliance_processingrestriction")
READERS = (DB_ROLES[Role.ANALYST], DB_ROLES[Role.MANAGER])
ALL_ROWS = (DB_ROLES[Role.ADMIN], SYSTEM_DB_ROLE)

ERASED_CHANGES_FUNCTION = """
CREATE OR REPLACE FUNCTION compliance_erased_changes(value jsonb) RETURNS jsonb
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT CASE WHEN jsonb_typeof(value) = 'object'
    THEN (SELECT coalesce(jsonb_object_agg(key, '["[erased]", "[erased]"]'::jsonb), '{}'::jsonb)
          FROM jsonb_each(value))
    ELSE value END
$$;
"""

GUARD_WITH_REDACTION = """
CREATE OR REPLACE FUNCTION audit_logentry_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'UPDATE' AND NEW.actor_id IS NULL
     AND (to_jsonb(NEW) - 'actor_id') = (to_jsonb(OLD) - 'actor_id') THEN
    RETURN NEW;
  END IF;
  IF TG_OP = 'UPDATE'
     AND (to_jsonb(NEW) - ARRAY['changes', 'changes_text', 'serialized_data', 'additional_data'])
         = (to_jsonb(OLD) - ARRAY['changes', 'changes_text', 'serialized_data', 'additional_data'])
     AND NEW.changes IS NOT DISTINCT FROM compliance_erased_changes(OLD.changes)
     AND NEW.changes_text = ''
     AND NEW.serialized_data IS NULL
     AND NEW.additional_data = '{"erased": true}'::jsonb THEN
    RETURN NEW;
  END IF;
  RAISE EXCEPTION 'the change history is append-only: % refused', TG_OP
    USING ERRCODE = 'insufficient_privilege';
END
$$;
"""

GUARD_WITHOUT_REDACTION = """
CREATE OR REPLACE FUNCTION audit_logentry_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'UPDATE' AND NEW.actor_id IS NULL
     AND (to_jsonb(NEW) - 'actor_id') = (to_jsonb(OLD) - 'actor_id') THEN
    RETURN NEW;
  END IF;
  RAISE EXCEPTION 'the change history is append-only: % refused', TG_OP
    USING ERRCODE = 'insufficient_privilege';
END
$$;
"""


def create_intake_group(apps, schema_editor):
    from accounts.policy import Duty

    Group = apps.get_model("auth", "Group")
    Group.objects.using(schema_editor.connection.alias).get_or_create(name=Duty.PRIVACY_INTAKE.value)


def enable_rls(apps, schema_editor):
    from psycopg import sql

    with schema_editor.connection.cursor() as cursor:
        for table in TABLES:
            t = sql.Identifier(table)
            cursor.execute(sql.SQL("ALTER TABLE {} ENABLE ROW LEVEL SECURITY").format(t))
            cursor.execute(sql.SQL("ALTER TABLE {} FORCE ROW LEVEL SECURITY").format(t))
            for role in READERS:
                cursor.execute(
                    sql.SQL(
                        "CREATE POLICY {} ON {} FOR SELECT TO {}"
                        " USING (EXISTS (SELECT 1 FROM datasets_customer c WHERE c.id = customer_id))"
                    ).format(sql.Identifier(f"{table}_{role}"), t, sql.Identifier(role))
                )
            for role in ALL_ROWS:
                cursor.execute(
                    sql.SQL("CREATE POLICY {} ON {} FOR ALL TO {} USING (true) WITH CHECK (true)").format(
                        sql.Identifier(f"{table}_{role}"), t, sql.Identifier(role)
                    )
                )


def disable_rls(apps, schema_editor):
    from psycopg import sql

    with schema_editor.connection.cursor() as cursor:
        for table in TABLES:
            t = sql.Identifier(table)
            for role in (*READERS, *ALL_ROWS):
                cursor.execute(sql.SQL("DROP POLICY IF EXISTS {} ON {}").format(sql.Identifier(f"{table}_{role}"), t))
            cursor.execute(sql.SQL("ALTER TABLE {} NO FORCE ROW LEVEL SECURITY").format(t))
            cursor.execute(sql.SQL("ALTER TABLE {} DISABLE ROW LEVEL SECURITY").format(t))


class Migration(migrations.Migration):
    dependencies = [
        ("compliance", "0001_subject_requests"),
        ("accounts", "0002_roles_and_db_roles"),
        ("audit", "0003_append_only_triggers"),
    ]

    operations = [
        migrations.RunPython(create_intake_group, migrations.RunPython.noop),
        migrations.RunPython(enable_rls, disable_rls),
        migrations.RunSQL(ERASED_CHANGES_FUNCTION, "DROP FUNCTION IF EXISTS compliance_erased_changes(jsonb)"),
        migrations.RunSQL(GUARD_WITH_REDACTION, GUARD_WITHOUT_REDACTION),
    ]
