"""Row-level security is the backstop: the portal's own database role sees nothing out of scope,
even when application code forgets restrict()."""

import psycopg
import pytest
from django.conf import settings
from django.db import connection, connections, transaction
from django.test import RequestFactory
from psycopg import sql

from datasets.models import Customer
from portal.middleware import SecurityContextMiddleware
from portal.security_context import apply_user_scope, scoped
from tests.conftest import BOTH_DATABASES, Org

pytestmark = pytest.mark.django_db(transaction=True, databases=BOTH_DATABASES)


def raw_count(cursor) -> int:
    cursor.execute("SELECT count(*) FROM datasets_customer")
    return cursor.fetchone()[0]


@pytest.fixture
def committed_org():
    return Org(customers_per_team=4)


def test_portal_role_is_not_privileged():
    with connections["owner"].cursor() as cursor:
        cursor.execute(
            "SELECT rolsuper, rolbypassrls, rolinherit FROM pg_roles WHERE rolname = %s", [settings.DATABASE_APP_USER]
        )
        assert cursor.fetchone() == (False, False, False)
        cursor.execute(
            "SELECT relrowsecurity, relforcerowsecurity, pg_get_userbyid(relowner) FROM pg_class"
            " WHERE relname = 'datasets_customer'"
        )
        enabled, forced, owner = cursor.fetchone()
    assert enabled and forced
    assert owner != settings.DATABASE_APP_USER
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_user, session_user")
        assert cursor.fetchone() == (settings.DATABASE_APP_USER, settings.DATABASE_APP_USER)


def test_raw_sql_under_analyst_scope_counts_team_only(committed_org):
    with scoped(committed_org.analyst), connection.cursor() as cursor:
        assert raw_count(cursor) == 4
        cursor.execute("SELECT DISTINCT team_id FROM datasets_customer")
        assert [row[0] for row in cursor.fetchall()] == [committed_org.north.pk]
    with scoped(committed_org.manager), connection.cursor() as cursor:
        assert raw_count(cursor) == 8
    with scoped(committed_org.admin), connection.cursor() as cursor:
        assert raw_count(cursor) == 16


@pytest.mark.parametrize("who", ["executive", "dpo"])
def test_roles_without_rows_see_zero_even_unrestricted(committed_org, who):
    with scoped(getattr(committed_org, who)):
        assert Customer.objects.count() == 0


def test_no_scope_sees_nothing(committed_org):
    with transaction.atomic(), connection.cursor() as cursor:
        assert raw_count(cursor) == 0
    assert Customer.objects.count() == 0


def test_forgotten_restrict_in_a_request_still_sees_only_the_team(committed_org):
    """An unscoped Customer.objects.all() inside an analyst's request returns only the team."""
    seen = {}

    def view(request):
        seen["ids"] = set(Customer.objects.all().values_list("id", flat=True))
        return None

    request = RequestFactory().get("/")
    request.user = committed_org.analyst
    SecurityContextMiddleware(view)(request)
    assert seen["ids"] == committed_org.ids(committed_org.north)


def test_scope_does_not_survive_the_transaction(committed_org):
    with transaction.atomic():
        apply_user_scope(committed_org.admin)
        assert Customer.objects.count() == 16
    # Same connection, next transaction: SET LOCAL is gone.
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_user, coalesce(current_setting('portal.team_ids', true), '')")
        assert cursor.fetchone() == (settings.DATABASE_APP_USER, "")
        assert raw_count(cursor) == 0


def test_scope_needs_a_transaction(committed_org):
    with pytest.raises(RuntimeError):
        apply_user_scope(committed_org.admin)


def test_nested_scope_restores_the_outer_one(committed_org):
    with scoped(committed_org.analyst):
        with scoped(system=True):
            assert Customer.objects.count() == 16
        assert Customer.objects.count() == 4


def test_login_role_cannot_set_arbitrary_scope_roles():
    """The app role may only switch to the portal's scoped roles, never to the owner."""
    params = connections["default"].get_connection_params()
    with psycopg.connect(**{k: v for k, v in params.items() if k != "cursor_factory"}) as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("SELECT set_config('role', %s, true)", [connections["owner"].settings_dict["USER"]])


def test_analyst_cannot_write_customers(committed_org):
    target = committed_org.customers["North"][0]
    with scoped(committed_org.analyst):
        assert Customer.objects.filter(pk=target.pk).update(card_last4="0000") == 0
        assert Customer.objects.filter(pk=target.pk).delete()[0] == 0
    with scoped(system=True):
        assert Customer.objects.get(pk=target.pk).card_last4 == target.card_last4


def test_orders_pageviews_and_reports_are_rls_protected(committed_org):
    from tests.factories import OrderFactory, PageViewFactory, ReportFactory

    org = committed_org
    for team in org.teams:
        OrderFactory(customer=org.customers[team.name][0])
        PageViewFactory(customer=org.customers[team.name][0])
        ReportFactory(owner=org.admin, team=team)
    with connections["owner"].cursor() as cursor:
        cursor.execute(
            "SELECT relname FROM pg_class WHERE relname = ANY(%s) AND relrowsecurity AND relforcerowsecurity",
            [["datasets_order", "datasets_pageview", "datasets_report"]],
        )
        assert len(cursor.fetchall()) == 3
    for table in ("datasets_order", "datasets_pageview", "datasets_report"):
        with scoped(org.analyst), connection.cursor() as cursor:
            cursor.execute(sql.SQL("SELECT DISTINCT team_id FROM {}").format(sql.Identifier(table)))
            assert [row[0] for row in cursor.fetchall()] == [org.north.pk]
        with scoped(org.executive), connection.cursor() as cursor:
            cursor.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table)))
            assert cursor.fetchone()[0] == 0
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table)))
            assert cursor.fetchone()[0] == 0


def test_report_rls_enforces_owner_rules_on_writes(committed_org):
    from datasets.models import Report
    from tests.factories import ReportFactory

    org = committed_org
    teammate_report = ReportFactory(owner=org.manager, team=org.north)
    with scoped(org.analyst):
        # The row is visible to the analyst (same team) but not theirs: RLS refuses the write.
        assert Report.objects.filter(pk=teammate_report.pk).update(title="hijacked") == 0
        assert Report.objects.filter(pk=teammate_report.pk).delete()[0] == 0
    with scoped(system=True):
        assert Report.objects.get(pk=teammate_report.pk).title == teammate_report.title
