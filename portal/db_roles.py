"""The PostgreSQL roles the portal serves as, and their privileges.  Run as the schema owner.

``portal_app`` is the login role: it owns nothing, is no superuser, has no BYPASSRLS and
inherits nothing, so with no scope set it matches no row-level-security policy and sees no
protected row.  Each transaction switches to one of the NOLOGIN roles below with
``set_config('role', ..., true)``; those roles carry one policy each on the protected tables.
"""

from django.conf import settings
from psycopg import sql

from accounts.policy import DB_ROLES, SYSTEM_DB_ROLE

SCOPED_ROLES = [*DB_ROLES.values(), SYSTEM_DB_ROLE]

# Tables the portal may only append to and read (audit trail).  Filled by the audit app.
APPEND_ONLY_TABLES: set[str] = set()


def app_user() -> str:
    return settings.DATABASE_APP_USER


def ensure_roles(cursor) -> None:
    """Create the login role and the scoped roles if missing; idempotent."""
    login = app_user()
    for name in [login, *SCOPED_ROLES]:
        cursor.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [name])
        if cursor.fetchone() is None:
            cursor.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(sql.Identifier(name)))
    cursor.execute(
        sql.SQL("ALTER ROLE {} LOGIN NOINHERIT NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE").format(
            sql.Identifier(login)
        )
    )
    if settings.DATABASE_APP_PASSWORD:
        cursor.execute(
            sql.SQL("ALTER ROLE {} PASSWORD {}").format(
                sql.Identifier(login), sql.Literal(settings.DATABASE_APP_PASSWORD)
            )
        )
    for name in SCOPED_ROLES:
        cursor.execute(sql.SQL("ALTER ROLE {} NOLOGIN NOSUPERUSER NOBYPASSRLS").format(sql.Identifier(name)))
        # Membership lets the login role SET ROLE; NOINHERIT on it means no privilege leaks back.
        cursor.execute(sql.SQL("GRANT {} TO {}").format(sql.Identifier(name), sql.Identifier(login)))


def grant_table_privileges(cursor) -> None:
    """Give every portal role DML on the schema's tables; append-only tables get INSERT/SELECT."""
    roles = sql.SQL(", ").join(sql.Identifier(r) for r in [app_user(), *SCOPED_ROLES])
    cursor.execute(sql.SQL("GRANT USAGE ON SCHEMA public TO {}").format(roles))
    cursor.execute(sql.SQL("GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {}").format(roles))
    cursor.execute(sql.SQL("GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {}").format(roles))
    for table in sorted(APPEND_ONLY_TABLES):
        cursor.execute(sql.SQL("REVOKE UPDATE, DELETE, TRUNCATE ON {} FROM {}").format(sql.Identifier(table), roles))
