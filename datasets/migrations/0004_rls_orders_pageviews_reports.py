"""Row-level security on orders, page views (team-owned) and reports (team-owned, owner rules, shares)."""

from django.db import migrations

from accounts.policy import DB_ROLES, SYSTEM_DB_ROLE, Role

USER_ID_FUNCTION = """
CREATE OR REPLACE FUNCTION portal_user_id() RETURNS bigint
LANGUAGE sql STABLE PARALLEL SAFE AS $$
  SELECT nullif(current_setting('portal.user_id', true), '')::bigint
$$;
"""

# A report is visible to a team-scoped role when its team is in scope or guardian shares it
# with the user directly or with one of the user's groups (team groups).
SHARED = """(
  team_id = ANY (portal_team_ids())
  OR EXISTS (SELECT 1 FROM guardian_userobjectpermission p JOIN auth_permission ap ON ap.id = p.permission_id
             WHERE ap.codename = 'view_report' AND p.object_pk = datasets_report.id::text
               AND p.user_id = portal_user_id())
  OR EXISTS (SELECT 1 FROM guardian_groupobjectpermission g JOIN auth_permission ap ON ap.id = g.permission_id
             JOIN accounts_user_groups ug ON ug.group_id = g.group_id
             WHERE ap.codename = 'view_report' AND g.object_pk = datasets_report.id::text
               AND ug.user_id = portal_user_id())
)"""
OWN = "owner_id = portal_user_id()"
IN_SCOPE = "team_id = ANY (portal_team_ids())"

ANALYST, MANAGER = DB_ROLES[Role.ANALYST], DB_ROLES[Role.MANAGER]
REPORT_POLICIES = [
    # (policy name, command, role, USING, WITH CHECK) — the roles table for reports.
    ("report_analyst_read", "SELECT", ANALYST, SHARED, None),
    ("report_analyst_insert", "INSERT", ANALYST, None, f"{OWN} AND {IN_SCOPE}"),
    ("report_analyst_update", "UPDATE", ANALYST, OWN, f"{OWN} AND {IN_SCOPE}"),
    ("report_manager_read", "SELECT", MANAGER, SHARED, None),
    ("report_manager_insert", "INSERT", MANAGER, None, f"{OWN} AND {IN_SCOPE}"),
    ("report_manager_update", "UPDATE", MANAGER, IN_SCOPE, IN_SCOPE),
    ("report_manager_delete", "DELETE", MANAGER, OWN, None),
    ("report_admin_all", "ALL", DB_ROLES[Role.ADMIN], "true", "true"),
    ("report_system_all", "ALL", SYSTEM_DB_ROLE, "true", "true"),
]


def forwards(apps, schema_editor):
    from portal.rls import enable_team_rls

    with schema_editor.connection.cursor() as cursor:
        enable_team_rls(cursor, "datasets_order")
        enable_team_rls(cursor, "datasets_pageview")
        cursor.execute(USER_ID_FUNCTION)
        cursor.execute("ALTER TABLE datasets_report ENABLE ROW LEVEL SECURITY")
        cursor.execute("ALTER TABLE datasets_report FORCE ROW LEVEL SECURITY")
        for name, command, role, using, check in REPORT_POLICIES:
            # Every piece is a constant of this module: no SQL is built from input.
            clause = f"CREATE POLICY {name} ON datasets_report FOR {command} TO {role}"
            if using:
                clause += f" USING ({using})"
            if check:
                clause += f" WITH CHECK ({check})"
            cursor.execute(clause)


def backwards(apps, schema_editor):
    from portal.rls import disable_team_rls

    with schema_editor.connection.cursor() as cursor:
        disable_team_rls(cursor, "datasets_order")
        disable_team_rls(cursor, "datasets_pageview")
        for name, *_ in REPORT_POLICIES:
            cursor.execute(f"DROP POLICY IF EXISTS {name} ON datasets_report")
        cursor.execute("ALTER TABLE datasets_report NO FORCE ROW LEVEL SECURITY")
        cursor.execute("ALTER TABLE datasets_report DISABLE ROW LEVEL SECURITY")


class Migration(migrations.Migration):
    dependencies = [
        ("datasets", "0003_export_report_accessgrant_order_pageview"),
        ("guardian", "0003_remove_groupobjectpermission_guardian_gr_content_ae6aec_idx_and_more"),
    ]

    operations = [migrations.RunPython(forwards, backwards)]
