"""Test fixtures.  The suite runs on real PostgreSQL (row-level security included) and real Redis.

The schema owner (alias ``owner``) creates and migrates the test database; the app code uses
``default``, which connects as the non-owner portal role exactly as in production.
"""

import pytest
from django.db import connections
from rest_framework.test import APIClient

from accounts.policy import Role
from tests.factories import CustomerFactory, DepartmentFactory, TeamFactory, make_user

BOTH_DATABASES = ["default", "owner"]


@pytest.fixture(scope="session")
def django_db_setup(django_test_environment, django_db_blocker):
    """Always create the owner's test database (the app role's connection mirrors it)."""
    from django.test.utils import setup_databases, teardown_databases

    with django_db_blocker.unblock():
        config = setup_databases(verbosity=0, interactive=False, aliases=set(BOTH_DATABASES))
    _forget_alert_trackers()
    yield
    with django_db_blocker.unblock():
        connections.close_all()
        teardown_databases(config, verbosity=0)


def _forget_alert_trackers():
    """Redis outlives test databases: drop an earlier run's distinct-customer trackers (ids repeat)."""
    from django.conf import settings

    from audit import alerts

    client = alerts._redis(settings.REDIS_URL)
    for key in client.scan_iter(alerts.tracker_key("*")):
        client.delete(key)


class Org:
    """Two departments with two teams each, one user per role, customers in every team."""

    def __init__(self, customers_per_team: int = 3):
        self.sales = DepartmentFactory(name="Sales")
        self.ops = DepartmentFactory(name="Ops")
        self.north = TeamFactory(name="North", department=self.sales)
        self.south = TeamFactory(name="South", department=self.sales)
        self.east = TeamFactory(name="East", department=self.ops)
        self.west = TeamFactory(name="West", department=self.ops)
        self.teams = [self.north, self.south, self.east, self.west]
        self.analyst = make_user(Role.ANALYST, team=self.north)
        self.other_analyst = make_user(Role.ANALYST, team=self.east)
        self.manager = make_user(Role.MANAGER, department=self.sales)
        self.admin = make_user(Role.ADMIN)
        self.executive = make_user(Role.EXECUTIVE)
        self.dpo = make_user("DPO")
        self.customers = {team.name: CustomerFactory.create_batch(customers_per_team, team=team) for team in self.teams}

    def ids(self, *teams) -> set[int]:
        return {c.pk for team in teams for c in self.customers[team.name]}

    def all_ids(self) -> set[int]:
        return self.ids(*self.teams)


@pytest.fixture
def org(db):
    return Org()


def token_client(user, *, mfa: bool = True) -> APIClient:
    """An API client authenticated with a real knox token for ``user``.

    By default the token is one issued after a verified one-time code (what ``POST
    /api/v1/auth/token/`` with ``otp`` gives a user whose role needs MFA); ``mfa=False`` gives a
    password-only token, which reads but neither writes nor exports for such users."""
    from accounts import services

    _, token = services.issue_token(user, mfa_verified=mfa)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    return client


@pytest.fixture
def api_as():
    return token_client


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    """Keep each phase's report on the test item, so that fixtures (the browser's) can tell at
    teardown whether the test failed, e.g. to save a screenshot to test-artifacts/."""
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)
