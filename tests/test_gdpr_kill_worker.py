"""Killing the worker in the middle of an erasure, then restarting it, ends in the same state as an
uninterrupted erasure: the killed transaction leaves nothing half-erased, the late-acknowledged
message is delivered again, and the second run does the whole subject once.

The workers are real ``celery worker`` processes on the test database and the test Redis.  The
first one is told (test-only environment hook, read only when set) to pause after deleting the
page views, and is SIGKILLed there."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from auditlog.models import LogEntry
from django.conf import settings
from django.contrib.contenttypes.models import ContentType
from django.core.cache import cache
from django.db import connections

from audit.choices import AuditAction
from audit.models import AuditEvent
from compliance import erasure, requests
from compliance.models import ConsentRecord, ErasedSubject, SubjectRequest
from compliance.requests_choices import RequestStatus
from datasets.models import Customer, Order, PageView
from portal.celery import app
from portal.security_context import scoped
from tests.conftest import BOTH_DATABASES, Org
from tests.gdpr_support import make_subject, wait_status

pytestmark = [pytest.mark.django_db(transaction=True, databases=BOTH_DATABASES), pytest.mark.worker]
ROOT = Path(settings.BASE_DIR)


def start_worker_process(log: Path, *, pause_after: str = "") -> subprocess.Popen:
    """A real worker on the test database (the owner URL with the test database's name)."""
    url = urlsplit(os.environ["DATABASE_URL"])
    test_url = url._replace(path="/" + connections["owner"].settings_dict["NAME"]).geturl()
    env = {
        **os.environ,
        "DATABASE_URL": test_url,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        # A message of a killed worker comes back after this many seconds (default: an hour).
        "CELERY_VISIBILITY_TIMEOUT_SECONDS": "5",
    }
    env.pop(erasure.PAUSE_ENV, None)
    if pause_after:
        env[erasure.PAUSE_ENV] = pause_after
        env[erasure.PAUSE_SECONDS_ENV] = "300"
    command = [
        str(Path(sys.executable).parent / "celery"),
        "-A",
        "portal",
        "worker",
        "--pool",
        "solo",
        "--loglevel",
        "WARNING",
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
        "--hostname",
        f"gdpr-kill-{os.getpid()}-{time.monotonic_ns()}@localhost",
    ]
    with log.open("ab") as out:
        return subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)


def wait_for_step(request_id: int, step: str, process: subprocess.Popen, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (cache.get(requests.progress_key(request_id)) or {}).get("step") == step:
            return
        assert process.poll() is None, "the worker exited early"
        time.sleep(0.1)
    raise AssertionError(f"the worker never reached step {step!r}")


def queue_erasure(org, subject) -> int:
    request = requests.intake(org.dpo, requests.Intake("erasure", "email", email=subject.email))
    for action in ("verify", "approve", "run"):
        requests.transition(request.pk, org.dpo, action)  # "run" sends the task after commit
    return request.pk


def end_state(subject, request_id: int) -> dict:
    """Everything an erasure leaves, without ids and hashes (so that two subjects compare)."""
    request = SubjectRequest.objects.get(pk=request_id)
    with scoped(system=True):
        orders = sorted(
            (str(o.amount), o.currency, o.status, o.anonymised, o.customer_id)
            for o in Order.objects.filter(pk__in=[o.pk for o in subject.orders])
        )
        remaining = {
            "customers": Customer.objects.filter(pk__in=subject.ids).count(),
            "page_views": PageView.objects.filter(customer_id__in=subject.ids).count(),
            "consents": ConsentRecord.objects.filter(customer_id__in=subject.ids).count(),
        }
    subject_hash = erasure.subject_hash(subject.email)
    events = AuditEvent.objects.filter(action=AuditAction.USER_DELETED, extra__subject_hash=subject_hash)
    diffs = LogEntry.objects.filter(content_type=ContentType.objects.get_for_model(Customer), object_id__in=subject.ids)
    return {
        "status": request.status,
        "result": request.result,
        "subject_kept": [request.subject_email, request.subject_phone, request.subject_hash == subject_hash],
        "orders": orders,
        "remaining": remaining,
        "erased_register": list(
            ErasedSubject.objects.filter(subject_hash=subject_hash).values_list("counts", flat=True)
        ),
        "events": [(e.rows, e.extra["counts"]) for e in events],
        "diffs_redacted": all(d.additional_data == {"erased": True} for d in diffs) and diffs.exists(),
    }


def forget_pending_messages() -> None:
    """Start from an empty queue: no message left by an earlier run may reach this database."""
    app.control.purge()
    with app.connection_for_write() as connection:
        client = connection.default_channel.client
        client.delete("unacked", "unacked_index")


def test_killing_the_worker_mid_erasure_then_restarting_ends_like_an_uninterrupted_run(tmp_path):
    forget_pending_messages()
    org = Org(customers_per_team=1)
    killed, twin = make_subject(org, "K"), make_subject(org, "T")
    log = tmp_path / "workers.log"

    first = start_worker_process(log, pause_after="page_views")
    try:
        killed_id = queue_erasure(org, killed)
        wait_for_step(killed_id, "page_views", first)
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=30)
    finally:
        if first.poll() is None:
            first.kill()
    # The killed transaction rolled back: nothing of the subject is half-erased.
    with scoped(system=True):
        assert Customer.objects.filter(pk__in=killed.ids).count() == 2
        assert PageView.objects.filter(customer_id__in=killed.ids).count() == killed.page_views
        assert Order.objects.filter(customer_id__in=killed.ids).count() == len(killed.orders)
    assert SubjectRequest.objects.get(pk=killed_id).status == RequestStatus.IN_PROGRESS
    assert not ErasedSubject.objects.exists()
    assert not AuditEvent.objects.filter(action=AuditAction.USER_DELETED).exists()

    # The restarted worker takes back, on start, messages unacknowledged for longer than the
    # visibility timeout (5 s here, an hour by default).
    time.sleep(6)
    second = start_worker_process(log)
    try:
        twin_id = queue_erasure(org, twin)  # the uninterrupted run, on the same worker
        wait_status(twin_id, {RequestStatus.COMPLETED, RequestStatus.ERROR}, timeout=90)
        wait_status(killed_id, {RequestStatus.COMPLETED, RequestStatus.ERROR}, timeout=90)
    finally:
        second.send_signal(signal.SIGTERM)
        try:
            second.wait(timeout=30)
        except subprocess.TimeoutExpired:
            second.kill()

    after_kill, uninterrupted = end_state(killed, killed_id), end_state(twin, twin_id)
    assert after_kill == uninterrupted, log.read_text()[-3000:]
    assert after_kill["status"] == RequestStatus.COMPLETED
    assert after_kill["remaining"] == {"customers": 0, "page_views": 0, "consents": 0}
    assert len(after_kill["events"]) == 1  # one pseudonymous event, not one per attempt
    assert [o[3:] for o in after_kill["orders"]] == [(True, None), (True, None)]
