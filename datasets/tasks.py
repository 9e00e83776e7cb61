"""Celery tasks over datasets: thin wrappers over services, run under ScopedTask."""

from datetime import timedelta

from celery import shared_task
from django.utils import timezone

from datasets import exports, selectors, services
from datasets.choices import ExportStatus
from datasets.models import Export
from portal.tasks import ScopedTask, current_user


@shared_task(base=ScopedTask, bind=True)
def customer_counts_by_team(self) -> dict[str, int]:
    """Customers per team as the acting user sees them (JSON keys are strings)."""
    counts = selectors.customer_counts_by_team(current_user())
    return {str(team): n for team, n in counts.items()}


class ExportTask(ScopedTask):
    """An export that fails for good is marked failed (after its transaction rolled back)."""

    def on_failure(self, exc, task_id, args, kwargs, einfo):
        if args:
            exports.mark_failed(args[0], type(exc).__name__)


@shared_task(base=ExportTask, bind=True, max_retries=2, acks_late=True)
def run_export(self, export_id: str) -> int:
    return exports.run(current_user(), export_id).row_count


class SystemTask(ScopedTask):
    system = True


@shared_task(base=SystemTask, bind=True)
def expire_grants(self) -> int:
    """Beat: close approved grants whose time is up (use is checked against expiry regardless)."""
    return services.expire_grants()


@shared_task(base=SystemTask, bind=True)
def requeue_stale_exports(self, older_than_seconds: int = 120) -> int:
    """Beat: send again exports still queued (their first send failed, e.g. Redis was down)."""
    cutoff = timezone.now() - timedelta(seconds=older_than_seconds)
    stale = list(
        Export.objects.filter(status=ExportStatus.QUEUED, created_at__lt=cutoff).values_list("pk", "requested_by_id")
    )
    for export_id, user_id in stale:
        run_export.apply_async(args=[str(export_id)], kwargs={"acting_user_id": user_id})
    return len(stale)
