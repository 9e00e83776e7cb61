"""Reads over datasets that are not a plain restrict() list."""

from django.db.models import Count

from accounts import policy
from datasets.models import Customer


def customer_counts_by_team(user) -> dict[int, int]:
    """Customers per team within the user's view scope (aggregated in PostgreSQL)."""
    rows = Customer.objects.restrict(user, policy.Action.VIEW).values("team_id").annotate(n=Count("id"))
    return {row["team_id"]: row["n"] for row in rows.order_by("team_id")}


def grants_visible_to(user):
    """A user's own grant requests plus those they may decide (``policy.grant_decision_scope``)."""
    from django.db.models import Q

    from datasets.models import AccessGrant

    scope = policy.grant_decision_scope(user)
    if scope == policy.Scope.ALL:
        return AccessGrant.objects.all()
    mine = Q(requester=user)
    if scope == policy.Scope.DEPARTMENT:
        department = user.department_id
        return AccessGrant.objects.filter(
            mine | Q(team__department_id=department) | Q(customer__team__department_id=department)
        )
    return AccessGrant.objects.filter(mine)


def has_unmask_grant(user, customer_id) -> bool:
    """Whether an approved, unexpired grant lets the user reveal this customer's masked fields."""
    from django.utils import timezone

    from datasets.choices import GrantKind, GrantStatus
    from datasets.models import AccessGrant

    return AccessGrant.objects.filter(
        requester=user,
        kind=GrantKind.UNMASK_CUSTOMER,
        customer_id=customer_id,
        status=GrantStatus.APPROVED,
        expires_at__gt=timezone.now(),
    ).exists()


def revealable_fields(user, customer_id) -> tuple[str, ...]:
    """Fields a "reveal" button may be offered for: masked for the user's role, and unmaskable
    through an active grant on this customer.  ``services.reveal_field`` decides again on use."""
    from datasets.services import REVEALABLE_FIELDS

    role = policy.access(user, policy.Action.VIEW).role
    masked = tuple(f for f in REVEALABLE_FIELDS if not policy.field_is_clear(role, f))
    if not masked or not has_unmask_grant(user, customer_id):
        return ()
    return masked
