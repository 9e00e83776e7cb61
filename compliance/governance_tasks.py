"""Celery tasks of the governance half: nightly retention, the monthly checklist snapshot and the
monthly backup restoration test.  Thin wrappers over the services; arguments are ids.

Retention commits batch by batch (one short transaction each), so these tasks do not run inside
``ScopedTask``'s single task-wide transaction: every step enters the system scope itself.  They
are late-acknowledged and idempotent: a killed worker's run is resumed by the next one.
"""

from celery import Task, shared_task
from django.db import InterfaceError, OperationalError

from portal.middleware import bound_request_id

RETRY = {
    "acks_late": True,
    "reject_on_worker_lost": True,
    "autoretry_for": (OperationalError, InterfaceError),
    "retry_backoff": 10,
    "retry_backoff_max": 600,
    "retry_jitter": True,
    "max_retries": 5,
}


class MaintenanceTask(Task):
    """System maintenance in short transactions of its own; ``acting_user_id`` (optional) names who
    asked for it, re-checked against the policy when the task runs."""

    typing = False

    def __call__(self, *args, **kwargs):
        headers = getattr(self.request, "headers", None) or {}
        with bound_request_id(headers.get("portal_request_id") or ""):
            return super().__call__(*args, **kwargs)


def _actor(acting_user_id, capability):
    from accounts import policy
    from accounts.models import User

    if acting_user_id is None:
        return None
    user = User.objects.filter(pk=acting_user_id, is_active=True).first()
    if user is None or not policy.may_govern(user, capability):
        raise PermissionError("the acting user may not do this (any more)")
    return user


@shared_task(base=MaintenanceTask, bind=True, **RETRY)
def apply_retention(self, policy_id: int | None = None, acting_user_id: int | None = None) -> list[dict]:
    """Beat (nightly): every enabled policy.  Admin "run now": one policy, for the acting user."""
    from accounts.policy import Governance
    from compliance import retention
    from compliance.governance_choices import RunTrigger
    from compliance.governance_models import RetentionPolicy

    actor = _actor(acting_user_id, Governance.RETENTION)
    if policy_id is None:
        runs = retention.run_due(trigger=RunTrigger.SCHEDULE)
    else:
        policy = RetentionPolicy.objects.get(pk=policy_id)
        if not policy.enabled or policy.legal_hold:
            return []
        run = retention.run_policy(policy, trigger=RunTrigger.ADMIN if actor else RunTrigger.SCHEDULE, actor=actor)
        runs = [run] if run else []
    return [
        {"run": run.pk, "status": run.status, "deleted": run.rows_deleted, "archived": run.rows_archived}
        for run in runs
    ]


@shared_task(base=MaintenanceTask, bind=True, **RETRY)
def take_monthly_snapshot(self) -> int:
    """Beat (monthly): verify the audit chain and store this month's checklist (once)."""
    from compliance import checklist
    from compliance.governance_choices import SnapshotTrigger

    return checklist.take_snapshot(trigger=SnapshotTrigger.SCHEDULE).pk


@shared_task(base=MaintenanceTask, bind=True, acks_late=True, max_retries=0)
def verify_backup(self, acting_user_id: int | None = None) -> dict:
    """Beat (monthly) or the admin: dump, restore into a scratch database, compare, record."""
    from accounts.policy import Governance
    from compliance import backup_check

    record = backup_check.verify(actor=_actor(acting_user_id, Governance.ATTEST))
    return {"verification": record.pk, "ok": record.ok}
