"""The customer API under the roles table: scope, masking, 401/403/404 and bad input."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from datasets import masking

LIST = "/api/v1/customers/"


def listed_ids(client, **params) -> set[int]:
    response = client.get(LIST, {"page_size": 200, **params})
    assert response.status_code == 200, response.content
    return {row["id"] for row in response.json()["results"]}


def test_anonymous_gets_401(org):
    assert APIClient().get(LIST).status_code == 401
    first = next(iter(org.all_ids()))
    assert APIClient().get(f"{LIST}{first}/").status_code == 401


def test_analyst_sees_own_team_masked(org, api_as):
    client = api_as(org.analyst)
    assert listed_ids(client) == org.ids(org.north)
    customer = org.customers["North"][0]
    row = client.get(f"{LIST}{customer.pk}/").json()
    assert row["name"] == masking.mask_initial(customer.name)
    assert row["email"] == masking.mask_email(customer.email)
    assert row["phone"] == f"XXX-XXX-{customer.phone[-4:]}"
    assert row["card"] == f"XXXX-XXXX-XXXX-{customer.card_last4}"
    assert customer.email not in str(row)


def test_manager_sees_department_in_clear(org, api_as):
    client = api_as(org.manager)
    assert listed_ids(client) == org.ids(org.north, org.south)
    customer = org.customers["South"][1]
    row = client.get(f"{LIST}{customer.pk}/").json()
    assert (row["name"], row["email"], row["phone"]) == (customer.name, customer.email, customer.phone)
    assert row["card"] == f"XXXX-XXXX-XXXX-{customer.card_last4}"


def test_admin_sees_all(org, api_as):
    assert listed_ids(api_as(org.admin)) == org.all_ids()


@pytest.mark.parametrize("who", ["executive", "dpo"])
def test_roles_without_rows_get_403(org, api_as, who):
    client = api_as(getattr(org, who))
    assert client.get(LIST).status_code == 403
    first = next(iter(org.all_ids()))
    assert client.get(f"{LIST}{first}/").status_code == 403


@pytest.mark.parametrize("who,team", [("analyst", "South"), ("analyst", "East"), ("manager", "East")])
def test_out_of_scope_detail_is_404(org, api_as, who, team):
    customer = org.customers[team][0]
    assert api_as(getattr(org, who)).get(f"{LIST}{customer.pk}/").status_code == 404


def test_email_search_uses_blind_index(org, api_as):
    target = org.customers["North"][2]
    client = api_as(org.admin)
    response = client.get(LIST, {"email": target.email.upper()})
    assert [row["id"] for row in response.json()["results"]] == [target.pk]
    # In scope for the analyst too; out of scope finds nothing.
    assert listed_ids(api_as(org.analyst), email=target.email) == {target.pk}
    assert listed_ids(api_as(org.other_analyst), email=target.email) == set()


@pytest.mark.parametrize(
    "params,field",
    [
        ({"email": "not-an-email"}, "email"),
        ({"email": "x' OR '1'='1"}, "email"),
        ({"page_size": "100000"}, "page_size"),
        ({"page_size": "-1"}, "page_size"),
        ({"page_size": "abc"}, "page_size"),
    ],
)
def test_bad_query_parameters_get_400_with_field_message(org, api_as, params, field):
    response = api_as(org.admin).get(LIST, params)
    assert response.status_code == 400
    assert field in response.json()


@pytest.mark.parametrize("path", ["abc/", "-1/", "99999999999999999999999/", "1.5/", "0/"])
def test_bad_ids_get_404(org, api_as, path):
    assert api_as(org.admin).get(f"{LIST}{path}").status_code == 404


def test_bad_page_number_is_404(org, api_as):
    assert api_as(org.admin).get(LIST, {"page": "999"}).status_code == 404


def test_list_query_count_does_not_grow_with_page_size(org, api_as):
    client = api_as(org.admin)
    counts = []
    for size in (1, 12):
        with CaptureQueriesContext(connection) as queries:
            assert client.get(LIST, {"page_size": size}).status_code == 200
        counts.append(len(queries))
    assert counts[0] == counts[1]


@pytest.mark.parametrize("path", ["/api/v1/orders/", "/api/v1/pageviews/", "/api/v1/reports/"])
def test_other_lists_query_count_does_not_grow_with_page_size(org, api_as, path):
    from tests.factories import OrderFactory, PageViewFactory, ReportFactory

    for team in org.teams:
        for customer in org.customers[team.name]:
            OrderFactory(customer=customer)
            PageViewFactory(customer=customer)
        ReportFactory(owner=org.admin, team=team)
    client = api_as(org.manager)
    client.get(path)  # warm per-process caches (content types) before counting
    counts = []
    for size in (1, 10):
        with CaptureQueriesContext(connection) as queries:
            assert client.get(path, {"page_size": size}).status_code == 200
        counts.append(len(queries))
    assert counts[0] == counts[1]
