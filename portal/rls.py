"""Row-level security for team-owned tables: one policy per database role, `TO` that role.

A single policy that ORs role branches defeats index scans; one simple policy per role keeps
``team_id = ANY(portal_team_ids())`` an index condition.  Used by the datasets migrations.
"""

from psycopg import sql

from accounts.policy import DB_ROLES, SYSTEM_DB_ROLE, Role

TEAM_IDS_FUNCTION = """
CREATE OR REPLACE FUNCTION portal_team_ids() RETURNS bigint[]
LANGUAGE sql STABLE PARALLEL SAFE AS $$
  SELECT coalesce(string_to_array(nullif(current_setting('portal.team_ids', true), ''), ',')::bigint[], '{}')
$$;
"""

# Which database roles read by team list, and which reach every row (and may write).
_TEAM_READERS = [DB_ROLES[Role.ANALYST], DB_ROLES[Role.MANAGER]]
_ALL_ROWS = [DB_ROLES[Role.ADMIN], SYSTEM_DB_ROLE]


def enable_team_rls(cursor, table: str, team_column: str = "team_id") -> None:
    """ENABLE + FORCE row-level security on ``table`` with the per-role policies."""
    t = sql.Identifier(table)
    cursor.execute(TEAM_IDS_FUNCTION)
    cursor.execute(sql.SQL("ALTER TABLE {} ENABLE ROW LEVEL SECURITY").format(t))
    cursor.execute(sql.SQL("ALTER TABLE {} FORCE ROW LEVEL SECURITY").format(t))
    for role in _TEAM_READERS:
        cursor.execute(
            sql.SQL("CREATE POLICY {} ON {} FOR SELECT TO {} USING ({} = ANY (portal_team_ids()))").format(
                sql.Identifier(f"{table}_{role}"), t, sql.Identifier(role), sql.Identifier(team_column)
            )
        )
    for role in _ALL_ROWS:
        cursor.execute(
            sql.SQL("CREATE POLICY {} ON {} FOR ALL TO {} USING (true) WITH CHECK (true)").format(
                sql.Identifier(f"{table}_{role}"), t, sql.Identifier(role)
            )
        )


def disable_team_rls(cursor, table: str) -> None:
    t = sql.Identifier(table)
    for role in [*_TEAM_READERS, *_ALL_ROWS]:
        cursor.execute(sql.SQL("DROP POLICY IF EXISTS {} ON {}").format(sql.Identifier(f"{table}_{role}"), t))
    cursor.execute(sql.SQL("ALTER TABLE {} NO FORCE ROW LEVEL SECURITY").format(t))
    cursor.execute(sql.SQL("ALTER TABLE {} DISABLE ROW LEVEL SECURITY").format(t))
