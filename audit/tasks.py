"""Celery tasks of the audit app: thin wrappers over the services (arguments are ids)."""

from celery import shared_task

from audit import alerts, incidents, review
from audit.models import SecurityAlert
from portal.tasks import ScopedTask


@shared_task(base=ScopedTask, bind=True, system=True, autoretry_for=(OSError,), retry_backoff=30, max_retries=5)
def notify_alert(self, alert_id: int) -> dict:
    """Email and webhook for one new alert."""
    alert = SecurityAlert.objects.filter(pk=alert_id).first()
    if alert is None:
        return {"email": False, "webhook": False}
    return alerts.notify(alert)


@shared_task(base=ScopedTask, bind=True, system=True)
def daily_review(self) -> dict:
    """Verify the chain, summarise the day's alerts, record the result for the checklist."""
    check = review.verify_and_record()
    return {"ok": check.ok, "events": check.events, "first_bad_id": check.first_bad_id}


@shared_task(base=ScopedTask, bind=True, system=True)
def check_breach_deadlines(self) -> dict:
    """The GDPR 72-hour clock: alert at 48 and 72 hours without authority notification."""
    raised = incidents.check_breach_deadlines()
    return {"raised": [alert.pk for alert in raised]}
