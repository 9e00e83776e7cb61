"""The pseudonymised extract: keyed pseudonyms (not MD5 of the email), tenure buckets, coarse and
small-group-suppressed cities, month-level dates; the caller's view scope; consent honoured."""

import csv
import hashlib
import io
from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from audit.models import AuditEvent
from compliance import pseudonymise
from compliance.models import ConsentRecord
from datasets.models import Order, PageView
from portal.security_context import scoped
from tests.conftest import token_client

URL = "/api/v1/pseudonymised-extract/orders/"


def add_orders(customer, count=2, *, days_after_signup=400):
    with scoped(system=True):
        for i in range(count):
            Order.objects.create(
                customer=customer,
                amount=Decimal("19.90") + i,
                status="paid",
                created_at=customer.created_at + timedelta(days=days_after_signup + i),
            )


def add_view(customer, city):
    with scoped(system=True):
        PageView.objects.create(customer=customer, team_id=customer.team_id, page="/", city=city)


def rows_of(response) -> list[dict]:
    assert response.status_code == 200, response.content
    return list(csv.DictReader(io.StringIO(response.content.decode())))


def test_pseudonym_is_a_keyed_hmac_not_a_hash_of_the_email(org, settings):
    customer = org.customers["North"][0]
    pseudonym = pseudonymise.pseudonym(customer.pk)
    assert len(pseudonym) == 32 and pseudonym == pseudonymise.pseudonym(customer.pk)
    assert (
        pseudonym
        not in {
            hashlib.md5(customer.email.encode()).hexdigest(),  # noqa: S324 - what the seed did
            hashlib.sha256(customer.email.encode()).hexdigest()[:32],
            hashlib.sha256(str(customer.pk).encode()).hexdigest()[:32],
            customer.email_index[:32],
        }
    )
    settings.PSEUDONYM_KEY = "another-key-" + "x" * 40
    assert pseudonymise.pseudonym(customer.pk) != pseudonym  # rotating the key unlinks old extracts


def test_tenure_bucket():
    now = timezone.now()
    assert pseudonymise.tenure_bucket(now - timedelta(days=30), now) == "0-1"
    assert pseudonymise.tenure_bucket(now - timedelta(days=3 * 365 + 2), now) == "2-3"
    assert pseudonymise.tenure_bucket(now, now - timedelta(days=1)) == "0-1"


def test_analyst_gets_own_team_pseudonymised_with_rare_cities_suppressed(org):
    north = org.customers["North"]
    for customer in north:
        add_orders(customer)
    add_orders(org.customers["East"][0])
    for customer in north:
        add_view(customer, "Lisbon")  # 3 subjects: below the threshold of 5
    response = token_client(org.analyst).get(URL, HTTP_ACCEPT="text/csv")
    rows = rows_of(response)
    assert response["Content-Disposition"].startswith("attachment;")
    assert list(rows[0]) == pseudonymise.COLUMNS
    assert len(rows) == 2 * len(north)  # own team only
    assert {r["subject"] for r in rows} == {pseudonymise.pseudonym(c.pk) for c in north}
    assert {r["city"] for r in rows} == {"other"}
    assert {r["tenure_years"] for r in rows} == {"0-1"}
    assert all(len(r["order_month"]) == 7 for r in rows)
    body = response.content.decode()
    for customer in north:
        assert customer.email not in body and customer.name not in body and customer.phone not in body
    event = AuditEvent.objects.filter(action="EXPORT_DATA", resource="pseudonymised_orders").get()
    assert event.actor_id == org.analyst.pk and event.rows == len(rows)


def test_common_cities_are_kept(org):
    team = org.north
    from tests.factories import CustomerFactory

    customers = CustomerFactory.create_batch(5, team=team)
    for customer in customers:
        add_orders(customer, 1)
        add_view(customer, "Porto")
    rows = rows_of(token_client(org.analyst).get(URL))
    assert {r["city"] for r in rows} == {"Porto"}


def test_withdrawn_analytics_consent_is_left_out(org):
    north = org.customers["North"]
    for customer in north:
        add_orders(customer, 1)
    with scoped(system=True):
        ConsentRecord.objects.create(
            customer=north[0], purpose="analytics", withdrawn_at=timezone.now(), source="admin", current=True
        )
    rows = rows_of(token_client(org.analyst).get(URL))
    assert pseudonymise.pseudonym(north[0].pk) not in {r["subject"] for r in rows}
    assert len(rows) == len(north) - 1


@pytest.mark.parametrize("who", ["executive", "dpo"])
def test_roles_outside_the_policy_are_refused(org, who):
    response = token_client(getattr(org, who)).get(URL)
    assert response.status_code == 403
    assert AuditEvent.objects.filter(action="PERMISSION_DENIED", resource="pseudonymised_orders").exists()


def test_roles_that_need_mfa_must_have_passed_it(org):
    assert token_client(org.manager, mfa=False).get(URL).status_code == 403
    assert token_client(org.manager).get(URL).status_code == 200


def test_anonymous_is_refused(org):
    from rest_framework.test import APIClient

    assert APIClient().get(URL).status_code == 401


def test_missing_pseudonym_key_stops_startup_with_one_line():
    from tests.test_startup import assert_one_line_error, base_env, manage

    result = manage("check", env=base_env(PSEUDONYM_KEY=None, PSEUDONYM_KEY_FILE=None))
    assert_one_line_error(result, "PSEUDONYM_KEY")
