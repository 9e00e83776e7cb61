"""Celery tasks over accounts: thin wrappers over services, run as the system (``ScopedTask``)."""

from celery import shared_task

from accounts import services
from portal.tasks import ScopedTask


class AccountsSystemTask(ScopedTask):
    system = True


@shared_task(base=AccountsSystemTask, bind=True)
def disable_inactive_accounts(self) -> int:
    """Beat: disable accounts with no login for INACTIVE_ACCOUNT_DAYS (each one audited)."""
    return len(services.disable_inactive_accounts())


@shared_task(base=AccountsSystemTask, bind=True)
def create_access_reviews(self) -> int:
    """Beat: this quarter's access review for every manager who has none yet."""
    return len(services.create_access_reviews())


@shared_task(base=AccountsSystemTask, bind=True)
def purge_expired_tokens(self) -> int:
    """Beat: delete expired API tokens."""
    return services.purge_expired_tokens()
