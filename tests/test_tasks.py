"""Celery tasks run under the acting user's scope, on a real worker and real Redis."""

import pytest
from celery.contrib.testing.worker import start_worker

from datasets.tasks import customer_counts_by_team
from portal.celery import app
from tests.conftest import BOTH_DATABASES, Org

pytestmark = pytest.mark.django_db(transaction=True, databases=BOTH_DATABASES)


@pytest.fixture(scope="module")
def worker(django_db_blocker):
    with django_db_blocker.unblock(), start_worker(app, perform_ping_check=False, pool="solo", loglevel="WARNING"):
        yield


def test_task_sees_only_the_acting_users_scope(worker):
    org = Org(customers_per_team=2)
    as_analyst = customer_counts_by_team.delay(acting_user_id=org.analyst.pk).get(timeout=30)
    assert as_analyst == {str(org.north.pk): 2}
    as_manager = customer_counts_by_team.delay(acting_user_id=org.manager.pk).get(timeout=30)
    assert as_manager == {str(org.north.pk): 2, str(org.south.pk): 2}
    as_admin = customer_counts_by_team.delay(acting_user_id=org.admin.pk).get(timeout=30)
    assert sum(as_admin.values()) == 8


def test_task_for_a_disabled_user_is_refused(worker):
    org = Org(customers_per_team=1)
    org.analyst.is_active = False
    org.analyst.save()
    result = customer_counts_by_team.delay(acting_user_id=org.analyst.pk)
    with pytest.raises(PermissionError):
        result.get(timeout=30)
