"""django-auditlog change history: it records that personal fields changed, never their values."""

import json

import pytest
from auditlog.models import LogEntry
from django.contrib.contenttypes.models import ContentType

from accounts.models import User
from accounts.policy import Role
from datasets.models import Customer
from portal.security_context import scoped
from tests.factories import CustomerFactory, TeamFactory, make_user

pytestmark = pytest.mark.django_db


def entries_for(obj) -> list[LogEntry]:
    content_type = ContentType.objects.get_for_model(type(obj))
    return list(LogEntry.objects.filter(content_type=content_type, object_pk=str(obj.pk)).order_by("pk"))


def stored_text(entry: LogEntry) -> str:
    """Every column of the row as text, so a value hidden in any of them is found."""
    values = []
    for field in LogEntry._meta.concrete_fields:
        value = getattr(entry, field.attname)
        values.append(json.dumps(value, default=str) if isinstance(value, dict | list) else str(value))
    return "\n".join(values)


def assert_absent(entries: list[LogEntry], *secrets: str) -> None:
    for entry in entries:
        text = stored_text(entry)
        for secret in secrets:
            assert secret, "an empty canary proves nothing"
            assert secret not in text, (secret, text)


def test_customer_creation_is_logged_without_personal_values():
    customer = CustomerFactory(name="Sarah Canary", email="sarah.canary@mail.example", phone="+1-555-867-5309")
    [entry] = entries_for(customer)
    assert entry.action == LogEntry.Action.CREATE
    changes = entry.changes_dict
    assert {"name", "email", "phone"} <= set(changes)
    for field in ("name", "email", "phone"):
        assert changes[field][1] == "[redacted]"
    assert_absent([entry], "Sarah Canary", "Sarah", "Canary", "sarah.canary", "867-5309", "8675309")
    # Blind indexes are derived from the values: they stay out of the history too.
    assert "email_index" not in changes and "phone_index" not in changes
    assert_absent([entry], customer.email_index, customer.phone_index)
    # Fields that are not personal are recorded as usual.
    assert changes["card_last4"][1] == customer.card_last4


def test_customer_change_records_which_fields_changed_not_the_values():
    customer = CustomerFactory(name="Old Name Canary", email="old.canary@mail.example", phone="+1-555-111-2233")
    with scoped(system=True):
        customer.name = "New Name Canary"
        customer.email = "new.canary@mail.example"
        customer.phone = "+1-555-999-8877"
        customer.save()
    entries = entries_for(customer)
    assert [e.action for e in entries] == [LogEntry.Action.CREATE, LogEntry.Action.UPDATE]
    update = entries[1].changes_dict
    assert set(update) == {"name", "email", "phone"}
    for field in ("name", "email", "phone"):
        assert update[field] == ["[redacted]", "[redacted]"]
    assert_absent(
        entries,
        "Old Name Canary",
        "New Name Canary",
        "old.canary",
        "new.canary",
        "111-2233",
        "1112233",
        "999-8877",
        "9998877",
    )


def test_changing_one_personal_field_records_only_that_field():
    customer = CustomerFactory(name="Quiet Canary")
    with scoped(system=True):
        customer.phone = "+1-555-444-1212"
        customer.save(update_fields=["phone"])
    update = entries_for(customer)[-1]
    assert update.action == LogEntry.Action.UPDATE
    assert set(update.changes_dict) == {"phone"}
    assert_absent([update], "444-1212", "4441212", "Quiet Canary")


def test_saving_unchanged_customer_writes_no_update():
    customer = CustomerFactory()
    with scoped(system=True):
        Customer.objects.get(pk=customer.pk).save()
    assert [e.action for e in entries_for(customer)] == [LogEntry.Action.CREATE]


def test_customer_deletion_is_logged_without_personal_values():
    customer = CustomerFactory(name="Gone Canary", email="gone.canary@mail.example", phone="+1-555-222-3344")
    pk = customer.pk
    with scoped(system=True):
        customer.delete()
    customer.pk = pk
    entries = entries_for(customer)
    assert entries[-1].action == LogEntry.Action.DELETE
    assert_absent(entries, "Gone Canary", "gone.canary", "222-3344", "2223344")


def test_user_history_never_stores_the_password_hash():
    team = TeamFactory(name="Audit Team")
    user = make_user(Role.ANALYST, team=team, email="audited.user@example.test")
    hashes = [user.password]
    user.set_password("a-brand-new-password-42")
    user.full_name = "Renamed Person"
    user.save()
    hashes.append(user.password)
    user.set_password("only-the-password-changes-77")
    user.save()
    hashes.append(user.password)

    entries = entries_for(user)
    assert entries, "user changes are audited"
    assert any(e.action == LogEntry.Action.UPDATE and "full_name" in e.changes_dict for e in entries)
    for entry in entries:
        assert "password" not in entry.changes_dict
        assert "last_login" not in entry.changes_dict
    assert len(set(hashes)) == 3
    assert_absent(entries, *hashes)
    # The hash's salt and digest parts, in case a diff held a fragment of it.
    assert_absent(entries, *(part for h in hashes for part in h.split("$")[1:]))


def test_password_only_change_writes_no_update():
    user = make_user(Role.ADMIN)
    before = len(entries_for(user))
    user.set_password("another-long-password-99")
    user.save()
    assert len(entries_for(user)) == before
    assert User.objects.get(pk=user.pk).check_password("another-long-password-99")


def test_role_change_is_recorded():
    user = make_user(Role.ANALYST)
    from accounts import services

    services.set_role(user, Role.MANAGER)
    entries = entries_for(user)
    assert any("is_staff" in e.changes_dict for e in entries)
    assert any("groups" in e.changes_dict for e in entries)
