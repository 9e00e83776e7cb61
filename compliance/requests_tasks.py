"""Celery tasks of subject requests: thin wrappers over ``compliance.requests`` (arguments are ids).

``run_subject_request`` acts for the DPO who pressed "run" (``acting_user_id``): the task's
transaction starts in their scope and the services enter the system scope explicitly for the
subject's rows.  It is idempotent and late-acknowledged: a worker killed mid-way rolls the
transaction back and the redelivered message does the whole request again.  Database and
file-system hiccups are retried with backoff; a final failure marks the request ``error`` with
the failing step, for the DPO to retry.
"""

from celery import shared_task
from django.db import InterfaceError, OperationalError

from compliance import requests
from compliance.models import SubjectRequest
from compliance.requests_choices import RequestStatus
from portal.tasks import ScopedTask, current_user


class SubjectRequestTask(ScopedTask):
    def on_failure(self, exc, task_id, args, kwargs, einfo):
        if args:
            requests.mark_error(args[0], step=getattr(exc, "portal_step", "start"), detail=type(exc).__name__)


@shared_task(
    base=SubjectRequestTask,
    bind=True,
    acks_late=True,
    reject_on_worker_lost=True,
    autoretry_for=(OperationalError, InterfaceError, OSError),
    retry_backoff=5,
    retry_backoff_max=300,
    retry_jitter=True,
    max_retries=4,
)
def run_subject_request(self, request_id: int) -> str:
    return requests.execute(request_id, current_user())


class SystemTask(ScopedTask):
    system = True


@shared_task(base=SystemTask, bind=True)
def check_request_deadlines(self) -> dict:
    """Beat: alerts for open requests past their deadline or due within GDPR_DUE_SOON_DAYS."""
    return requests.deadline_alerts()


@shared_task(base=SystemTask, bind=True)
def requeue_stalled_requests(self, older_than_seconds: int = 900) -> int:
    """Beat: send again requests left in progress with no task holding them (the first send was
    lost, e.g. Redis was down after the commit).  A request whose row is locked is being worked
    on; a duplicate is harmless anyway (the task is idempotent)."""
    from datetime import timedelta

    from django.utils import timezone

    cutoff = timezone.now() - timedelta(seconds=older_than_seconds)
    stalled = list(
        SubjectRequest.objects.select_for_update(skip_locked=True)
        .filter(status=RequestStatus.IN_PROGRESS, run_started_at__lt=cutoff)
        .values_list("pk", "run_by_id")
    )
    for request_id, user_id in stalled:
        if user_id is not None:
            run_subject_request.apply_async(args=[request_id], kwargs={"acting_user_id": user_id})
    return len(stalled)
