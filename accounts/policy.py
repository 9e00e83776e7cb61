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
    # Integration accounts of customer-facing systems that file privacy requests (create only).
    PRIVACY_INTAKE = "PrivacyIntake"


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
# Duties that enter the admin site on their own (the DPO works subject requests there).
STAFF_DUTIES = frozenset({Duty.DPO})
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
    # Approved, unexpired temporary grants widen the view (never export) by whole teams.
    with_grants = Action(action) == Action.VIEW
    if scope == Scope.TEAM:
        team_ids = selectors.team_ids_of_member(user, with_grants=with_grants)
    elif scope == Scope.DEPARTMENT:
        team_ids = selectors.team_ids_of_department(user, with_grants=with_grants)
    cache[action] = Access(role=role, scope=scope, team_ids=team_ids, user_id=user.pk)
    return cache[action]


def can(user, action: Action | str) -> bool:
    """Whether the user may reach any row for the action."""
    return access(user, action).reaches_rows


def writable_team_ids(user) -> frozenset[int] | None:
    """Teams a user may file reports under (None: any): own teams for "own", the department for
    "department", every team for "all", none otherwise."""
    from accounts import selectors

    scope = access(user, Action.EDIT).scope
    if scope == Scope.ALL:
        return None
    if scope == Scope.DEPARTMENT:
        return selectors.team_ids_of_department(user)
    if scope in (Scope.OWN, Scope.TEAM):
        return selectors.team_ids_of_member(user)
    return frozenset()


def may_receive_shares(user) -> bool:
    """Reports can be shared with roles that see rows; an Executive's world is dashboards."""
    return can(user, Action.VIEW)


def may_share(user, report) -> bool:
    """Who may share a report: whoever may edit it."""
    return report.__class__.objects.restrict(user, Action.EDIT).filter(pk=report.pk).exists()


def may_request_grant(user) -> bool:
    """Temporary grants extend a row-reaching role; they never turn dashboards into rows."""
    return access(user, Action.VIEW).scope in TEAM_LIST_SCOPES


# Who decides temporary grants: an admin any, a manager those on their own department's data.
GRANT_DECIDER_SCOPES: dict[Role, Scope] = {Role.ADMIN: Scope.ALL, Role.MANAGER: Scope.DEPARTMENT}


def grant_decision_scope(user) -> Scope:
    """How far the user's right to decide temporary grants reaches."""
    from accounts import selectors

    role = selectors.role_of(user) if user.is_authenticated and user.is_active else None
    scope = GRANT_DECIDER_SCOPES.get(role, Scope.NONE)
    if scope == Scope.DEPARTMENT and user.department_id is None:
        return Scope.NONE
    return scope


def may_decide_grant(user, team_department_id: int | None) -> bool:
    """Whether the user decides a grant on data of the given department."""
    scope = grant_decision_scope(user)
    if scope == Scope.ALL:
        return True
    return scope == Scope.DEPARTMENT and team_department_id is not None and user.department_id == team_department_id


def field_is_clear(role: Role | None, field: str) -> bool:
    """Whether the role sees a field unmasked without any grant."""
    masks = masking_for(role) or {}
    return masks.get(field) == Mask.CLEAR


# How long a temporary grant may last, in hours.
GRANT_MAX_HOURS = 72


def is_staff_role(role: Role | None) -> bool:
    return role in STAFF_ROLES


def is_staff_duty(duty: Duty | None) -> bool:
    return duty in STAFF_DUTIES


def may_manage_accounts(user) -> bool:
    from accounts import selectors

    return bool(user.is_authenticated and user.is_active and selectors.role_of(user) in ACCOUNT_ADMIN_ROLES)


def db_role_for(role: Role | None) -> str | None:
    return DB_ROLES.get(role) if role is not None else None


# --- Dashboards (browser pages) --------------------------------------------------------------
class Dashboard(StrEnum):
    ANALYST = "analyst"
    MANAGER = "manager"
    EXECUTIVE = "executive"
    ADMIN = "admin"


class DashboardSource(StrEnum):
    """Where a dashboard's figures come from."""

    ROWS = "rows"  # aggregates over restrict(user, "view"), computed in PostgreSQL under the user's RLS scope
    SANCTIONED_AGGREGATES = "sanctioned_aggregates"  # only the SECURITY DEFINER aggregate functions


@dataclass(frozen=True)
class DashboardRule:
    dashboard: Dashboard
    source: DashboardSource
    breakdowns: tuple[str, ...] = ()  # "team", "department": per-group tables beside the charts
    security_panels: bool = False  # open alerts, overdue GDPR requests, checklist status


# Which dashboard each role gets (one each); a role missing here has none.
DASHBOARD_RULES: dict[Role, DashboardRule] = {
    Role.ANALYST: DashboardRule(Dashboard.ANALYST, DashboardSource.ROWS),
    Role.MANAGER: DashboardRule(Dashboard.MANAGER, DashboardSource.ROWS, breakdowns=("team",)),
    Role.EXECUTIVE: DashboardRule(Dashboard.EXECUTIVE, DashboardSource.SANCTIONED_AGGREGATES, ("department",)),
    Role.ADMIN: DashboardRule(Dashboard.ADMIN, DashboardSource.ROWS, ("department", "team"), security_panels=True),
}
# Aggregate-only figures: a group with fewer distinct subjects than this is shown as "<5", never
# as a number.  The SQL functions carry the same value (dashboards migrations); a test compares.
SMALL_GROUP_THRESHOLD = 5
# Database roles that may EXECUTE the sanctioned aggregate functions (company-wide KPIs).
SANCTIONED_AGGREGATE_ROLES = frozenset({Role.EXECUTIVE})
# The NOLOGIN role that owns those functions (SECURITY DEFINER): SELECT on the aggregated tables
# through its own read-only policy, nothing else, and no portal role can SET ROLE to it.
AGGREGATE_DEFINER_DB_ROLE = "portal_aggregates"
# An executive's date range covers whole months, so that two ranges never differ by a few days
# (a differencing attack on a small group).
WHOLE_MONTH_RANGES = frozenset({Dashboard.EXECUTIVE})


def dashboard_rule(user) -> DashboardRule | None:
    """The dashboard the user's role gets, or None (no role, or a duty alone)."""
    from accounts import selectors

    if user is None or not getattr(user, "is_authenticated", False) or not user.is_active:
        return None
    return DASHBOARD_RULES.get(selectors.role_of(user))


def may_open_dashboard(user, dashboard: Dashboard) -> bool:
    rule = dashboard_rule(user)
    return rule is not None and rule.dashboard == Dashboard(dashboard)


def may_export(user) -> bool:
    """Whether export buttons are shown and export requests accepted (the roles table's export column)."""
    return can(user, Action.EXPORT)


# --- Audit trail: who may read which security events, alerts and change history -------------
class AuditView(StrEnum):
    """How much of the audit trail a user reads."""

    NONE = "none"
    GDPR = "gdpr"  # GDPR events only (``audit.choices.GDPR_ACTIONS``)
    ALL = "all"


# Roles that read every audit event, every change-history entry and the security alerts.
AUDIT_ALL_ROLES = frozenset({Role.ADMIN})
# Duties that read the GDPR part of the audit trail.
AUDIT_GDPR_DUTIES = frozenset({Duty.DPO})


def audit_view(user) -> AuditView:
    """What part of the audit trail the user reads (Admin: all; DPO duty: GDPR events; else none)."""
    from accounts import selectors

    if user is None or not getattr(user, "is_authenticated", False) or not user.is_active:
        return AuditView.NONE
    if selectors.role_of(user) in AUDIT_ALL_ROLES:
        return AuditView.ALL
    if any(selectors.has_duty(user, duty) for duty in AUDIT_GDPR_DUTIES):
        return AuditView.GDPR
    return AuditView.NONE


def may_read_change_history(user) -> bool:
    """django-auditlog entries (every model's diffs) and security alerts: the full-trail readers."""
    return audit_view(user) == AuditView.ALL


def may_manage_alerts(user) -> bool:
    return audit_view(user) == AuditView.ALL


# --- Incident response (audit app) ------------------------------------------------------------
class IncidentRight(StrEnum):
    MANAGE = "manage"  # open incidents, move their stages, link alerts, run containment actions
    BREACH = "breach"  # the breach fields: flag, affected data and people, notification times


# Who holds each right: (roles, duties).  Either right shows the incident admin.
INCIDENT_RULES: dict[IncidentRight, tuple[frozenset[Role], frozenset[Duty]]] = {
    IncidentRight.MANAGE: (frozenset({Role.ADMIN}), frozenset()),
    IncidentRight.BREACH: (frozenset({Role.ADMIN}), frozenset({Duty.DPO})),
}


def may_incident(user, right: IncidentRight | str) -> bool:
    """Whether the user holds an incident-response right (by role or by duty)."""
    from accounts import selectors

    if user is None or not getattr(user, "is_authenticated", False) or not user.is_active:
        return False
    roles, duties = INCIDENT_RULES.get(IncidentRight(right), (frozenset(), frozenset()))
    if selectors.role_of(user) in roles:
        return True
    return any(selectors.has_duty(user, duty) for duty in duties)


def may_see_incidents(user) -> bool:
    return any(may_incident(user, right) for right in IncidentRight)


# --- Authentication, sessions, tokens, access reviews and the admin site ----------------------
# Roles and duties that must pass a second factor (TOTP) before the admin site, any write or
# any export answers them.  Reads over the API work on a password-issued token alone.
MFA_REQUIRED_ROLES = frozenset({Role.ADMIN, Role.MANAGER})
MFA_REQUIRED_DUTIES = frozenset({Duty.DPO})

# Roles that list and revoke anybody's API tokens (everyone manages their own).
TOKEN_ADMIN_ROLES = frozenset({Role.ADMIN})

# Access reviews: each quarter every active holder of a reviewer role reviews their people (the
# members of the teams they manage and of their department).  Holders of the exempt roles are
# never a manager's line item: a manager does not review an admin or a fellow manager.
ACCESS_REVIEWER_ROLES = frozenset({Role.MANAGER})
ACCESS_REVIEW_EXEMPT_ROLES = frozenset({Role.ADMIN, Role.MANAGER})
# Roles that read every review and its evidence (CSV) but decide no line: the reviewer decides.
ACCESS_REVIEW_OVERSIGHT_ROLES = frozenset({Role.ADMIN})


class AdminAction(StrEnum):
    VIEW = "view"
    ADD = "add"
    CHANGE = "change"
    DELETE = "delete"


_READ = frozenset({AdminAction.VIEW})
_READ_DELETE = frozenset({AdminAction.VIEW, AdminAction.DELETE})
_ALL_ADMIN_ACTIONS = frozenset(AdminAction)

# The admin site for models whose admin classes come from libraries (not from this project, whose
# admins ask the policy themselves).  A library model missing here is shown to nobody, and Django
# model permissions are never consulted: the role decides.
ADMIN_SITE_MODELS: dict[str, dict[Role, frozenset[AdminAction]]] = {
    "auth.group": {Role.ADMIN: _READ},  # roles are given on the user, never by editing groups
    "auditlog.logentry": {Role.ADMIN: _READ},
    "axes.accessattempt": {Role.ADMIN: _READ_DELETE},  # delete = unlock
    "axes.accesslog": {Role.ADMIN: _READ},
    "axes.accessfailurelog": {Role.ADMIN: _READ},
    "django_celery_beat.periodictask": {Role.ADMIN: _ALL_ADMIN_ACTIONS},
    "django_celery_beat.crontabschedule": {Role.ADMIN: _ALL_ADMIN_ACTIONS},
    "django_celery_beat.intervalschedule": {Role.ADMIN: _ALL_ADMIN_ACTIONS},
    "django_celery_beat.clockedschedule": {Role.ADMIN: _ALL_ADMIN_ACTIONS},
    "django_celery_beat.solarschedule": {Role.ADMIN: _ALL_ADMIN_ACTIONS},
}
# This project's account-security models in the admin (the admins ask through the functions below).
ACCOUNT_SECURITY_ADMIN: dict[str, dict[Role, frozenset[AdminAction]]] = {
    "knox.authtoken": {Role.ADMIN: _READ_DELETE},  # delete = revoke
    "otp_totp.totpdevice": {Role.ADMIN: _READ_DELETE},  # delete = reset a lost authenticator
    "otp_static.staticdevice": {Role.ADMIN: _READ_DELETE},
    "accounts.accessreview": {Role.ADMIN: _READ, Role.MANAGER: frozenset({AdminAction.VIEW, AdminAction.CHANGE})},
}


def _role_if_active(user) -> Role | None:
    from accounts import selectors

    if user is None or not getattr(user, "is_authenticated", False) or not user.is_active:
        return None
    return selectors.role_of(user)


def requires_mfa(user) -> bool:
    """Whether the user must pass TOTP before the admin site, writes and exports."""
    from accounts import selectors

    if user is None or not getattr(user, "is_authenticated", False):
        return False
    if user.is_superuser or selectors.role_of(user) in MFA_REQUIRED_ROLES:
        return True
    return any(selectors.has_duty(user, duty) for duty in MFA_REQUIRED_DUTIES)


def may_manage_any_token(user) -> bool:
    return _role_if_active(user) in TOKEN_ADMIN_ROLES


def is_access_reviewer(user) -> bool:
    return _role_if_active(user) in ACCESS_REVIEWER_ROLES


def is_access_review_subject(role: Role | None) -> bool:
    return role not in ACCESS_REVIEW_EXEMPT_ROLES


def may_oversee_access_reviews(user) -> bool:
    return _role_if_active(user) in ACCESS_REVIEW_OVERSIGHT_ROLES


def may_decide_review(user, review) -> bool:
    """Only the review's own reviewer decides its lines, and only while they hold a reviewer role."""
    return is_access_reviewer(user) and review.reviewer_id == user.pk


def admin_site_actions(user, model_label: str) -> frozenset[AdminAction]:
    """What the user may do with a model in the admin, from the two admin tables above."""
    role = _role_if_active(user)
    if role is None or not user.is_staff:
        return frozenset()
    row = ADMIN_SITE_MODELS.get(model_label) or ACCOUNT_SECURITY_ADMIN.get(model_label) or {}
    return row.get(role, frozenset())


# --- GDPR subject requests (compliance app) --------------------------------------------------
class PrivacyRight(StrEnum):
    """What a user may do with subject requests (access, erasure, ...), their data and packages."""

    INTAKE = "intake"  # file a request (API POST, admin add)
    READ = "read"  # read requests and their status (API GET, the admin queue)
    WORK = "work"  # verify, approve, reject, run, retry, extend, rectify, review, record consent
    DOWNLOAD = "download"  # download an access package through its expiring link


_ALL_PRIVACY_RIGHTS = frozenset(PrivacyRight)
PRIVACY_RIGHTS_BY_ROLE: dict[Role, frozenset[PrivacyRight]] = {
    Role.ADMIN: frozenset({PrivacyRight.INTAKE, PrivacyRight.READ}),
}
PRIVACY_RIGHTS_BY_DUTY: dict[Duty, frozenset[PrivacyRight]] = {
    Duty.DPO: _ALL_PRIVACY_RIGHTS,
    # An integration token "given the intake right" files requests and reads nothing back.
    Duty.PRIVACY_INTAKE: frozenset({PrivacyRight.INTAKE}),
}


def privacy_rights(user) -> frozenset[PrivacyRight]:
    """The union of the user's role and duty rights over subject requests (none when inactive)."""
    from accounts import selectors

    if user is None or not getattr(user, "is_authenticated", False) or not user.is_active:
        return frozenset()
    cached = user.__dict__.get("_portal_privacy_rights")
    if cached is not None:
        return cached
    rights = set(PRIVACY_RIGHTS_BY_ROLE.get(selectors.role_of(user), frozenset()))
    for duty, granted in PRIVACY_RIGHTS_BY_DUTY.items():
        if selectors.has_duty(user, duty):
            rights |= granted
    user.__dict__["_portal_privacy_rights"] = frozenset(rights)
    return user.__dict__["_portal_privacy_rights"]


def may_privacy(user, right: PrivacyRight) -> bool:
    return PrivacyRight(right) in privacy_rights(user)


# --- Compliance governance: retention, record of processing, checklist, vendors, evidence -----
class Governance(StrEnum):
    """A compliance-governance capability; ``compliance`` admin pages, views and commands ask for one."""

    VIEW = "view"  # the monthly checklist, the record of processing, retention runs and proofs, vendors
    RETENTION = "retention"  # edit retention policies, preview, enable, legal hold, run now
    ATTEST = "attest"  # attestations, vendor assessments, checklist snapshots, backup verification
    VENDORS = "vendors"  # add and edit vendor records
    EVIDENCE = "evidence"  # download the evidence pack (its audit part follows ``audit_view``)


# Who holds each capability: (roles, duties).  Absent from both: nobody (superusers included).
GOVERNANCE_RULES: dict[Governance, tuple[frozenset[Role], frozenset[Duty]]] = {
    Governance.VIEW: (frozenset({Role.ADMIN}), frozenset({Duty.DPO})),
    Governance.RETENTION: (frozenset({Role.ADMIN}), frozenset({Duty.DPO})),
    Governance.ATTEST: (frozenset({Role.ADMIN}), frozenset({Duty.DPO})),
    Governance.VENDORS: (frozenset({Role.ADMIN}), frozenset({Duty.DPO})),
    Governance.EVIDENCE: (frozenset({Role.ADMIN}), frozenset({Duty.DPO})),
}
# Archived rows (orders kept for the legal retention period) are out of day-to-day processing:
# only these roles' database roles read them (row-level security on the archive table); the
# system role archives and purges them.
ARCHIVE_READER_ROLES = frozenset({Role.ADMIN})
# The pseudonymised extract (keyed pseudonyms, buckets, no direct identifiers) over the rows of
# the caller's *view* scope; the roles table's export column is about identifiable data.
PSEUDONYMISED_EXTRACT_ROLES = frozenset({Role.ANALYST, Role.MANAGER, Role.ADMIN})


def may_govern(user, capability: Governance | str) -> bool:
    """Whether the user holds a governance capability (by role or by duty)."""
    from accounts import selectors

    if user is None or not getattr(user, "is_authenticated", False) or not user.is_active:
        return False
    roles, duties = GOVERNANCE_RULES.get(Governance(capability), (frozenset(), frozenset()))
    if selectors.role_of(user) in roles:
        return True
    return any(selectors.has_duty(user, duty) for duty in duties)


def may_extract_pseudonymised(user) -> bool:
    return _role_if_active(user) in PSEUDONYMISED_EXTRACT_ROLES


def may_read_archive(user) -> bool:
    return _role_if_active(user) in ARCHIVE_READER_ROLES
