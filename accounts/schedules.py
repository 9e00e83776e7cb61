"""The account-security jobs in django-celery-beat's schedule (``CELERY_BEAT_SCHEDULER`` is the
database scheduler, so admins see and edit them)."""

import json

# name -> (task, crontab fields, description)
PERIODIC_TASKS = {
    "accounts: disable inactive accounts": (
        "accounts.tasks.disable_inactive_accounts",
        {"minute": "15", "hour": "2", "day_of_week": "*", "day_of_month": "*", "month_of_year": "*"},
        "Disable accounts with no login for INACTIVE_ACCOUNT_DAYS days.",
    ),
    "accounts: create quarterly access reviews": (
        "accounts.tasks.create_access_reviews",
        # Daily and idempotent: a quarter's reviews appear on its first day, and a manager
        # appointed mid-quarter gets one the next morning.
        {"minute": "0", "hour": "3", "day_of_week": "*", "day_of_month": "*", "month_of_year": "*"},
        "Create this quarter's access review for every manager who has none.",
    ),
    "accounts: purge expired API tokens": (
        "accounts.tasks.purge_expired_tokens",
        {"minute": "30", "hour": "*/6", "day_of_week": "*", "day_of_month": "*", "month_of_year": "*"},
        "Delete expired API tokens.",
    ),
}


def ensure_periodic_tasks(using: str = "default") -> None:
    from django.utils import timezone
    from django_celery_beat.models import CrontabSchedule, PeriodicTask, PeriodicTasks

    missing = []
    for name, (task, cron, description) in PERIODIC_TASKS.items():
        if PeriodicTask.objects.using(using).filter(name=name).exists():
            continue
        schedules = CrontabSchedule.objects.using(using)
        schedule = schedules.filter(**cron, timezone="UTC").first()
        if schedule is None:
            (schedule,) = schedules.bulk_create([CrontabSchedule(**cron, timezone="UTC")])
        missing.append(
            PeriodicTask(name=name, task=task, crontab=schedule, kwargs=json.dumps({}), description=description)
        )
    if missing:
        # bulk_create skips django-celery-beat's save signals, which would write through the
        # default connection (not the owner's); a running beat learns of the change from this stamp.
        PeriodicTask.objects.using(using).bulk_create(missing)
        PeriodicTasks.objects.using(using).update_or_create(ident=1, defaults={"last_update": timezone.now()})
