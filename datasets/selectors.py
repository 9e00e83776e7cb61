"""Reads over datasets that are not a plain restrict() list."""

from django.db.models import Count

from accounts import policy
from datasets.models import Customer


def customer_counts_by_team(user) -> dict[int, int]:
    """Customers per team within the user's view scope (aggregated in PostgreSQL)."""
    rows = Customer.objects.restrict(user, policy.Action.VIEW).values("team_id").annotate(n=Count("id"))
    return {row["team_id"]: row["n"] for row in rows.order_by("team_id")}
