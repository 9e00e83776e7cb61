"""Celery tasks over datasets: thin wrappers over selectors/services, run under ScopedTask."""

from celery import shared_task

from datasets import selectors
from portal.tasks import ScopedTask, current_user


@shared_task(base=ScopedTask, bind=True)
def customer_counts_by_team(self) -> dict[str, int]:
    """Customers per team as the acting user sees them (JSON keys are strings)."""
    counts = selectors.customer_counts_by_team(current_user())
    return {str(team): n for team, n in counts.items()}
