"""Dashboards, customer and report pages, exports from the pages (Django test client; the real
browser runs in ``test_dashboards_browser.py``).  Real PostgreSQL with row-level security."""

import hashlib
import json
import re
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from django.db import DatabaseError, connection, transaction
from django.test import Client
from django.utils import timezone

from accounts import policy
from accounts.models import Team
from audit.models import AuditEvent, SecurityAlert
from dashboards import selectors
from dashboards.selectors import Period
from datasets.models import AccessGrant, Export
from portal.security_context import scoped
from tests.factories import CustomerFactory, DepartmentFactory, OrderFactory, PageViewFactory, browser_login

pytestmark = pytest.mark.django_db(databases=["default", "owner"])
PURPOSE = "Quarterly churn review for the Sales board"
# pragma: allowlist nextline secret
VENDORED_CHART_JS_SHA256 = "87364cc2b2a76a6684929e7d6b80b18a897794db38400caff1fcf1791c6925d2"


def signed_in(user) -> Client:
    return browser_login(user)


def activity(customers, *, when=None, paid=True, views=1):
    """One order and ``views`` page views per customer (created under the system scope)."""
    when = when or timezone.now()
    for customer in customers:
        OrderFactory(customer=customer, amount=Decimal("10.00"), status="paid" if paid else "pending", created_at=when)
        for _ in range(views):
            PageViewFactory(customer=customer, timestamp=when, page="/pricing")


def chart_payloads(html: str) -> list:
    """Every json_script payload on a page."""
    blocks = re.findall(r'<script id="[^"]+" type="application/json">(.*?)</script>', html, re.S)
    return [json.loads(block) for block in blocks]


# --- Policy as data -------------------------------------------------------------------------


def test_every_role_gets_exactly_its_dashboard(org):
    expected = {
        org.analyst: "analyst",
        org.manager: "manager",
        org.executive: "executive",
        org.admin: "admin",
    }
    for user, name in expected.items():
        client = signed_in(user)
        response = client.get("/")
        assert response.status_code == 302 and response["Location"] == f"/dashboards/{name}/"
        assert client.get(f"/dashboards/{name}/").status_code == 200
        for other in {"analyst", "manager", "executive", "admin"} - {name}:
            assert client.get(f"/dashboards/{other}/").status_code == 403
    # The DPO duty alone has no dashboard: a landing page with links.
    response = signed_in(org.dpo).get("/")
    assert response.status_code == 200 and b"no dashboard" in response.content


def test_anonymous_is_sent_to_the_login_with_the_mfa_step(org):
    response = Client().get("/dashboards/analyst/")
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/?next=")
    # A manager who signed in with a password only is sent to the second factor first.
    client = browser_login(org.manager, verify=False)
    response = client.get("/dashboards/manager/")
    assert response.status_code == 302 and "/accounts/mfa/" in response["Location"]


def test_threshold_in_sql_is_the_policy_threshold(org):
    with scoped(org.executive):
        assert selectors.database_small_group_threshold() == policy.SMALL_GROUP_THRESHOLD


# --- The executive's sanctioned aggregates -------------------------------------------------


def test_sanctioned_functions_are_locked_down(org):
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT p.proname, p.prosecdef, pg_get_userbyid(p.proowner),"
            " has_function_privilege('public', p.oid, 'EXECUTE')"
            " FROM pg_proc p WHERE p.proname LIKE 'portal_dash_%%' AND p.proname <> 'portal_dash_hidden'"
        )
        rows = cursor.fetchall()
        assert len(rows) == 5
        for _name, definer, owner, public in rows:
            assert definer and owner == policy.AGGREGATE_DEFINER_DB_ROLE and not public
        # The definer reads no personal column, and no portal role can become it.
        for column in ("name", "email", "phone", "email_index", "card_last4"):
            cursor.execute(
                "SELECT has_column_privilege(%s, 'datasets_customer', %s, 'SELECT')",
                [policy.AGGREGATE_DEFINER_DB_ROLE, column],
            )
            assert cursor.fetchone()[0] is False
        for role in [*policy.DB_ROLES.values(), "portal_app"]:
            cursor.execute("SELECT pg_has_role(%s, %s, 'MEMBER')", [role, policy.AGGREGATE_DEFINER_DB_ROLE])
            assert cursor.fetchone()[0] is False
    # Only the executive's role may call them.
    period = Period(date.today().replace(day=1), date.today())
    for user in (org.analyst, org.manager, org.admin):
        with pytest.raises(DatabaseError), transaction.atomic(), scoped(user):
            selectors.sanctioned_figures(period)


def test_executive_small_groups_are_suppressed_in_sql(org):
    # Sales: 2 buyers among 3 visitors; Ops: 6 and 6; a third department, Growth: 7 and 7.
    growth = Team.objects.create(name="Alpha", department=DepartmentFactory(name="Growth"))
    alpha = CustomerFactory.create_batch(7, team=growth)
    sales = org.customers["North"]
    activity(sales[:2])
    PageViewFactory(customer=sales[2])
    activity(org.customers["East"] + org.customers["West"])
    activity(alpha)
    today = date.today()
    with scoped(org.executive):
        figures = selectors.sanctioned_figures(Period(today.replace(day=1), today))
    by_department = {row["name"]: row for row in figures.breakdowns["department"]}
    assert by_department["Sales"]["buyers"] is None and by_department["Sales"]["visitors"] is None
    # Ops (6) would give Sales away as total minus the rest: withheld too (complementary).
    assert by_department["Ops"]["buyers"] is None
    assert by_department["Growth"]["buyers"] == 7 and by_department["Growth"]["visitors"] == 7
    assert by_department["Growth"]["conversion"] == 1.0
    assert figures.totals["buyers"] == 2 + 6 + 7 and figures.totals["visitors"] == 3 + 6 + 7
    # Sales' new customers: 6 (shown), Ops 6, Growth 7.
    assert by_department["Sales"]["new_customers"] == 6


def test_executive_threshold_boundary(org):
    month = date(2024, 3, 1)
    when = datetime(2024, 3, 10, 12, tzinfo=UTC)
    customers = CustomerFactory.create_batch(5, team=org.north)
    activity(customers[:4], when=when)
    period = Period(month, date(2024, 3, 31))
    with scoped(org.executive):
        four = selectors.sanctioned_figures(period)
    assert four.totals["buyers"] is None and four.totals["orders"] is None
    assert four.revenue_by_month["EUR"][month] is None and four.revenue_totals["EUR"] is None
    activity(customers[4:], when=when)
    with scoped(org.executive):
        five = selectors.sanctioned_figures(period)
    assert five.totals["buyers"] == 5 and five.totals["orders"] == 5
    assert five.revenue_by_month["EUR"][month] == Decimal("50.00")


def test_executive_pages_hold_no_row_level_value(org):
    activity(org.customers["North"] + org.customers["East"])
    client = signed_in(org.executive)
    response = client.get("/dashboards/executive/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "&lt;5" in html  # the small groups are shown as "<5"
    for team_customers in org.customers.values():
        for customer in team_customers:
            for value in (customer.name, customer.email, customer.phone, customer.card_last4):
                assert value not in html
            assert f"/customers/{customer.pk}/" not in html and f"#{customer.pk}" not in html
    for payload in chart_payloads(html):
        assert set(payload) <= {"type", "labels", "datasets", "percent", "horizontal"}
        for dataset in payload["datasets"]:
            assert set(dataset) == {"label", "data"}
    # Not a single row page, export or other dashboard.
    some = org.customers["North"][0]
    for path in ("/customers/", f"/customers/{some.pk}/", "/reports/", "/exports/", "/dashboards/analyst/"):
        assert client.get(path).status_code == 403, path
    assert client.post("/customers/", {"email": some.email}).status_code == 403
    assert (
        client.post("/exports/start/", {"dataset": "customers", "format": "csv", "purpose": PURPOSE}).status_code == 403
    )
    assert Export.objects.count() == 0
    assert b"Customers" not in client.get("/dashboards/executive/").content.split(b"<main")[0]


def test_executive_range_covers_whole_months(org):
    client = signed_in(org.executive)
    response = client.get("/dashboards/executive/", {"date_from": "2024-02-10", "date_to": "2024-04-03"})
    assert response.status_code == 200
    assert b"2024-02-01 to 2024-04-30" in response.content


# --- Rows dashboards ------------------------------------------------------------------------


def test_analyst_dashboard_covers_the_own_team_only(org):
    activity(org.customers["North"], views=2)
    activity(org.customers["East"], views=3)
    with scoped(org.analyst):
        figures = selectors.row_figures(org.analyst, Period(date.today().replace(day=1), date.today()))
    assert figures.totals["buyers"] == 3 and figures.totals["visitors"] == 3 and figures.totals["views"] == 6
    assert figures.totals["conversion"] == 1.0 and figures.revenue_totals == {"EUR": Decimal("30.00")}
    assert figures.top_pages == [{"page": "/pricing", "views": 6, "visitors": 3}]
    response = signed_in(org.analyst).get("/dashboards/analyst/")
    html = response.content.decode()
    assert response.status_code == 200 and "Conversion" in html and "100.0%" in html
    assert "vendor/chart.umd.min.js" in html and "dashboards/js/charts.js" in html
    assert "<script>" not in html  # no inline script: the chart data is JSON read by a static file
    assert {"customers", "orders", "revenue", "conversion", "pages"} <= {
        m for m in re.findall(r'data-chart="chart-data-([a-z-]+)"', html)
    }


def test_manager_dashboard_breaks_down_by_team(org):
    activity(org.customers["North"])
    activity(org.customers["South"][:1])
    response = signed_in(org.manager).get("/dashboards/manager/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "By team" in html and "North" in html and "South" in html and "East" not in html


def test_admin_dashboard_shows_security_panels(org):
    SecurityAlert.objects.create(rule="large_export", severity="high", subject="user:7")
    SecurityAlert.objects.create(
        rule="gdpr_request_overdue", severity="high", subject="gdpr_request:5", detail={"due_at": "2026-01-02T10:00"}
    )
    SecurityAlert.objects.create(rule="permission_denials", severity="low", subject="user:9", status="resolved")
    response = signed_in(org.admin).get("/dashboards/admin/")
    html = response.content.decode()
    assert response.status_code == 200
    assert "large_export · user:7" in html and "gdpr_request:5" in html and "permission_denials" not in html
    assert "By department" in html and "By team" in html and "Checklist status" in html


@pytest.mark.parametrize(
    "params,message",
    [
        ({"date_from": "2024-13-45"}, "Enter a date as YYYY-MM-DD."),
        ({"date_from": "2024-01-01' OR 1=1--"}, "Enter a date as YYYY-MM-DD."),
        ({"date_to": "<script>alert(1)</script>"}, "Enter a date as YYYY-MM-DD."),
        ({"date_from": "2024-05-01", "date_to": "2024-04-01"}, "must not be before"),
        ({"date_from": "9999-12-31"}, "Choose a date between"),
        ({"team": "999999"}, "Choose one of the teams listed."),
        ({"team": "1 OR 1=1"}, "Choose one of the teams listed."),
        ({"team": "-1"}, "Choose one of the teams listed."),
    ],
)
def test_bad_filters_are_form_errors(org, params, message):
    response = signed_in(org.analyst).get("/dashboards/analyst/", params)
    assert response.status_code == 400
    html = response.content.decode()
    assert message in html and 'role="alert"' in html
    assert "<script>alert(1)</script>" not in html


def test_team_filter_stays_inside_the_scope(org):
    client = signed_in(org.manager)
    assert client.get("/dashboards/manager/", {"team": org.south.pk}).status_code == 200
    assert client.get("/dashboards/manager/", {"team": org.east.pk}).status_code == 400  # another department


# --- Customer pages -------------------------------------------------------------------------


def test_customer_list_is_masked_for_the_analyst_and_clear_for_the_manager(org):
    north = org.customers["North"][0]
    html = signed_in(org.analyst).get("/customers/").content.decode()
    assert north.email not in html and north.name not in html and north.phone not in html
    assert f"{north.email[:3]}***@" in html and f"XXX-XXX-{north.phone[-4:]}" in html
    assert f"XXXX-XXXX-XXXX-{north.card_last4}" in html
    assert not any(f">#{c.pk}<" in html for c in org.customers["East"])
    manager_html = signed_in(org.manager).get("/customers/").content.decode()
    assert north.email in manager_html and north.name in manager_html
    assert org.customers["East"][0].email not in manager_html
    event = AuditEvent.objects.filter(action="VIEW", actor_id=org.manager.pk, resource="customer").latest("id")
    assert event.rows == 6


def test_customer_list_query_count_is_bounded(org):
    from django.test.utils import CaptureQueriesContext

    client = signed_in(org.admin)
    client.get("/customers/")
    with CaptureQueriesContext(connection) as few:
        client.get("/customers/")
    CustomerFactory.create_batch(30, team=org.north)
    with CaptureQueriesContext(connection) as many:
        response = client.get("/customers/")
    assert response.status_code == 200 and response.content.count(b'href="/customers/') >= 42
    # One COUNT and one page query, whatever the rows; the rest is session, scope and audit.
    assert len(many.captured_queries) == len(few.captured_queries) <= 25


def test_email_search_is_a_post_through_the_blind_index(org):
    north, east = org.customers["North"][0], org.customers["East"][0]
    client = signed_in(org.analyst)
    found = client.post("/customers/", {"email": north.email.upper()})
    assert found.status_code == 200 and f">#{north.pk}<" in found.content.decode()
    assert "1 exact match" in found.content.decode()
    out_of_scope = client.post("/customers/", {"email": east.email})
    assert f">#{east.pk}<" not in out_of_scope.content.decode() and "0 exact matches" in out_of_scope.content.decode()
    assert client.post("/customers/", {"email": "not-an-email"}).status_code == 400
    event = AuditEvent.objects.filter(action="SEARCH", actor_id=org.analyst.pk).latest("id")
    assert north.email not in json.dumps(event.as_record())


def test_customer_filters_and_bad_input(org):
    client = signed_in(org.manager)
    response = client.get("/customers/", {"team": org.north.pk})
    html = response.content.decode()
    assert all(f">#{c.pk}<" in html for c in org.customers["North"])
    assert not any(f">#{c.pk}<" in html for c in org.customers["South"])
    for params in ({"team": "abc"}, {"created_from": "yesterday"}, {"page": "-4"}, {"page": "x" * 50}):
        assert client.get("/customers/", params).status_code == 400
    assert client.get("/customers/99999999999999999999/").status_code == 404  # past bigint: 404, not 500
    assert client.get(f"/customers/{org.customers['East'][0].pk}/").status_code == 404  # out of scope


def test_reveal_button_only_with_a_grant_and_reveal_is_audited(org):
    customer = org.customers["North"][0]
    client = signed_in(org.analyst)
    page = client.get(f"/customers/{customer.pk}/").content.decode()
    assert "Reveal" not in page and customer.email not in page
    denied = client.post(f"/customers/{customer.pk}/reveal/", {"field": "email", "reason": "Billing dispute #4411"})
    assert denied.status_code == 403 and customer.email not in denied.content.decode()
    AccessGrant.objects.create(
        requester=org.analyst,
        kind="unmask_customer",
        customer=customer,
        reason="Billing dispute #4411",
        status="approved",
        expires_at=timezone.now() + timedelta(hours=1),
    )
    page = client.get(f"/customers/{customer.pk}/").content.decode()
    assert "Reveal email" in page and customer.email not in page
    short = client.post(f"/customers/{customer.pk}/reveal/", {"field": "email", "reason": "x"})
    assert short.status_code == 400
    shown = client.post(f"/customers/{customer.pk}/reveal/", {"field": "email", "reason": "Billing dispute #4411"})
    assert shown.status_code == 200 and customer.email in shown.content.decode()
    events = AuditEvent.objects.filter(action="UNMASK", actor_id=org.analyst.pk).order_by("id")
    assert [e.success for e in events] == [False, True]


# --- Reports --------------------------------------------------------------------------------


def test_report_pages_run_under_the_viewer_scope(org):
    from tests.factories import ReportFactory

    activity(org.customers["North"])
    activity(org.customers["South"])
    report = ReportFactory(owner=org.manager, team=org.north, department=org.sales)
    analyst = signed_in(org.analyst)
    assert report.title in analyst.get("/reports/").content.decode()
    html = analyst.get(f"/reports/{report.pk}/").content.decode()
    assert "North" in html and "South" not in html  # the analyst's own scope bounds the run
    assert analyst.get(f"/reports/{report.pk}/", {"date_from": "nope"}).status_code == 400
    assert 'id="export-button"' not in html
    manager_html = signed_in(org.manager).get(f"/reports/{report.pk}/").content.decode()
    assert "South" in manager_html and 'id="export-button"' in manager_html
    assert AuditEvent.objects.filter(action="REPORT_RUN", actor_id=org.analyst.pk).exists()


# --- Exports --------------------------------------------------------------------------------


def test_export_button_follows_the_roles_table_and_the_server_enforces_it(org):
    assert 'id="export-button"' not in signed_in(org.analyst).get("/customers/").content.decode()
    assert 'id="export-button"' in signed_in(org.manager).get("/customers/").content.decode()
    assert 'id="export-button"' in signed_in(org.admin).get("/customers/").content.decode()
    body = {"dataset": "customers", "format": "csv", "purpose": PURPOSE}
    assert signed_in(org.analyst).post("/exports/start/", body).status_code == 403
    assert Export.objects.count() == 0


def test_export_needs_a_purpose_and_valid_fields(org):
    client = signed_in(org.manager)
    for body in (
        {"dataset": "customers", "format": "csv", "purpose": "x"},
        {"dataset": "salaries", "format": "csv", "purpose": PURPOSE},
        {"dataset": "customers", "format": "xlsx", "purpose": PURPOSE},
        {"dataset": "customers", "format": "csv", "purpose": PURPOSE, "date_from": "2024-99-01"},
        {"dataset": "customers", "format": "csv", "purpose": PURPOSE, "team": "1; DROP TABLE x"},
    ):
        response = client.post("/exports/start/", body)
        assert response.status_code == 400 and b'role="alert"' in response.content, body
    assert Export.objects.count() == 0


def test_export_status_is_the_requester_alone(org):
    client = signed_in(org.manager)
    response = client.post("/exports/start/", {"dataset": "customers", "format": "csv", "purpose": PURPOSE})
    assert response.status_code == 302
    export = Export.objects.get()
    assert response["Location"] == f"/exports/{export.pk}/"
    status = client.get(f"/exports/{export.pk}/status.json").json()
    assert status["status"] == "queued" and status["percent"] == 0 and "download_url" not in status
    assert export.purpose == PURPOSE
    assert signed_in(org.admin).get(f"/exports/{export.pk}/status.json").status_code == 404
    page = client.get(f"/exports/{export.pk}/").content.decode()
    assert "export_progress.js" in page and "<progress" in page


# --- Static files ---------------------------------------------------------------------------


def test_chart_library_is_vendored_unmodified():
    vendored = Path(__file__).resolve().parent.parent / "dashboards" / "static" / "vendor" / "chart.umd.min.js"
    assert hashlib.sha256(vendored.read_bytes()).hexdigest() == VENDORED_CHART_JS_SHA256
    assert b"Chart.js v4.6.1" in vendored.read_bytes()[:200]


def test_withdrawn_analytics_consent_leaves_the_figures(org):
    from compliance.models import ConsentRecord

    customers = CustomerFactory.create_batch(6, team=org.north)
    activity(customers)
    with scoped(system=True):
        ConsentRecord.objects.create(
            customer=customers[0], purpose="analytics", withdrawn_at=timezone.now(), source="web_form", current=True
        )
    period = Period(date.today().replace(day=1), date.today())
    with scoped(org.executive):
        executive = selectors.sanctioned_figures(period)
    with scoped(org.analyst):
        analyst = selectors.row_figures(org.analyst, period)
    assert executive.totals["buyers"] == analyst.totals["buyers"] == 5
    # 12 customers of the organisation + 6 new, less the one who withdrew; North: 3 + 6 - 1.
    assert executive.totals["new_customers"] == 17 and analyst.totals["new_customers"] == 8
