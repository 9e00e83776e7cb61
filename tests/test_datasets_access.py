"""Orders, page views and reports under the roles table; reports' rights, sharing and runs."""

import pytest
from rest_framework.test import APIClient

from datasets.models import Report
from portal.security_context import scoped
from tests.factories import OrderFactory, PageViewFactory, ReportFactory


@pytest.fixture
def activity(org):
    """Two orders and one page view per customer."""
    for team in org.teams:
        for customer in org.customers[team.name]:
            OrderFactory.create_batch(2, customer=customer, amount="10.00")
            PageViewFactory(customer=customer)
    return org


def ids(client, path, **params):
    response = client.get(path, {"page_size": 200, **params})
    assert response.status_code == 200, response.content
    return {row["id"] for row in response.json()["results"]}


def team_ids_of(rows, key="team"):
    return {row[key] for row in rows}


@pytest.mark.parametrize("path", ["/api/v1/orders/", "/api/v1/pageviews/"])
def test_activity_lists_follow_the_roles_table(activity, api_as, path):
    org = activity
    rows = api_as(org.analyst).get(path, {"page_size": 200}).json()["results"]
    assert team_ids_of(rows) == {org.north.pk}
    rows = api_as(org.manager).get(path, {"page_size": 200}).json()["results"]
    assert team_ids_of(rows) == {org.north.pk, org.south.pk}
    rows = api_as(org.admin).get(path, {"page_size": 200}).json()["results"]
    assert team_ids_of(rows) == {t.pk for t in org.teams}
    assert api_as(org.executive).get(path).status_code == 403
    assert APIClient().get(path).status_code == 401


def test_activity_out_of_scope_detail_is_404(activity, api_as):
    east_customer = activity.customers["East"][0]
    order = east_customer.orders.model.objects
    with scoped(system=True):
        order_id = order.filter(customer=east_customer).values_list("id", flat=True).first()
    assert api_as(activity.analyst).get(f"/api/v1/orders/{order_id}/").status_code == 404
    assert api_as(activity.admin).get(f"/api/v1/orders/{order_id}/").status_code == 200


@pytest.mark.parametrize("params", [{"date_from": "yesterday"}, {"date_from": "2025-02-01", "date_to": "2025-01-01"}])
def test_activity_bad_dates_are_400(activity, api_as, params):
    response = api_as(activity.admin).get("/api/v1/orders/", params)
    assert response.status_code == 400
    assert set(response.json()) & {"date_from", "date_to"}


# --- Reports --------------------------------------------------------------------------------

DEFINITION = {"dataset": "orders", "aggregate": "count", "group_by": "team"}


def create(client, **body):
    return client.post("/api/v1/reports/", {"title": "T", "definition": DEFINITION, **body}, format="json")


def test_analyst_creates_in_own_team_only(org, api_as):
    client = api_as(org.analyst)
    response = create(client, team=org.north.pk)
    assert response.status_code == 201, response.content
    assert response.json()["owner"] == org.analyst.pk
    assert create(client, team=org.east.pk).status_code == 400


@pytest.mark.parametrize("field,value", [("owner", 1), ("department", 1), ("id", 5), ("created_at", "2020-01-01")])
def test_unwritable_fields_are_refused_and_nothing_stored(org, api_as, field, value):
    before = _report_count()
    response = create(api_as(org.analyst), team=org.north.pk, **{field: value})
    assert response.status_code == 400
    assert field in response.json()
    assert _report_count() == before


def _report_count():
    with scoped(system=True):
        return Report.objects.count()


@pytest.mark.parametrize(
    "definition",
    [
        {"dataset": "salaries"},
        {"dataset": "orders", "aggregate": "max_ssn"},
        {"dataset": "orders", "group_by": "email"},
        {"dataset": "orders", "filters": {"email": "x"}},
        {"dataset": "orders", "filters": {"status": "DROP TABLE"}},
        {"dataset": "orders", "date_from": "2025-02-01", "date_to": "2025-01-01"},
        "SELECT * FROM datasets_customer",
    ],
)
def test_bad_definitions_are_400(org, api_as, definition):
    response = api_as(org.admin).post(
        "/api/v1/reports/", {"title": "x", "team": org.north.pk, "definition": definition}, format="json"
    )
    assert response.status_code == 400, response.content


def test_edit_and_delete_rights_follow_the_table(org, api_as):
    own = ReportFactory(owner=org.analyst, team=org.north)
    teammate = ReportFactory(owner=org.manager, team=org.north)
    other_dept = ReportFactory(owner=org.admin, team=org.east)
    analyst, manager, admin = api_as(org.analyst), api_as(org.manager), api_as(org.admin)
    # Analyst: edits own, not a teammate's (403: visible), not another department's (404).
    assert analyst.patch(f"/api/v1/reports/{own.pk}/", {"title": "new"}, format="json").status_code == 200
    assert analyst.patch(f"/api/v1/reports/{teammate.pk}/", {"title": "x"}, format="json").status_code == 403
    assert analyst.patch(f"/api/v1/reports/{other_dept.pk}/", {"title": "x"}, format="json").status_code == 404
    assert analyst.delete(f"/api/v1/reports/{own.pk}/").status_code == 403
    # Manager: edits the department's reports, deletes only own.
    assert manager.patch(f"/api/v1/reports/{own.pk}/", {"title": "m"}, format="json").status_code == 200
    assert manager.delete(f"/api/v1/reports/{own.pk}/").status_code == 403
    assert manager.delete(f"/api/v1/reports/{teammate.pk}/").status_code == 204
    assert manager.delete(f"/api/v1/reports/{other_dept.pk}/").status_code == 404
    # Admin: everything.
    assert admin.delete(f"/api/v1/reports/{other_dept.pk}/").status_code == 204
    assert api_as(org.executive).get("/api/v1/reports/").status_code == 403


def test_moving_a_report_out_of_scope_is_refused(org, api_as):
    report = ReportFactory(owner=org.manager, team=org.north)
    response = api_as(org.manager).patch(f"/api/v1/reports/{report.pk}/", {"team": org.east.pk}, format="json")
    assert response.status_code == 400
    with scoped(system=True):
        assert Report.objects.get(pk=report.pk).team_id == org.north.pk


def test_run_aggregates_under_the_runner_scope(activity, api_as):
    org = activity
    report = ReportFactory(owner=org.admin, team=org.north)
    rows = api_as(org.admin).post(f"/api/v1/reports/{report.pk}/run/").json()["rows"]
    assert {r["group"]: r["value"] for r in rows} == {t.pk: 6 for t in org.teams}
    rows = api_as(org.manager).post(f"/api/v1/reports/{report.pk}/run/").json()["rows"]
    assert {r["group"]: r["value"] for r in rows} == {org.north.pk: 6, org.south.pk: 6}


def test_sharing_adds_a_viewer_but_never_widens_data(activity, api_as):
    org = activity
    report = ReportFactory(owner=org.analyst, team=org.north, definition={"dataset": "orders", "group_by": "team"})
    outsider = api_as(org.other_analyst)
    assert outsider.get(f"/api/v1/reports/{report.pk}/").status_code == 404
    response = api_as(org.analyst).post(f"/api/v1/reports/{report.pk}/share/", {"user": org.other_analyst.pk})
    assert response.status_code == 200, response.content
    assert outsider.get(f"/api/v1/reports/{report.pk}/").status_code == 200
    rows = outsider.post(f"/api/v1/reports/{report.pk}/run/").json()["rows"]
    assert [r["group"] for r in rows] == [org.east.pk]  # the viewer's own team only
    assert outsider.patch(f"/api/v1/reports/{report.pk}/", {"title": "x"}, format="json").status_code == 403
    api_as(org.analyst).post(f"/api/v1/reports/{report.pk}/share/", {"user": org.other_analyst.pk, "revoke": True})
    assert outsider.get(f"/api/v1/reports/{report.pk}/").status_code == 404


def test_sharing_with_a_team_reaches_its_members(org, api_as):
    report = ReportFactory(owner=org.admin, team=org.north)
    assert api_as(org.admin).post(f"/api/v1/reports/{report.pk}/share/", {"team": org.east.pk}).status_code == 200
    assert api_as(org.other_analyst).get(f"/api/v1/reports/{report.pk}/").status_code == 200


def test_share_needs_edit_rights_and_exactly_one_target(org, api_as):
    report = ReportFactory(owner=org.manager, team=org.north)
    analyst = api_as(org.analyst)
    assert analyst.post(f"/api/v1/reports/{report.pk}/share/", {"user": org.other_analyst.pk}).status_code == 403
    manager = api_as(org.manager)
    assert manager.post(f"/api/v1/reports/{report.pk}/share/", {}).status_code == 400
    both = {"user": org.analyst.pk, "team": org.north.pk}
    assert manager.post(f"/api/v1/reports/{report.pk}/share/", both).status_code == 400
