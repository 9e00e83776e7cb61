"""Append-only audit tables: triggers that refuse UPDATE and DELETE, and the chain over old events.

Privileges do the first half (the portal's roles get INSERT and SELECT only, see
``portal.db_roles.APPEND_ONLY_TABLES``); the triggers also stop a role that was granted more by
mistake.  The change history (auditlog's table) refuses DELETE and any UPDATE except the one
Django itself makes when an account is removed: its actor set to NULL (the entry keeps the
actor's email)."""

from django.db import migrations

REFUSE_FUNCTION = """
CREATE OR REPLACE FUNCTION audit_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'the audit table % is append-only: % refused', TG_TABLE_NAME, TG_OP
    USING ERRCODE = 'insufficient_privilege';
END
$$;
"""

LOGENTRY_FUNCTION = """
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

# Take the chain lock and read the head in one round trip.  Inside a VOLATILE function each
# statement gets a fresh snapshot (READ COMMITTED), so the SELECT sees the previous holder's commit.
HEAD_FUNCTION = """
CREATE OR REPLACE FUNCTION audit_chain_lock_head(lock_key bigint) RETURNS text
LANGUAGE plpgsql VOLATILE AS $$
DECLARE head text;
BEGIN
  PERFORM pg_advisory_xact_lock(lock_key);
  SELECT hash INTO head FROM audit_auditevent ORDER BY id DESC LIMIT 1;
  RETURN head;
END
$$;
"""

TRIGGERS = [
    "CREATE TRIGGER audit_event_append_only BEFORE UPDATE OR DELETE ON audit_auditevent"
    " FOR EACH ROW EXECUTE FUNCTION audit_refuse_change()",
    "CREATE TRIGGER audit_chaincheck_append_only BEFORE UPDATE OR DELETE ON audit_auditchaincheck"
    " FOR EACH ROW EXECUTE FUNCTION audit_refuse_change()",
    "CREATE TRIGGER auditlog_logentry_append_only BEFORE UPDATE OR DELETE ON auditlog_logentry"
    " FOR EACH ROW EXECUTE FUNCTION audit_logentry_guard()",
]

DROP = [
    "DROP TRIGGER IF EXISTS audit_event_append_only ON audit_auditevent",
    "DROP TRIGGER IF EXISTS audit_chaincheck_append_only ON audit_auditchaincheck",
    "DROP TRIGGER IF EXISTS auditlog_logentry_append_only ON auditlog_logentry",
    "DROP FUNCTION IF EXISTS audit_refuse_change()",
    "DROP FUNCTION IF EXISTS audit_logentry_guard()",
    "DROP FUNCTION IF EXISTS audit_chain_lock_head(bigint)",
]


def chain_existing_events(apps, schema_editor):
    """Events written before the chain existed get their hashes, in id order (runs before the triggers)."""
    from audit.chain import GENESIS, HASHED_FIELDS, event_hash

    AuditEvent = apps.get_model("audit", "AuditEvent")
    db = schema_editor.connection.alias
    previous = GENESIS
    for event in AuditEvent.objects.using(db).order_by("id").iterator(chunk_size=2000):
        event.prev_hash = previous
        event.hash = event_hash({name: getattr(event, name) for name in HASHED_FIELDS})
        event.save(update_fields=["prev_hash", "hash"])
        previous = event.hash


class Migration(migrations.Migration):
    dependencies = [
        ("audit", "0002_auditchaincheck_securityalert_auditevent_hash_and_more"),
        ("auditlog", "0017_add_actor_email"),
    ]

    operations = [
        migrations.RunPython(chain_existing_events, migrations.RunPython.noop),
        migrations.RunSQL(REFUSE_FUNCTION, "SELECT 1"),
        migrations.RunSQL(LOGENTRY_FUNCTION, "SELECT 1"),
        migrations.RunSQL(HEAD_FUNCTION, "SELECT 1"),
        *[migrations.RunSQL(trigger, "SELECT 1") for trigger in TRIGGERS],
        migrations.RunSQL("SELECT 1", DROP),
    ]
