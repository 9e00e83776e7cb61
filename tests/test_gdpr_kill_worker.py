"""Killing the worker in the middle of an erasure, then restarting it, ends in the same state as an
uninterrupted erasure: the killed transaction leaves nothing half-erased, the late-acknowledged
message is delivered again, and the second run does the whole subject once.

The workers are real ``celery worker`` processes on the test database and the test Redis.  The
first one is told (test-only environment hook, read only when set) to pause after deleting the
page views, and is SIGKILLed there."""

import time

import pytest
from auditlog.models import LogEntry
from django.contrib.contenttypes.models import ContentType
from django.core.cache import cache

from audit.choices import AuditAction
from audit.models import AuditEvent
from compliance import erasure, requests
from compliance.models import ConsentRecord, ErasedSubject, SubjectRequest
from compliance.requests_choices import RequestStatus
from datasets.models import Customer, Order, PageView
from portal.security_context import scoped
from tests import worker_process
from tests.conftest import BOTH_DATABASES, Org
from tests.gdpr_support import make_subject, wait_status

pytestmark = [pytest.mark.django_db(transaction=True, databases=BOTH_DATABASES), pytest.mark.worker]
VISIBILITY = 5


def reached_step(request_id: int, step: str) -> bool:
    return (cache.get(requests.progress_key(request_id)) or {}).get("step") == step


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


def test_killing_the_worker_mid_erasure_then_restarting_ends_like_an_uninterrupted_run(tmp_path):
    worker_process.forget_pending_messages()
    org = Org(customers_per_team=1)
    killed, twin = make_subject(org, "K"), make_subject(org, "T")
    log = tmp_path / "workers.log"

    # A message of a killed worker comes back after VISIBILITY seconds (default: an hour).
    killed_id, _ = worker_process.kill_when(
        lambda request_id: reached_step(request_id, "page_views"),
        then=lambda: queue_erasure(org, killed),
        what="the erasure to reach step 'page_views'",
        log=log,
        name="gdpr-kill",
        pause_after="page_views",
        visibility_timeout=VISIBILITY,
    )
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
    time.sleep(VISIBILITY + 1)
    with worker_process.running(log, name="gdpr-kill", visibility_timeout=VISIBILITY):
        twin_id = queue_erasure(org, twin)  # the uninterrupted run, on the same worker
        wait_status(twin_id, {RequestStatus.COMPLETED, RequestStatus.ERROR}, timeout=90)
        wait_status(killed_id, {RequestStatus.COMPLETED, RequestStatus.ERROR}, timeout=90)

    after_kill, uninterrupted = end_state(killed, killed_id), end_state(twin, twin_id)
    assert after_kill == uninterrupted, log.read_text()[-3000:]
    assert after_kill["status"] == RequestStatus.COMPLETED
    assert after_kill["remaining"] == {"customers": 0, "page_views": 0, "consents": 0}
    assert len(after_kill["events"]) == 1  # one pseudonymous event, not one per attempt
    assert [o[3:] for o in after_kill["orders"]] == [(True, None), (True, None)]
