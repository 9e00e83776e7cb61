"""Key rotation: old keys keep decrypting and finding rows while rotate_keys re-encrypts in batches."""

import pytest
from django.core.management import call_command

from audit.models import AuditEvent
from datasets import key_rotation
from datasets.models import Customer, KeyRotation
from portal import field_crypto
from portal.security_context import scoped
from tests.conftest import BOTH_DATABASES
from tests.factories import CustomerFactory, TeamFactory

pytestmark = pytest.mark.django_db(transaction=True, databases=BOTH_DATABASES)
NEW_FIELD_KEY = "new-field-key-0123456789-0123456789-abcdef"
NEW_INDEX_KEY = "new-index-key-0123456789-0123456789-abcdef"


@pytest.fixture
def rotated_settings(settings):
    def switch():
        settings.CRYPTOGRAPHY_OLD_KEYS = [settings.CRYPTOGRAPHY_KEY]
        settings.BLIND_INDEX_OLD_KEYS = [settings.BLIND_INDEX_KEY]
        settings.CRYPTOGRAPHY_KEY = NEW_FIELD_KEY
        settings.BLIND_INDEX_KEY = NEW_INDEX_KEY

    return switch


def read_all():
    with scoped(system=True):
        return {c.pk: (c.name, c.email, c.phone) for c in Customer.objects.all()}


def test_rotation_keeps_serving_and_finishes_under_new_keys(rotated_settings, settings):
    team = TeamFactory()
    customers = CustomerFactory.create_batch(25, team=team)
    before = read_all()
    old_key_id = field_crypto.current_key_id().hex()
    rotated_settings()
    # Before any row is rewritten, reads and blind-index look-ups still work through the old keys.
    assert read_all() == before
    with scoped(system=True):
        assert list(Customer.objects.by_email(customers[3].email).values_list("pk", flat=True)) == [customers[3].pk]
    seen_during = []

    def read_between_batches(label, rows):
        seen_during.append(rows)
        assert read_all() == before
        with scoped(system=True):
            assert Customer.objects.by_email(customers[-1].email).count() == 1

    run = key_rotation.rotate(batch=10, progress=read_between_batches)
    assert seen_during == [10, 20, 25]
    assert run.finished_at is not None and run.rows["datasets.Customer"] == 25
    usage = key_rotation.keys_in_use()
    assert usage["datasets.Customer"] == {field_crypto.current_key_id().hex(): 25}
    assert all(set(counts) <= {field_crypto.current_key_id().hex()} for counts in usage.values())
    assert old_key_id != field_crypto.current_key_id().hex()
    # The old keys can now go: everything reads and is found under the new keys alone.
    settings.CRYPTOGRAPHY_OLD_KEYS = []
    settings.BLIND_INDEX_OLD_KEYS = []
    assert read_all() == before
    with scoped(system=True):
        assert Customer.objects.by_email(customers[0].email.upper()).get().pk == customers[0].pk
    assert AuditEvent.objects.filter(action="KEY_ROTATED").exists()


def test_interrupted_rotation_resumes_from_its_checkpoint(rotated_settings, monkeypatch):
    team = TeamFactory()
    CustomerFactory.create_batch(12, team=team)
    before = read_all()
    rotated_settings()
    calls = {"n": 0}
    real_batch = key_rotation.rotate_batch

    def dying_batch(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("worker killed")
        return real_batch(*args, **kwargs)

    monkeypatch.setattr(key_rotation, "rotate_batch", dying_batch)
    with pytest.raises(RuntimeError):
        key_rotation.rotate(batch=5)
    run = KeyRotation.objects.get()
    assert run.checkpoints["datasets.Customer"] > 0 and run.finished_at is None
    monkeypatch.setattr(key_rotation, "rotate_batch", real_batch)
    finished = key_rotation.rotate(batch=5)
    assert finished.pk == run.pk and finished.rows["datasets.Customer"] == 12
    assert read_all() == before


def test_a_value_moved_to_another_column_does_not_decrypt():
    blob = field_crypto.encrypt_value("secret", b"datasets_customer.email")
    with pytest.raises(field_crypto.DecryptionError):
        field_crypto.decrypt_value(blob, b"datasets_customer.name")
    assert field_crypto.decrypt_value(blob, b"datasets_customer.email") == "secret"


def test_command_rejects_bad_batch_size():
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="--batch"):
        call_command("rotate_keys", batch=0)
