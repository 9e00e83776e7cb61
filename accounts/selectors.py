"""Reads about users: their role and the teams their scopes cover."""

from django.db.models import Q

from accounts.models import Team
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
    return bool(getattr(user, "is_authenticated", False)) and user.groups.filter(name=duty.value).exists()


def team_ids_of_member(user) -> frozenset[int]:
    """Teams the user belongs to or manages."""
    ids = Team.objects.filter(Q(members=user) | Q(manager=user)).values_list("id", flat=True)
    return frozenset(ids)


def team_ids_of_department(user) -> frozenset[int]:
    """Every team of the user's department."""
    if user.department_id is None:
        return frozenset()
    return frozenset(Team.objects.filter(department_id=user.department_id).values_list("id", flat=True))


def granted_team_ids(user) -> frozenset[int]:
    """Teams reachable through approved, unexpired temporary grants (checked on every use)."""
    from django.apps import apps
    from django.utils import timezone

    AccessGrant = apps.get_model("datasets", "AccessGrant")
    rows = AccessGrant.objects.filter(
        requester=user, kind="team_access", status="approved", expires_at__gt=timezone.now()
    ).values_list("team_id", flat=True)
    return frozenset(t for t in rows if t is not None)
