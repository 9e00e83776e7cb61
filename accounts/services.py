"""Writes about users: create, assign a role, disable."""

import secrets

from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import transaction

from accounts import policy
from accounts.models import Department, Team, User
from accounts.policy import Duty, Role

ROLE_CHOICES = [r.value for r in Role] + [d.value for d in Duty]


class AccountError(ValueError):
    """A request about an account that cannot be carried out; the message says why."""


def parse_role(name: str) -> Role | Duty:
    for kind in (Role, Duty):
        for member in kind:
            if member.value.lower() == (name or "").lower():
                return member
    raise AccountError(f"unknown role {name!r}: choose one of {', '.join(ROLE_CHOICES)}")


def generate_password() -> str:
    return secrets.token_urlsafe(18)


@transaction.atomic
def create_user(
    email: str,
    role: str,
    *,
    password: str | None = None,
    team: str | None = None,
    department: str | None = None,
    full_name: str = "",
) -> User:
    """Create an active user with one role (or the DPO duty alone), team and department."""
    try:
        validate_email(email or "")
    except ValidationError:
        raise AccountError(f"invalid email address {email!r}") from None
    email = email.strip().lower()
    grant = parse_role(role)
    if User.objects.filter(email=email).exists():
        raise AccountError(f"a user with email {email} already exists")
    team_obj = None
    if team:
        team_obj = Team.objects.filter(name=team).first()
        if team_obj is None:
            raise AccountError(f"unknown team {team!r}")
    dept_obj = None
    if department:
        dept_obj = Department.objects.filter(name=department).first()
        if dept_obj is None:
            raise AccountError(f"unknown department {department!r}")
    if dept_obj is None and team_obj is not None:
        dept_obj = team_obj.department
    user = User.objects.create_user(email, password or None, full_name=full_name, department=dept_obj)
    if team_obj is not None:
        team_obj.members.add(user)
    set_role(user, grant)
    return user


def set_role(user: User, grant: Role | Duty) -> None:
    """Put the user in exactly one role group (a duty is added beside it); staff follows the policy."""
    group, _ = Group.objects.get_or_create(name=grant.value)
    if isinstance(grant, Role):
        user.groups.remove(*Group.objects.filter(name__in=[r.value for r in Role]))
        user.is_staff = policy.is_staff_role(grant)
    user.groups.add(group)
    user._portal_role = False  # drop the cached role and scopes
    user.__dict__.pop("_portal_access", None)
    user.save(update_fields=["is_staff"])


@transaction.atomic
def disable_user(email: str) -> User:
    """Deactivate a user and end their API tokens at once."""
    user = User.objects.filter(email=(email or "").strip().lower()).first()
    if user is None:
        raise AccountError(f"no user with email {email!r}")
    user.is_active = False
    user.save(update_fields=["is_active"])
    user.auth_token_set.all().delete()
    return user
