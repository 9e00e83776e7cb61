"""Encryption at rest: the database holds no plaintext name, email or phone; look-ups by blind index."""

import pytest
from django.db import connections

from datasets import blind_index
from datasets.models import Customer
from portal.security_context import scoped
from tests.conftest import BOTH_DATABASES
from tests.factories import CustomerFactory, TeamFactory

pytestmark = pytest.mark.django_db(transaction=True, databases=BOTH_DATABASES)


def test_raw_row_holds_no_plaintext_and_blind_index_finds_it():
    team = TeamFactory()
    customer = CustomerFactory(
        team=team, name="Sarah Canary-Johnson", email="sarah.canary@gmail.com", phone="+1 555 867 5309"
    )
    CustomerFactory.create_batch(3, team=team)
    with connections["owner"].cursor() as cursor:
        cursor.execute("SELECT row_to_json(c)::text FROM datasets_customer c WHERE id = %s", [customer.pk])
        raw = cursor.fetchone()[0]
        cursor.execute("SELECT name, email, phone FROM datasets_customer WHERE id = %s", [customer.pk])
        columns = [bytes(value) for value in cursor.fetchone()]
    # Long enough not to turn up by chance in hex ciphertext, ids or timestamps.
    for plain in ["Sarah", "Canary", "sarah.canary", "gmail", "8675309", "555 867"]:
        assert plain not in raw
        assert all(plain.encode() not in column for column in columns)
    with scoped(system=True):
        found = list(Customer.objects.filter(email_index=blind_index.email_index(" SARAH.canary@Gmail.com ")))
        assert [c.pk for c in found] == [customer.pk]
        assert found[0].email == "sarah.canary@gmail.com"
        by_phone = Customer.objects.filter(phone_index=blind_index.phone_index("15558675309"))
        assert list(by_phone.values_list("id", flat=True)) == [customer.pk]


def test_blind_index_depends_on_its_own_key(settings):
    first = blind_index.email_index("a@b.example")
    settings.BLIND_INDEX_KEY = "another-key-of-sufficient-length-0123456789"
    assert blind_index.email_index("a@b.example") != first
    assert settings.CRYPTOGRAPHY_KEY != settings.SECRET_KEY
