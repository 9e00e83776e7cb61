"""The request/task security context: which database role and scope this transaction runs under.

Every request (middleware, API authentication) and every Celery task (``portal.tasks``) sets
the acting user's database role and team scope for its own transaction only, with
``set_config(..., true)`` (the function form of ``SET LOCAL``), so nothing survives into the
next transaction on a pooled connection.  Row-level-security policies read these settings.
"""

from contextlib import contextmanager
from dataclasses import dataclass

from django.db import connections, transaction

from accounts import policy

TEAM_IDS_SETTING = "portal.team_ids"
USER_ID_SETTING = "portal.user_id"


@dataclass(frozen=True)
class DbScope:
    """The values one transaction runs under."""

    db_role: str  # "none" = the login role itself: no policy matches, no protected row is seen
    team_ids: str = ""
    user_id: str = ""


NO_SCOPE = DbScope("none")
SYSTEM_SCOPE = DbScope(policy.SYSTEM_DB_ROLE)


def scope_for_user(user) -> DbScope:
    """The database scope of a user: their role's database role and their view team ids."""
    grant = policy.access(user, policy.Action.VIEW)
    db_role = policy.db_role_for(grant.role)
    if db_role is None:
        return NO_SCOPE
    team_ids = ",".join(str(t) for t in sorted(grant.team_ids)) if grant.scope in policy.TEAM_LIST_SCOPES else ""
    return DbScope(db_role, team_ids, str(grant.user_id or ""))


def _apply(using: str, scope: DbScope) -> None:
    with connections[using].cursor() as cursor:
        cursor.execute(
            "SELECT set_config('role', %s, true), set_config(%s, %s, true), set_config(%s, %s, true)",
            [scope.db_role, TEAM_IDS_SETTING, scope.team_ids, USER_ID_SETTING, scope.user_id],
        )


def _current(using: str) -> DbScope:
    with connections[using].cursor() as cursor:
        cursor.execute(
            "SELECT current_setting('role'), coalesce(current_setting(%s, true), ''),"
            " coalesce(current_setting(%s, true), '')",
            [TEAM_IDS_SETTING, USER_ID_SETTING],
        )
        role, team_ids, user_id = cursor.fetchone()
    return DbScope(role, team_ids, user_id)


def apply_user_scope(user, using: str = "default") -> None:
    """Set the user's scope for the rest of the current transaction (which must be atomic)."""
    if not connections[using].in_atomic_block:
        raise RuntimeError("a security scope needs a transaction: wrap the work in transaction.atomic()")
    _apply(using, scope_for_user(user))


@contextmanager
def scoped(user=None, *, system: bool = False, using: str = "default"):
    """Run the block in a transaction under the user's scope (or the system scope), then restore."""
    scope = SYSTEM_SCOPE if system else scope_for_user(user)
    conn = connections[using]
    # Outermost: the settings end with the transaction itself, so there is nothing to read back
    # or restore (two round trips fewer for every request, task and retention batch).
    nested = conn.in_atomic_block
    with transaction.atomic(using=using):
        previous = _current(using) if nested else None
        _apply(using, scope)
        yield scope
        # A broken transaction is rolled back with its settings; otherwise restore the outer scope.
        if previous is not None and not conn.needs_rollback:
            _apply(using, previous)
