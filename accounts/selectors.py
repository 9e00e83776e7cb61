"""Reads about users: their role and the teams their scopes cover."""

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from django.apps import apps
from django.core.exceptions import ObjectDoesNotExist
from django.db.models import Q
from django.utils import timezone

from accounts.choices import ReviewLineKind
from accounts.models import Team, User
from accounts.policy import Duty, Role

_ROLE_NAMES = [r.value for r in Role]


def role_of(user) -> Role | None:
    """The user's portal role (one role group), cached on the user object for the request."""
    if not getattr(user, "is_authenticated", False):
        return None
    cached = getattr(user, "_portal_role", False)
    if cached is not False:
        return cached
    names = list(user.groups.filter(name__in=_ROLE_NAMES).values_list("name", flat=True)[:2])
    # More than one role group is a misconfiguration: grant nothing rather than guess.
    role = Role(names[0]) if len(names) == 1 else None
    user._portal_role = role
    return role


def has_duty(user, duty: Duty) -> bool:
    """Whether the user holds the duty; the user's group names are read once per user object (a
    DPO's admin page asks dozens of times), and dropped with the cached role when groups change."""
    if not getattr(user, "is_authenticated", False):
        return False
    groups = user.__dict__.get("_portal_groups")
    if groups is None:
        groups = user.__dict__["_portal_groups"] = frozenset(user.groups.values_list("name", flat=True))
    return duty.value in groups


def _member_teams(user):
    return Team.objects.filter(Q(members=user) | Q(manager=user)).values_list("id", flat=True)


def _department_teams(user):
    return Team.objects.filter(department_id=user.department_id).values_list("id", flat=True)


def _granted_teams(user):
    from django.apps import apps
    from django.utils import timezone

    AccessGrant = apps.get_model("datasets", "AccessGrant")
    return AccessGrant.objects.filter(
        requester=user, kind="team_access", status="approved", expires_at__gt=timezone.now(), team__isnull=False
    ).values_list("team_id", flat=True)


def team_ids_of_member(user, *, with_grants: bool = False) -> frozenset[int]:
    """Teams the user belongs to or manages (plus temporary grants: one query either way)."""
    query = _member_teams(user)
    return frozenset(query.union(_granted_teams(user)) if with_grants else query)


def team_ids_of_department(user, *, with_grants: bool = False) -> frozenset[int]:
    """Every team of the user's department (plus temporary grants: one query either way)."""
    query = _department_teams(user) if user.department_id is not None else Team.objects.none().values_list("id")
    return frozenset(query.union(_granted_teams(user)) if with_grants else query)


def granted_team_ids(user) -> frozenset[int]:
    """Teams reachable through approved, unexpired temporary grants (checked on every use)."""
    return frozenset(_granted_teams(user))


# --- MFA ------------------------------------------------------------------------------------


def confirmed_devices(user) -> list:
    """The user's confirmed second-factor devices (TOTP authenticators and backup-code sets)."""
    from django_otp import devices_for_user

    return list(devices_for_user(user, confirmed=True))


def has_authenticator(user) -> bool:
    """Whether the user has finished TOTP enrolment (backup codes alone do not count)."""
    from django_otp.plugins.otp_totp.models import TOTPDevice

    return TOTPDevice.objects.devices_for_user(user, confirmed=True).exists()


def session_is_verified(user) -> bool:
    """Whether this request's session passed a second factor (django-otp's middleware decides)."""
    is_verified = getattr(user, "is_verified", None)
    return bool(is_verified and is_verified())


def mfa_satisfied(user, auth=None) -> bool:
    """Whether the request may do what needs MFA: no MFA needed, or an API token issued after a
    verified code, or a browser session verified with one.  ``auth`` is DRF's ``request.auth``."""
    from knox.models import AuthToken

    from accounts import policy

    if not policy.requires_mfa(user):
        return True
    if isinstance(auth, AuthToken):
        try:
            return auth.portal_info.mfa_verified  # loaded with the token by the authentication
        except ObjectDoesNotExist:
            return False
    return session_is_verified(user)


# --- API tokens -----------------------------------------------------------------------------
# A token is named by the first 16 hex digits of its SHA-512 digest: that identifies it among a
# user's tokens and reveals nothing of the token itself.
TOKEN_ID_LENGTH = 16


def token_public_id(token) -> str:
    return token.digest[:TOKEN_ID_LENGTH]


def live_tokens(user=None):
    """Unexpired tokens (of one user, or everyone's), with their portal info and user."""
    from knox.models import AuthToken

    tokens = AuthToken.objects.filter(Q(expiry__isnull=True) | Q(expiry__gt=timezone.now()))
    if user is not None:
        tokens = tokens.filter(user=user)
    return tokens.select_related("portal_info", "user").order_by("-created")


def token_by_public_id(public_id: str, user=None):
    """One live token by its public id (of ``user`` only, when given), or None."""
    if len(public_id) != TOKEN_ID_LENGTH or any(c not in "0123456789abcdef" for c in public_id):
        return None
    return live_tokens(user).filter(digest__startswith=public_id).first()


# --- Access reviews -------------------------------------------------------------------------


@dataclass(frozen=True)
class ReviewItem:
    """One grant of one person, as a manager's access review lists it."""

    subject: User
    kind: str
    grant_ref: str
    description: str


# Extra sources of review lines, e.g. grants kept by another app: each is called with the list
# of people under review and yields ReviewItems.  Register with ``register_review_source``.
_REVIEW_SOURCES: list[Callable[[list[User]], Iterable[ReviewItem]]] = []


def register_review_source(source: Callable[[list[User]], Iterable[ReviewItem]]) -> None:
    if source not in _REVIEW_SOURCES:
        _REVIEW_SOURCES.append(source)


def people_of(manager) -> list[User]:
    """A manager's people: active members of the teams they manage and of their department,
    not themselves and not holders of roles exempt from a manager's review (see the policy)."""
    from accounts import policy

    teams = Q(teams__manager=manager)
    if manager.department_id is not None:
        teams |= Q(department_id=manager.department_id) | Q(teams__department_id=manager.department_id)
    candidates = User.objects.filter(teams, is_active=True).exclude(pk=manager.pk).distinct().prefetch_related("groups")
    people = []
    for person in candidates.order_by("email"):
        names = {g.name for g in person.groups.all()}
        roles = [r for r in Role if r.value in names]
        person._portal_role = roles[0] if len(roles) == 1 else None
        if policy.is_access_review_subject(person._portal_role):
            people.append(person)
    return people


def _role_and_duty_items(people: list[User]) -> Iterable[ReviewItem]:
    for person in people:
        names = {g.name for g in person.groups.all()}
        for role in Role:
            if role.value in names:
                yield ReviewItem(person, ReviewLineKind.ROLE, role.value, f"Role: {role.value}")
        for duty in Duty:
            if duty.value in names:
                yield ReviewItem(person, ReviewLineKind.DUTY, duty.value, f"Duty: {duty.value}")


def _object_permission_items(people: list[User]) -> Iterable[ReviewItem]:
    from guardian.models import UserObjectPermission

    rows = (
        UserObjectPermission.objects.filter(user__in=people)
        .select_related("permission", "content_type")
        .order_by("user_id", "id")
    )
    by_id = {p.pk: p for p in people}
    for row in rows:
        yield ReviewItem(
            by_id[row.user_id],
            ReviewLineKind.OBJECT_PERMISSION,
            f"uop:{row.pk}",
            f"{row.permission.codename} on {row.content_type.app_label}.{row.content_type.model} #{row.object_pk}",
        )


def _temporary_grant_items(people: list[User]) -> Iterable[ReviewItem]:
    """Approved, unexpired temporary grants (``datasets.AccessGrant``) when that app has them."""
    try:
        AccessGrant = apps.get_model("datasets", "AccessGrant")
    except LookupError:
        return
    by_id = {p.pk: p for p in people}
    grants = AccessGrant.objects.filter(
        requester__in=people, status="approved", expires_at__gt=timezone.now()
    ).order_by("requester_id", "id")
    for grant in grants:
        target = f"team {grant.team_id}" if grant.team_id else f"customer #{grant.customer_id}"
        yield ReviewItem(
            by_id[grant.requester_id],
            ReviewLineKind.TEMPORARY_GRANT,
            f"{AccessGrant._meta.label_lower}:{grant.pk}",
            f"{grant.get_kind_display()} ({target}) until {grant.expires_at:%Y-%m-%d %H:%M} UTC",
        )


def access_review_lines(manager) -> list[ReviewItem]:
    """Everything a manager reviews this quarter: each person's role and duties, object grants
    (django-guardian) and temporary grants, plus whatever registered sources add."""
    people = people_of(manager)
    if not people:
        return []
    items: list[ReviewItem] = []
    for source in [_role_and_duty_items, _object_permission_items, _temporary_grant_items, *_REVIEW_SOURCES]:
        items.extend(source(people))
    return items


def reviews_visible_to(user):
    """Access reviews a user may open: their own as reviewer; every review for the oversight roles."""
    from accounts import policy
    from accounts.models import AccessReview

    reviews = AccessReview.objects.select_related("reviewer")
    if policy.may_oversee_access_reviews(user):
        return reviews
    if policy.is_access_reviewer(user):
        return reviews.filter(reviewer=user)
    return reviews.none()
