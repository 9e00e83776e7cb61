"""Each request type end to end: filed through the API, worked in the admin by the DPO, carried
out by a real Celery worker on real Redis (access, portability, erasure, restriction, objection)
or by the DPO's form (rectification), and read back through the API."""

import hashlib
import io
import json
import zipfile
from decimal import Decimal

import pytest
from auditlog.models import LogEntry
from celery.contrib.testing.worker import start_worker
from django.contrib.contenttypes.models import ContentType
from django.core.management import call_command
from django.db import transaction

from audit.choices import AuditAction
from audit.models import AuditEvent
from compliance import erasure, requests, subject_export
from compliance.models import AccessPackage, ConsentRecord, ErasedSubject, ProcessingRestriction, SubjectRequest
from compliance.requests_choices import RequestStatus
from datasets.models import AccessGrant, Customer, Order, PageView
from portal.celery import app
from portal.security_context import scoped
from tests.conftest import BOTH_DATABASES, Org, token_client
from tests.gdpr_support import (
    ADMIN_URL,
    REQUESTS_URL,
    admin_act,
    dpo_admin,
    file_request,
    intake_user,
    make_subject,
    run_through_admin,
    traces,
    wait_status,
)

pytestmark = pytest.mark.django_db(transaction=True, databases=BOTH_DATABASES)


@pytest.fixture(scope="module")
def worker(django_db_blocker):
    with django_db_blocker.unblock(), start_worker(app, perform_ping_check=False, pool="solo", loglevel="WARNING"):
        yield


@pytest.fixture
def world(worker):
    org = Org(customers_per_team=2)
    return org, make_subject(org, "W"), make_subject(org, "X", old_order=False)


def _api_status(user, request_id) -> dict:
    response = token_client(user).get(f"{REQUESTS_URL}{request_id}/")
    assert response.status_code == 200
    return response.json()


def _download(client, package_link: str) -> bytes:
    response = client.get(package_link)
    assert response.status_code == 200, response.status_code
    assert response["Content-Type"] == "application/zip"
    return response.content


def _package_link(client, request_id: int) -> str:
    page = client.get(f"{ADMIN_URL}{request_id}/change/").content.decode()
    start = page.index(f"{ADMIN_URL}{request_id}/packages/")
    return page[start : page.index('"', start)].replace("&amp;", "&")


# --- Access and portability -----------------------------------------------------------------


def test_access_request_end_to_end(world, settings):
    org, subject, other = world
    # Someone read the subject's rows: those audit events belong in the package.
    with scoped(org.manager):
        from audit import services as audit

        audit.record(AuditAction.VIEW, actor=org.manager, resource="customer", object_ids=[subject.ids[0], 999])
    request_id = file_request(token_client(intake_user()), "access", subject).json()["id"]
    client = dpo_admin(org.dpo)
    run_through_admin(client, request_id)
    request = wait_status(request_id, {RequestStatus.AWAITING_REVIEW, RequestStatus.ERROR})
    assert request.status == RequestStatus.AWAITING_REVIEW, request.error_detail
    status = _api_status(org.dpo, request_id)
    assert status["status"] == "awaiting_review" and status["progress"]["percent"] == 100

    package = AccessPackage.objects.get(request_id=request_id)
    raw = (subject_export.package_dir() / package.file_name).read_bytes()
    assert subject.email.encode() not in raw  # encrypted at rest
    content = _download(client, _package_link(client, request_id))
    assert hashlib.sha256(content).hexdigest() == package.sha256
    with zipfile.ZipFile(io.BytesIO(content)) as archive:
        names = set(archive.namelist())
        data = json.loads(archive.read("data.json"))
        customers_csv = archive.read("customers.csv").decode()
    assert names == {
        "data.json",
        "README.txt",
        *(f"{s}.csv" for s in ("customers", "orders", "page_views", "consents", "restrictions", "audit_events")),
    }
    assert sorted(c["id"] for c in data["customers"]) == sorted(subject.ids)
    assert {c["email"] for c in data["customers"]} == {subject.email} and subject.name in customers_csv
    assert {Decimal(o["amount"]) for o in data["orders"]} == {o.amount for o in subject.orders}
    assert len(data["page_views"]) == subject.page_views and len(data["consents"]) == 2
    assert other.email not in json.dumps(data)  # nobody else's data
    views = [e for e in data["audit_events"] if e["action"] == "VIEW"]
    assert views and views[0]["actor"] == org.manager.email and views[0]["object_ids"] == [str(subject.ids[0])]
    assert data["manifest"]["sections"]["page_views"] == subject.page_views
    assert AuditEvent.objects.filter(action=AuditAction.GDPR_EXPORT, object_ids=[str(request_id)]).count() == 2

    # Review: redact third-party data (the staff who read the rows), then deliver.
    assert admin_act(client, request_id, "redact").status_code == 302
    redacted = subject_export.latest_package(SubjectRequest.objects.get(pk=request_id))
    assert redacted.third_party_redacted and redacted.sha256 != package.sha256
    with zipfile.ZipFile(io.BytesIO(_download(client, _package_link(client, request_id)))) as archive:
        data = json.loads(archive.read("data.json"))
    assert org.manager.email not in json.dumps(data) and data["manifest"]["third_party_data_redacted"]
    assert {c["email"] for c in data["customers"]} == {subject.email}

    # The link is the DPO's own, and it expires.
    link = _package_link(client, request_id)
    other_dpo = dpo_admin(_second_dpo())
    assert other_dpo.get(link).status_code == 404
    assert client.get(link.split("?")[0] + "?token=forged").status_code == 404
    settings.GDPR_PACKAGE_LINK_SECONDS = -1
    assert client.get(link).status_code == 404
    settings.GDPR_PACKAGE_LINK_SECONDS = 7 * 24 * 3600

    assert admin_act(client, request_id, "complete").status_code == 302
    assert _api_status(org.admin, request_id)["status"] == "completed"


def _second_dpo():
    from tests.factories import make_user

    return make_user("DPO")


def test_portability_request_end_to_end(world):
    org, subject, _ = world
    request_id = file_request(token_client(org.dpo), "portability", subject, phone=subject.phone).json()["id"]
    client = dpo_admin(org.dpo)
    run_through_admin(client, request_id)
    assert wait_status(request_id, {RequestStatus.AWAITING_REVIEW}).status == RequestStatus.AWAITING_REVIEW
    with zipfile.ZipFile(io.BytesIO(_download(client, _package_link(client, request_id)))) as archive:
        names = set(archive.namelist())
        data = json.loads(archive.read("data.json"))
    assert "audit_events.csv" not in names and "audit_events" not in data  # data the subject provided
    assert len(data["customers"]) == 2 and len(data["orders"]) == len(subject.orders)
    admin_act(client, request_id, "complete")
    assert _api_status(org.dpo, request_id)["status"] == "completed"


# --- Erasure --------------------------------------------------------------------------------


def _rectify_first(org, subject):
    """Give the subject's rows a change history (auditlog UPDATE diffs) before the erasure."""
    request = requests.intake(org.dpo, requests.Intake("rectification", "email", email=subject.email))
    requests.transition(request.pk, org.dpo, "verify")
    requests.transition(request.pk, org.dpo, "approve")
    from compliance import requests_rectification

    requests_rectification.rectify(
        request.pk, org.dpo, changes={"name": subject.name + " Jr"}, reason="Subject reported a typo"
    )
    subject.name = subject.name + " Jr"


def test_erasure_end_to_end_leaves_no_trace(world):
    org, subject, other = world
    _rectify_first(org, subject)
    canaries = subject.canaries()
    assert traces(canaries), "the scan must see the subject before the erasure"
    order_ids = [o.pk for o in subject.orders]
    request_id = file_request(token_client(intake_user()), "erasure", subject, phone=subject.phone).json()["id"]
    client = dpo_admin(org.dpo)
    run_through_admin(client, request_id)
    request = wait_status(request_id, {RequestStatus.COMPLETED, RequestStatus.ERROR})
    assert request.status == RequestStatus.COMPLETED, request.error_detail

    assert traces(canaries) == []
    assert traces(other.canaries())  # the other subject is untouched
    with scoped(system=True):
        assert not Customer.objects.filter(pk__in=subject.ids).exists()
        assert not PageView.objects.filter(customer_id__in=subject.ids).exists()
        assert not ConsentRecord.objects.filter(customer_id__in=subject.ids).exists()
        kept = list(Order.objects.filter(pk__in=order_ids).order_by("pk"))
        grant = AccessGrant.objects.get(requester=org.analyst, customer__isnull=True)
    # Orders under the bookkeeping duty stay, with their amounts and teams, linked to nobody;
    # the one past the retention period is gone.
    assert [(o.amount, o.customer_id, o.anonymised) for o in kept] == [(Decimal("42.50"), None, True)] * 2
    assert {o.team_id for o in kept} == {org.north.pk, org.east.pk}
    assert "[erased]" in grant.reason

    event = AuditEvent.objects.get(action=AuditAction.USER_DELETED)
    counts = event.extra["counts"]
    assert counts["datasets_customer"] == 2 and counts["datasets_order_anonymised"] == 2
    assert counts["datasets_order_deleted"] == 1 and counts["datasets_pageview"] == subject.page_views
    assert counts["compliance_consentrecord"] == 2 and counts["auditlog_logentry_redacted"] > 0
    assert event.extra["subject_hash"] == erasure.subject_hash(subject.email) and not event.object_ids
    assert ErasedSubject.objects.get().subject_hash == event.extra["subject_hash"]
    request.refresh_from_db()
    assert request.subject_email == "" and request.subject_hash == event.extra["subject_hash"]
    status = _api_status(org.dpo, request_id)
    assert status["status"] == "completed" and status["subject"] == {"email": "", "phone": "", "erased": True}
    customer_type = ContentType.objects.get_for_model(Customer)
    diffs = LogEntry.objects.filter(content_type=customer_type, object_id__in=subject.ids)
    assert diffs.exists() and all(set(sum(d.changes.values(), [])) == {"[erased]"} for d in diffs)

    # Idempotent: running the erasure again changes nothing and writes no second event.
    state = _state()
    with transaction.atomic():
        erasure.erase(erasure.SubjectKeys.of(subject.email, subject.phone), actor=org.dpo)
    assert _state() == state
    assert AuditEvent.objects.filter(action=AuditAction.USER_DELETED).count() == 1


def _state() -> dict:
    with scoped(system=True):
        return {
            "customers": Customer.objects.count(),
            "orders": sorted(Order.objects.values_list("pk", "customer_id", "amount", "anonymised")),
            "page_views": PageView.objects.count(),
            "consents": ConsentRecord.objects.count(),
            "erased": list(ErasedSubject.objects.values_list("subject_hash", "counts")),
            "events": AuditEvent.objects.filter(action=AuditAction.USER_DELETED).count(),
        }


def test_reapply_erasures_after_a_restore(world, tmp_path, settings):
    org, subject, _ = world
    settings.GDPR_ERASURE_LEDGER = str(tmp_path / "ledger.jsonl")
    request_id = file_request(token_client(org.dpo), "erasure", subject).json()["id"]
    run_through_admin(dpo_admin(org.dpo), request_id)
    assert wait_status(request_id, {RequestStatus.COMPLETED}).status == RequestStatus.COMPLETED
    erased = ErasedSubject.objects.get()
    assert (tmp_path / "ledger.jsonl").read_text().count(erased.subject_hash) == 1
    # "Restore" an older backup: the subject's row is back, and the register row is not.
    from tests.factories import CustomerFactory

    back = CustomerFactory(team=org.west, name=subject.name, email=subject.email, phone=subject.phone)
    with scoped(system=True):
        Customer.objects.filter(pk=back.pk).update(created_at=erased.erased_at.replace(year=erased.erased_at.year - 1))
    ErasedSubject.objects.all().delete()
    # A new customer with the same email who signed up after the erasure is not erased.
    newcomer = CustomerFactory(team=org.west, name="Someone New", email=subject.email)
    out = io.StringIO()
    call_command("reapply_erasures", stdout=out)
    assert "1 restored from the ledger" in out.getvalue() and "1 customer row" in out.getvalue()
    with scoped(system=True):
        assert not Customer.objects.filter(pk=back.pk).exists()
        assert Customer.objects.filter(pk=newcomer.pk).exists()
    assert ErasedSubject.objects.get().reapplied_count == 1
    assert AuditEvent.objects.filter(action=AuditAction.USER_DELETED).count() == 2


def test_failed_task_marks_error_with_the_step_and_retry_completes(world):
    org, subject, _ = world
    request_id = file_request(token_client(org.dpo), "erasure", subject).json()["id"]
    client = dpo_admin(org.dpo)
    for action in ("verify", "approve"):
        admin_act(client, request_id, action)
    # The DPO is disabled between pressing "run" and the task starting: the task refuses.
    with transaction.atomic():
        requests.transition(request_id, org.dpo, "run")
        type(org.dpo).objects.filter(pk=org.dpo.pk).update(is_active=False)
    request = wait_status(request_id, {RequestStatus.ERROR})
    assert request.error_step == "start" and request.error_detail == "PermissionError"
    with scoped(system=True):
        assert Customer.objects.filter(pk__in=subject.ids).count() == 2  # nothing was erased
    type(org.dpo).objects.filter(pk=org.dpo.pk).update(is_active=True)
    assert admin_act(dpo_admin(org.dpo), request_id, "retry").status_code == 302
    assert wait_status(request_id, {RequestStatus.COMPLETED}).attempts == 2
    events = AuditEvent.objects.filter(action=AuditAction.GDPR_REQUEST, object_ids=[str(request_id)]).order_by("id")
    assert [e.extra["action"] for e in events] == ["intake", "verify", "approve", "run", "error", "retry", "finish"]


# --- Rectification, restriction, objection --------------------------------------------------


def test_rectification_through_the_admin(world):
    org, subject, _ = world
    request_id = file_request(token_client(org.dpo), "rectification", subject, details="My surname is misspelt").json()[
        "id"
    ]
    client = dpo_admin(org.dpo)
    admin_act(client, request_id, "verify")
    admin_act(client, request_id, "approve")
    page = client.get(f"{ADMIN_URL}{request_id}/rectify/")
    assert page.status_code == 200 and subject.email in page.content.decode()  # the DPO sees the values
    refused = client.post(f"{ADMIN_URL}{request_id}/rectify/", {"email": "zelda@new.example", "reason": ""})
    assert refused.status_code == 200
    with scoped(system=True):
        assert Customer.objects.by_email(subject.email).count() == 2  # nothing changed
    response = client.post(
        f"{ADMIN_URL}{request_id}/rectify/",
        {"name": "Zelda Quixote", "email": "Zelda@New.example", "reason": "Subject sent proof of the new address"},
    )
    assert response.status_code == 302
    with scoped(system=True):
        assert Customer.objects.by_email("zelda@new.example").count() == 2  # blind index recomputed
        assert not Customer.objects.by_email(subject.email).exists()
        assert {c.name for c in Customer.objects.filter(pk__in=subject.ids)} == {"Zelda Quixote"}
    event = AuditEvent.objects.get(action=AuditAction.GDPR_RECTIFICATION)
    assert event.extra["fields"] == ["email", "name"] and event.reason == "Subject sent proof of the new address"
    assert "Zelda Quixote" not in json.dumps(event.as_export())
    diff = LogEntry.objects.filter(content_type=ContentType.objects.get_for_model(Customer)).latest("id")
    assert diff.changes["name"] == ["[redacted]", "[redacted]"]
    assert _api_status(org.admin, request_id)["status"] == "completed"
    assert client.post(f"{ADMIN_URL}{request_id}/act/run/").status_code == 302  # refused, not run
    assert SubjectRequest.objects.get(pk=request_id).status == RequestStatus.COMPLETED


def test_restriction_and_objection_through_api_admin_and_worker(world):
    org, subject, other = world
    client = dpo_admin(org.dpo)
    restriction = file_request(token_client(org.dpo), "restriction", other).json()["id"]
    objection = file_request(token_client(org.dpo), "objection", subject, purpose="analytics").json()["id"]
    for request_id in (restriction, objection):
        run_through_admin(client, request_id)
        assert wait_status(request_id, {RequestStatus.COMPLETED}).status == RequestStatus.COMPLETED
    with scoped(system=True):
        assert ProcessingRestriction.objects.filter(customer_id__in=other.ids, lifted_at__isnull=True).count() == 2
        withdrawn = ConsentRecord.objects.filter(customer_id__in=subject.ids, current=True, purpose="analytics")
        assert all(c.withdrawn_at for c in withdrawn) and withdrawn.count() == 2
    from datasets import report_definitions

    with scoped(org.admin):
        total = report_definitions.run(org.admin, {"dataset": "customers", "aggregate": "count"})[0]["value"]
    assert total == 8  # 4 teams x 2, both subjects (2 rows each) left out
    assert _api_status(org.dpo, objection)["status"] == "completed"


def test_a_request_whose_message_was_lost_is_sent_again(world):
    org, subject, _ = world
    request = requests.intake(org.dpo, requests.Intake("objection", "email", email=subject.email))
    for action in ("verify", "approve"):
        requests.transition(request.pk, org.dpo, action)
    # "run" committed but its message never reached Redis (e.g. Redis was down at that moment).
    from datetime import timedelta

    from django.utils import timezone

    SubjectRequest.objects.filter(pk=request.pk).update(
        status=RequestStatus.IN_PROGRESS, run_by=org.dpo, run_started_at=timezone.now() - timedelta(hours=1)
    )
    from compliance.requests_tasks import requeue_stalled_requests

    assert requeue_stalled_requests.apply().get() == 1
    assert wait_status(request.pk, {RequestStatus.COMPLETED}).result["consents_withdrawn"] == 2
