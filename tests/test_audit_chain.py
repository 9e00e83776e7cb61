"""The audit trail's hash chain: intact after concurrent writers, broken (and named) by any
UPDATE, DELETE or forged INSERT made behind the portal's back; the portal cannot edit it at all."""

import os
import subprocess
import sys
import threading
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connections, transaction
from django.db.utils import DatabaseError

from audit import chain, review, services
from audit.choices import AuditAction
from audit.models import AuditChainCheck, AuditEvent
from portal.security_context import scoped
from tests.conftest import BOTH_DATABASES

pytestmark = pytest.mark.django_db(transaction=True, databases=BOTH_DATABASES)
ROOT = Path(__file__).resolve().parent.parent


def write_events(n: int, **kwargs) -> list[AuditEvent]:
    return [services.record(AuditAction.VIEW, resource="customer", object_ids=[i], rows=1, **kwargs) for i in range(n)]


def as_owner(statement: str, params=None) -> None:
    with connections["owner"].cursor() as cursor:
        cursor.execute(statement, params)


def behind_the_back(statement: str, params=None) -> None:
    """What the schema owner (or anyone with its password) can do: switch the trigger off and edit."""
    as_owner("ALTER TABLE audit_auditevent DISABLE TRIGGER audit_event_append_only")
    try:
        as_owner(statement, params)
    finally:
        as_owner("ALTER TABLE audit_auditevent ENABLE TRIGGER audit_event_append_only")


def test_an_untouched_chain_verifies():
    events = write_events(5)
    report = chain.verify()
    assert report.ok and report.events == 5
    assert report.head_id == events[-1].pk
    stored = list(AuditEvent.objects.order_by("id"))
    assert stored[0].prev_hash == chain.GENESIS
    for previous, event in zip(stored, stored[1:], strict=False):
        assert event.prev_hash == previous.hash
        assert len(event.hash) == 64


def test_the_hash_covers_every_field():
    [event] = write_events(1)
    values = chain.values_of(AuditEvent.objects.get(pk=event.pk))
    original = chain.event_hash(values)
    for name, changed in [("reason", "x"), ("rows", 2), ("success", False), ("object_ids", ["9"]), ("actor_id", 7)]:
        assert chain.event_hash({**values, name: changed}) != original, name


def test_concurrent_writers_build_one_unbroken_chain():
    writers, per_writer = 8, 15
    errors = []
    barrier = threading.Barrier(writers)

    def writer():
        try:
            barrier.wait()
            write_events(per_writer)
        except Exception as exc:  # reported below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=writer) for _ in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors
    report = chain.verify()
    assert report.ok, report.detail
    assert report.events == writers * per_writer


def test_an_update_is_named():
    events = write_events(4)
    behind_the_back("UPDATE audit_auditevent SET rows = 999 WHERE id = %s", [events[1].pk])
    report = chain.verify()
    assert not report.ok
    assert report.first_bad_id == events[1].pk
    assert "does not match" in report.detail


def test_an_update_that_recomputes_the_hash_breaks_the_next_link():
    events = write_events(4)
    target = AuditEvent.objects.get(pk=events[1].pk)
    target.reason = "nothing happened here"
    forged = chain.event_hash(chain.values_of(target))
    behind_the_back(
        "UPDATE audit_auditevent SET reason = %s, hash = %s WHERE id = %s", [target.reason, forged, target.pk]
    )
    report = chain.verify()
    assert report.first_bad_id == events[2].pk
    assert "link" in report.detail


def test_a_delete_is_named():
    events = write_events(4)
    behind_the_back("DELETE FROM audit_auditevent WHERE id = %s", [events[2].pk])
    report = chain.verify()
    assert not report.ok
    assert report.first_bad_id == events[3].pk


def test_a_forged_insert_is_named():
    events = write_events(3)
    head = AuditEvent.objects.get(pk=events[-1].pk)
    # The forger knows the head's hash but not how the portal hashes an event.
    as_owner(
        "INSERT INTO audit_auditevent (timestamp, actor_email, action, resource, object_ids, user_agent, request_id,"
        " success, reason, extra, prev_hash, hash) VALUES (now(), '', 'LOGIN', 'session', '[]', '', '', true, '',"
        " '{}', %s, %s)",
        [head.hash, "f" * 64],
    )
    forged_id = AuditEvent.objects.order_by("-id").values_list("id", flat=True).first()
    report = chain.verify()
    assert not report.ok and report.first_bad_id == forged_id
    # Written through the portal afterwards, the chain stays broken at the forgery.
    write_events(1)
    assert chain.verify().first_bad_id == forged_id


def test_cutting_the_tail_is_caught_by_the_last_checks_anchor():
    events = write_events(3)
    check = review.verify_and_record()
    assert check.ok and check.head_id == events[-1].pk
    behind_the_back("DELETE FROM audit_auditevent WHERE id = %s", [events[-1].pk])
    # The chain that is left is consistent in itself; the anchor says something is missing.
    assert chain.verify().ok
    report = chain.verify(anchors=chain.last_anchor())
    assert not report.ok and report.first_bad_id == events[-1].pk
    with pytest.raises(CommandError, match=f"event {events[-1].pk}"):
        call_command("verify_audit_chain")


@pytest.mark.parametrize(
    "statement",
    ["UPDATE audit_auditevent SET rows = 1", "DELETE FROM audit_auditevent", "TRUNCATE audit_auditevent"],
)
@pytest.mark.parametrize("system", [False, True])
def test_the_portal_roles_cannot_edit_the_trail(statement, system):
    write_events(1)
    with pytest.raises(DatabaseError, match="permission denied"):
        with scoped(system=system):
            with connections["default"].cursor() as cursor:
                cursor.execute(statement)
    assert chain.verify().ok


def test_the_portal_roles_cannot_edit_the_chain_checks():
    review.verify_and_record()
    with pytest.raises(DatabaseError, match="permission denied"), transaction.atomic():
        AuditChainCheck.objects.update(ok=False)


def test_the_trigger_refuses_even_the_owner():
    [event] = write_events(1)
    for statement in (
        "UPDATE audit_auditevent SET rows = 5 WHERE id = %s",
        "DELETE FROM audit_auditevent WHERE id = %s",
    ):
        with pytest.raises(DatabaseError, match="append-only"):
            as_owner(statement, [event.pk])
    assert chain.verify().ok


def test_the_change_history_cannot_be_deleted_or_rewritten():
    from auditlog.models import LogEntry

    from tests.factories import DepartmentFactory

    DepartmentFactory(name="Audited")
    entry = LogEntry.objects.order_by("-id").first()
    assert entry is not None
    with pytest.raises(DatabaseError, match="permission denied"), transaction.atomic():
        LogEntry.objects.filter(pk=entry.pk).delete()
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        LogEntry.objects.filter(pk=entry.pk).update(object_repr="something else")


def _manage(*args) -> subprocess.CompletedProcess:
    """Run manage.py against the test database, as the portal role would in production."""
    owner = settings.DATABASES["owner"]
    url = urlsplit(os.environ["DATABASE_URL"])._replace(path=f"/{owner['NAME']}").geturl()
    env = dict(os.environ, DATABASE_URL=url, DJANGO_SETTINGS_MODULE="portal.settings")
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )


def test_the_command_exits_0_then_non_zero_naming_the_event():
    events = write_events(3)
    good = _manage("verify_audit_chain")
    assert good.returncode == 0, good.stderr
    assert f"head {events[-1].pk}:" in good.stdout
    behind_the_back("UPDATE audit_auditevent SET resource = 'report' WHERE id = %s", [events[0].pk])
    bad = _manage("verify_audit_chain")
    assert bad.returncode == 1
    assert f"BROKEN at event {events[0].pk}" in bad.stderr
