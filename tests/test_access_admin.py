"""The customer admin reads through restrict() and masks per role."""

import pytest
from django.test import Client

from datasets import masking
from tests.factories import browser_login

CHANGELIST = "/admin/datasets/customer/"


def login(user) -> Client:
    """Sign in through the real pages (password, then a TOTP code for roles that need MFA)."""
    return browser_login(user)


def test_anonymous_is_sent_to_login(org):
    response = Client().get(CHANGELIST)
    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]


@pytest.mark.parametrize("who", ["analyst", "executive"])
def test_non_staff_roles_cannot_enter(org, who):
    response = login(getattr(org, who)).get(CHANGELIST)
    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]


def test_dpo_enters_the_admin_for_the_gdpr_workspace_but_reads_no_customer_list(org):
    client = login(org.dpo)
    assert client.get("/admin/compliance/subjectrequest/").status_code == 200
    assert client.get(CHANGELIST).status_code == 403


def test_manager_sees_department_rows_only(org):
    response = login(org.manager).get(CHANGELIST)
    assert response.status_code == 200
    body = response.content.decode()
    for customer in org.customers["North"] + org.customers["South"]:
        assert customer.email in body
        assert masking.mask_card(customer.card_last4) in body
    for customer in org.customers["East"] + org.customers["West"]:
        assert customer.email not in body


def test_admin_sees_all_and_out_of_scope_detail_is_404(org):
    body = login(org.admin).get(CHANGELIST).content.decode()
    assert all(c.email in body for team in org.customers.values() for c in team)
    east = org.customers["East"][0]
    assert login(org.manager).get(f"{CHANGELIST}{east.pk}/change/").status_code == 404
    assert login(org.admin).get(f"{CHANGELIST}{east.pk}/change/").status_code == 200


def test_detail_page_shows_masked_values_only(org):
    north = org.customers["North"][0]
    body = login(org.manager).get(f"{CHANGELIST}{north.pk}/change/").content.decode()
    assert north.email in body  # managers see contact data in clear
    assert north.card_token not in body  # the processor token is never shown


def test_admin_search_by_exact_email(org):
    target = org.customers["West"][1]
    body = login(org.admin).get(CHANGELIST, {"q": target.email}).content.decode()
    assert target.email in body
    assert org.customers["West"][0].email not in body
