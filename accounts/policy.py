"""The access policy, as data: the seed's roles table and the per-role masking table.

Every check in the admin, views, API, tasks, dashboards and the database scope reads this
module; no other module restates a role rule.  In the seed's table "edit" and "delete" speak of
reports and "view" and "export" of data; the scopes below keep that reading.
"""

from dataclasses import dataclass
from enum import StrEnum


class Role(StrEnum):
    """A portal role; each is a Django group of the same name (created by a data migration)."""

    ANALYST = "Analyst"
    MANAGER = "Manager"
    ADMIN = "Admin"
    EXECUTIVE = "Executive"


class Duty(StrEnum):
    """A duty held beside a role (or alone); each is a Django group of the same name."""

    DPO = "DPO"


class Action(StrEnum):
    VIEW = "view"
    EDIT = "edit"
    DELETE = "delete"
    EXPORT = "export"


class Scope(StrEnum):
    """How far an action reaches."""

    NONE = "none"
    OWN = "own"
    TEAM = "team"
    DEPARTMENT = "department"
    ALL = "all"
    DASHBOARDS = "dashboards"  # aggregates only, never a row


class Mask(StrEnum):
    """How one field is shown; the functions live in ``datasets.masking``."""

    CLEAR = "clear"
    INITIAL = "initial"
    EMAIL = "email"
    PHONE = "phone"
    CARD = "card"
    HASH = "hash"
    NULL = "null"


ROLES_TABLE: dict[Role, dict[Action, Scope]] = {
    Role.ANALYST: {
        Action.VIEW: Scope.TEAM,
        Action.EDIT: Scope.OWN,
        Action.DELETE: Scope.NONE,
        Action.EXPORT: Scope.NONE,
    },
    Role.MANAGER: {
        Action.VIEW: Scope.DEPARTMENT,
        Action.EDIT: Scope.DEPARTMENT,
        Action.DELETE: Scope.OWN,
        Action.EXPORT: Scope.TEAM,
    },
    Role.ADMIN: {Action.VIEW: Scope.ALL, Action.EDIT: Scope.ALL, Action.DELETE: Scope.ALL, Action.EXPORT: Scope.ALL},
    Role.EXECUTIVE: {
        Action.VIEW: Scope.DASHBOARDS,
        Action.EDIT: Scope.NONE,
        Action.DELETE: Scope.NONE,
        Action.EXPORT: Scope.NONE,
    },
}

# Per role, how each personal field of a row is shown.  A role missing here gets no rows.
_CLEAR_CONTACT = {"name": Mask.CLEAR, "email": Mask.CLEAR, "phone": Mask.CLEAR, "card_last4": Mask.CARD}
MASKING_TABLE: dict[Role, dict[str, Mask]] = {
    Role.ANALYST: {"name": Mask.INITIAL, "email": Mask.EMAIL, "phone": Mask.PHONE, "card_last4": Mask.CARD},
    Role.MANAGER: dict(_CLEAR_CONTACT),
    Role.ADMIN: dict(_CLEAR_CONTACT),
}

# Who works in the Django admin, and who manages accounts there.
STAFF_ROLES = frozenset({Role.MANAGER, Role.ADMIN})
ACCOUNT_ADMIN_ROLES = frozenset({Role.ADMIN})

# The PostgreSQL role each portal role's transactions run as (SET LOCAL ROLE).  Row-level
# security has one policy per database role, so the planner keeps index scans.
DB_ROLES: dict[Role, str] = {
    Role.ANALYST: "portal_analyst",
    Role.MANAGER: "portal_manager",
    Role.ADMIN: "portal_admin",
    Role.EXECUTIVE: "portal_executive",
}
# Internal jobs with no acting user (demo seeding, maintenance) run as this role.
SYSTEM_DB_ROLE = "portal_system"
# Row scopes that the database enforces through a team-id list rather than "all".
TEAM_LIST_SCOPES = frozenset({Scope.TEAM, Scope.DEPARTMENT})


@dataclass(frozen=True)
class Access:
    """What one user may reach for one action: the scope and, for team scopes, the team ids."""

    role: Role | None
    scope: Scope
    team_ids: frozenset[int] = frozenset()
    user_id: int | None = None

    @property
    def reaches_rows(self) -> bool:
        return self.scope not in (Scope.NONE, Scope.DASHBOARDS)


def scope_of(role: Role | None, action: Action) -> Scope:
    """The table's answer for one role and action (no role: nothing)."""
    if role is None:
        return Scope.NONE
    return ROLES_TABLE[role][Action(action)]


def masking_for(role: Role | None) -> dict[str, Mask] | None:
    """The masking row for a role, or None when the role gets no rows."""
    return MASKING_TABLE.get(role) if role is not None else None


def access(user, action: Action | str) -> Access:
    """Resolve the table for one user and action into a scope with concrete team ids."""
    from accounts import selectors

    if user is None or not user.is_authenticated or not user.is_active:
        return Access(role=None, scope=Scope.NONE)
    # Resolved once per user object (one request or task): a scope is stable within it.
    cache = user.__dict__.setdefault("_portal_access", {})
    if action in cache:
        return cache[action]
    role = selectors.role_of(user)
    scope = scope_of(role, Action(action))
    team_ids: frozenset[int] = frozenset()
    if scope == Scope.TEAM:
        team_ids = selectors.team_ids_of_member(user)
    elif scope == Scope.DEPARTMENT:
        team_ids = selectors.team_ids_of_department(user)
    cache[action] = Access(role=role, scope=scope, team_ids=team_ids, user_id=user.pk)
    return cache[action]


def can(user, action: Action | str) -> bool:
    """Whether the user may reach any row for the action."""
    return access(user, action).reaches_rows


def is_staff_role(role: Role | None) -> bool:
    return role in STAFF_ROLES


def may_manage_accounts(user) -> bool:
    from accounts import selectors

    return bool(user.is_authenticated and user.is_active and selectors.role_of(user) in ACCOUNT_ADMIN_ROLES)


def db_role_for(role: Role | None) -> str | None:
    return DB_ROLES.get(role) if role is not None else None
