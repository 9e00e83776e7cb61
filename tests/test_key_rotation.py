"""Key rotation: old keys keep decrypting and finding rows while rotate_keys re-encrypts in batches."""

import threading
import time
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.db import connections
from django.utils import timezone

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


def test_subject_requests_are_re_encrypted_and_re_indexed(rotated_settings, settings):
    from compliance.models import SubjectRequest
    from datasets import blind_index

    with scoped(system=True):
        request = SubjectRequest(
            kind="access",
            channel="email",
            subject_email="Subject@Example.test",
            subject_phone="+1 555 0100",
            details="my data, please",
            due_at=timezone.now() + timedelta(days=30),
            email_index=blind_index.email_index("Subject@Example.test"),
            phone_index=blind_index.phone_index("+1 555 0100"),
        )
        request.save()
    rotated_settings()
    run = key_rotation.rotate(batch=10)
    assert run.rows["compliance.SubjectRequest"] == 1
    settings.CRYPTOGRAPHY_OLD_KEYS = []
    settings.BLIND_INDEX_OLD_KEYS = []
    with scoped(system=True):
        found = SubjectRequest.objects.get(email_index__in=blind_index.email_candidates("subject@example.test"))
        assert SubjectRequest.objects.filter(phone_index__in=blind_index.phone_candidates("15550100")).get() == found
    assert (found.pk, found.subject_email, found.details) == (request.pk, "Subject@Example.test", "my data, please")


def test_every_blind_index_beside_an_encrypted_field_is_recomputed_by_the_rotation():
    """A model that keeps HMAC look-up columns next to its encrypted fields must tell rotate_keys
    how to recompute them (``BLIND_INDEX_FIELDS`` + ``refresh_blind_indexes``), or a rotation
    would leave them under the old key and the search would break once that key is dropped."""
    from compliance import processing_register
    from compliance.record_of_processing import declaration_for

    checked = []
    for model, _ in key_rotation.encrypted_models():
        declaration = declaration_for(model)
        declared = declaration.fields.items() if declaration else ()
        hmac_columns = {
            name
            for name, entry in declared
            if isinstance(entry, processing_register.Personal) and entry.clear_reason == processing_register._HMAC
        }
        assert set(getattr(model, "BLIND_INDEX_FIELDS", ())) == hmac_columns, model._meta.label
        assert not hmac_columns or callable(getattr(model, "refresh_blind_indexes", None)), model._meta.label
        checked.append(model._meta.label)
    assert {"datasets.Customer", "compliance.SubjectRequest"} <= set(checked)


def test_two_rotations_started_together_share_one_run(rotated_settings):
    team = TeamFactory()
    CustomerFactory.create_batch(30, team=team)
    before = read_all()
    rotated_settings()
    start = threading.Barrier(2)
    runs, errors = [], []

    def rotate_in_thread():
        try:
            start.wait(timeout=10)
            # Slow batches, so that the two runs overlap.
            runs.append(key_rotation.rotate(batch=5, progress=lambda label, rows: time.sleep(0.05)).pk)
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=rotate_in_thread) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    assert len(runs) == 2 and len(set(runs)) == 1
    run = KeyRotation.objects.get()
    # Every row counted once: the batches were shared, not done twice.
    assert run.finished_at is not None and run.rows == {"datasets.Customer": 30}
    assert AuditEvent.objects.filter(action="KEY_ROTATED").count() == 1
    assert key_rotation.keys_in_use()["datasets.Customer"] == {field_crypto.current_key_id().hex(): 30}
    assert read_all() == before


def test_a_file_written_before_the_key_change_still_opens(rotated_settings, settings):
    from cryptography.fernet import InvalidToken

    from portal import file_crypto

    token = file_crypto.encrypt_bytes(b"export body")
    rotated_settings()
    assert file_crypto.decrypt_bytes(token) == b"export body"
    assert file_crypto.decrypt_bytes(file_crypto.encrypt_bytes(b"new")) == b"new"
    settings.CRYPTOGRAPHY_OLD_KEYS = []
    with pytest.raises(InvalidToken):
        file_crypto.decrypt_bytes(token)
