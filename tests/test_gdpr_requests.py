"""Subject requests: intake through the API (rights from the policy), bad input, the workflow's
transitions and deadlines, and the analytics-consent filter.  No worker needed here."""

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.test import APIClient

from audit.alerts import Rule
from audit.choices import AuditAction
from audit.models import AuditEvent, SecurityAlert
from compliance import consent, requests
from compliance.models import SubjectRequest
from compliance.requests_choices import RequestStatus
from datasets import exports, report_definitions
from datasets.models import Export
from portal.security_context import scoped
from tests.conftest import Org, token_client
from tests.gdpr_support import ADMIN_URL, REQUESTS_URL, admin_act, dpo_admin, file_request, intake_user, make_subject

pytestmark = pytest.mark.django_db


@pytest.fixture
def world(db):
    org = Org(customers_per_team=2)
    return org, make_subject(org, "R")


def gdpr_events():
    return AuditEvent.objects.filter(action=AuditAction.GDPR_REQUEST)


# --- Intake and status through the API ------------------------------------------------------


@pytest.mark.parametrize("who", ["dpo", "admin", "intake"])
def test_dpo_admin_and_intake_tokens_may_file_a_request(world, who):
    org, subject = world
    user = intake_user() if who == "intake" else getattr(org, who)
    response = file_request(token_client(user), "access", subject)
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["status"] == "received" and body["type"] == "access" and body["channel"] == "web_form"
    assert subject.email not in response.content.decode()  # the subject is shown masked
    assert body["subject"]["email"].startswith("zel***@")
    request = SubjectRequest.objects.get(pk=body["id"])
    assert request.subject_email == subject.email and request.created_by == user
    event = gdpr_events().get(object_ids=[str(request.pk)])
    assert event.extra["action"] == "intake" and event.extra["matched_rows"] == 2
    assert subject.email not in str(event.as_export())


def test_intake_token_may_create_but_not_read(world):
    org, subject = world
    client = token_client(intake_user())
    request_id = file_request(client, "erasure", subject).json()["id"]
    assert client.get(f"{REQUESTS_URL}{request_id}/").status_code == 403
    assert AuditEvent.objects.filter(action=AuditAction.PERMISSION_DENIED).exists()


@pytest.mark.parametrize("who", ["analyst", "manager", "executive"])
def test_other_roles_may_neither_file_nor_read(world, who):
    org, subject = world
    request = requests.intake(org.dpo, requests.Intake("access", "email", email=subject.email))
    client = token_client(getattr(org, who))
    assert file_request(client, "access", subject).status_code == 403
    assert client.get(f"{REQUESTS_URL}{request.pk}/").status_code == 403
    assert SubjectRequest.objects.count() == 1


def test_anonymous_is_401(world):
    _, subject = world
    assert file_request(APIClient(), "access", subject).status_code == 401


def test_dpo_and_admin_read_the_status(world):
    org, subject = world
    request_id = file_request(token_client(org.dpo), "portability", subject, phone=subject.phone).json()["id"]
    for user in (org.dpo, org.admin):
        response = token_client(user).get(f"{REQUESTS_URL}{request_id}/")
        assert response.status_code == 200
        body = response.json()
        assert body["status"] == "received" and body["progress"]["percent"] == 0
        assert body["subject"]["phone"].endswith(subject.phone[-4:]) and subject.phone not in response.content.decode()
    assert token_client(org.dpo).get(f"{REQUESTS_URL}999999/").status_code == 404


def test_dpo_needs_an_mfa_verified_token_to_file(world):
    org, subject = world
    assert file_request(token_client(org.dpo, mfa=False), "access", subject).status_code == 403
    assert SubjectRequest.objects.count() == 0


@pytest.mark.parametrize(
    "body,field",
    [
        ({"type": "access", "email": "nobody@nowhere.example"}, "subject"),
        ({"type": "access", "email": "not-an-email"}, "email"),
        ({"type": "access"}, "subject"),
        ({"type": "forget-me", "email": "SUBJECT"}, "type"),
        ({"type": "access", "phone": "12"}, "phone"),
        ({"type": "access", "email": "SUBJECT", "details": "my card 4242 4242 4242 4242"}, "details"),
        ({"type": "access", "email": "SUBJECT", "purpose": "analytics"}, "purpose"),
        ({"type": "access", "email": "SUBJECT", "channel": "pigeon"}, "channel"),
    ],
)
def test_bad_input_is_400_with_the_field_and_stores_nothing(world, body, field):
    org, subject = world
    body = {k: subject.email if v == "SUBJECT" else v for k, v in body.items()}
    response = token_client(org.dpo).post(REQUESTS_URL, body, format="json")
    assert response.status_code == 400, response.content
    assert field in response.json()
    assert SubjectRequest.objects.count() == 0
    assert not gdpr_events().exists()


def test_subject_is_found_through_the_blind_index_only(world):
    org, subject = world
    with CaptureQueriesContext(connection) as queries:
        requests.intake(org.dpo, requests.Intake("access", "email", email=subject.email, phone=subject.phone))
    customer_reads = [q["sql"] for q in queries if 'FROM "datasets_customer"' in q["sql"]]
    assert customer_reads and all('"email_index" IN' in q and '"phone_index" IN' in q for q in customer_reads)
    assert all(subject.email not in q["sql"] for q in queries.captured_queries)


def test_due_date_is_one_month_after_receipt(world):
    org, subject = world
    request = requests.intake(org.dpo, requests.Intake("access", "email", email=subject.email))
    received = request.received_at
    expected_month = received.month % 12 + 1
    assert request.due_at.month == expected_month and request.due_at > received + timedelta(days=27)


# --- Transitions ----------------------------------------------------------------------------


def _request(org, subject, kind="erasure"):
    return requests.intake(org.dpo, requests.Intake(kind, "email", email=subject.email))


def test_every_transition_is_audited_with_from_and_to(world):
    org, subject = world
    request = _request(org, subject, "access")
    requests.transition(request.pk, org.dpo, "verify")
    requests.transition(request.pk, org.dpo, "approve")
    requests.transition(request.pk, org.dpo, "reject", reason="Manifestly unfounded, see ticket 12")
    steps = [(e.extra["action"], e.extra["from"], e.extra["to"]) for e in gdpr_events().order_by("id")]
    assert steps == [
        ("intake", "", "received"),
        ("verify", "received", "identity_verified"),
        ("approve", "identity_verified", "approved"),
        ("reject", "approved", "rejected"),
    ]
    request.refresh_from_db()
    assert request.rejection_reason == "Manifestly unfounded, see ticket 12" and request.completed_at


@pytest.mark.parametrize(
    "setup,action,reason",
    [
        ([], "approve", ""),  # received -> approved skips identity verification
        ([], "run", ""),
        ([], "complete", ""),
        (["verify"], "retry", ""),
        ([], "reject", ""),  # a rejection needs a reason
        ([], "reject", "short"),
        (["verify", "approve"], "verify", ""),
    ],
)
def test_illegal_transitions_change_nothing(world, setup, action, reason):
    org, subject = world
    request = _request(org, subject)
    for step in setup:
        requests.transition(request.pk, org.dpo, step)
    before = SubjectRequest.objects.values().get(pk=request.pk)
    events = gdpr_events().count()
    with pytest.raises(requests.RequestError):
        requests.transition(request.pk, org.dpo, action, reason=reason)
    assert SubjectRequest.objects.values().get(pk=request.pk) == before
    assert gdpr_events().count() == events


def test_illegal_transition_in_the_admin_is_an_error_message(world):
    org, subject = world
    request = _request(org, subject)
    client = dpo_admin(org.dpo)
    response = admin_act(client, request.pk, "approve")
    assert response.status_code == 302
    messages = [m.message for m in response.wsgi_request._messages]
    assert any("cannot be approved" in m for m in messages), messages
    request.refresh_from_db()
    assert request.status == RequestStatus.RECEIVED
    page = client.get(f"{ADMIN_URL}{request.pk}/change/").content.decode()
    assert 'action="../act/verify/"' in page and 'action="../act/approve/"' not in page


def test_only_the_dpo_works_requests(world):
    org, subject = world
    request = _request(org, subject)
    with pytest.raises(PermissionError):
        requests.transition(request.pk, org.admin, "verify")
    assert dpo_admin(org.admin).post(f"{ADMIN_URL}{request.pk}/act/verify/").status_code == 403
    request.refresh_from_db()
    assert request.status == RequestStatus.RECEIVED


def test_extension_needs_a_reason_and_is_at_most_two_months(world):
    org, subject = world
    request = _request(org, subject)
    due = request.due_at
    with pytest.raises(requests.RequestError) as refused:
        requests.extend(request.pk, org.dpo, reason="")
    assert refused.value.field == "reason"
    request.refresh_from_db()
    assert request.due_at == due and request.extended_months == 0
    requests.extend(request.pk, org.dpo, reason="Complex request: six systems to search", months=1)
    requests.extend(request.pk, org.dpo, reason="Still waiting for the archive restore", months=1)
    request.refresh_from_db()
    assert request.extended_months == 2 and request.due_at == requests.due_date(request.received_at, 2)
    with pytest.raises(requests.RequestError):
        requests.extend(request.pk, org.dpo, reason="One more month, please, really", months=1)
    extensions = gdpr_events().filter(extra__action="extend")
    assert extensions.count() == 2 and extensions.first().reason.startswith("Still waiting")


def test_extension_without_reason_in_the_admin_changes_nothing(world):
    org, subject = world
    request = _request(org, subject)
    response = admin_act(dpo_admin(org.dpo), request.pk, "extend", reason="", months="2")
    assert any("reason" in m.message for m in response.wsgi_request._messages)
    request.refresh_from_db()
    assert request.extended_months == 0


def test_deadline_alerts_for_overdue_and_near_requests(world):
    org, subject = world
    overdue = _request(org, subject)
    near = _request(org, subject, "access")
    far = _request(org, subject, "portability")
    now = timezone.now()
    SubjectRequest.objects.filter(pk=overdue.pk).update(due_at=now - timedelta(days=1))
    SubjectRequest.objects.filter(pk=near.pk).update(due_at=now + timedelta(days=3))
    done = _request(org, subject, "restriction")
    SubjectRequest.objects.filter(pk=done.pk).update(due_at=now - timedelta(days=5), status=RequestStatus.COMPLETED)
    assert requests.deadline_alerts() == {"overdue": 1, "due_soon": 1}
    subjects = dict(SecurityAlert.objects.values_list("subject", "rule"))
    assert subjects[f"gdpr_request:{overdue.pk}"] == Rule.GDPR_OVERDUE
    assert subjects[f"gdpr_request:{near.pk}"] == requests.DUE_SOON_RULE
    assert f"gdpr_request:{far.pk}" not in subjects and f"gdpr_request:{done.pk}" not in subjects
    requests.deadline_alerts()  # the next day's run counts the repeat on the open alert
    assert SecurityAlert.objects.filter(rule=requests.DUE_SOON_RULE).count() == 1


def test_the_queue_is_sorted_by_deadline_and_filtered(world):
    org, subject = world
    late = _request(org, subject, "access")
    early = _request(org, subject, "erasure")
    SubjectRequest.objects.filter(pk=early.pk).update(due_at=timezone.now() + timedelta(days=2))
    client = dpo_admin(org.dpo)
    page = client.get(ADMIN_URL).content.decode()
    assert page.index(f"{ADMIN_URL}{early.pk}/change/") < page.index(f"{ADMIN_URL}{late.pk}/change/")
    assert "days left" in page and "<progress" in page
    filtered = client.get(ADMIN_URL, {"kind__exact": "access"}).content.decode()
    assert f"{ADMIN_URL}{late.pk}/change/" in filtered and f"{ADMIN_URL}{early.pk}/change/" not in filtered
    searched = client.get(ADMIN_URL, {"q": subject.email.upper()}).content.decode()
    assert f"{ADMIN_URL}{late.pk}/change/" in searched


def test_admin_intake_form(world):
    org, subject = world
    client = dpo_admin(org.dpo)
    response = client.post(
        f"{ADMIN_URL}add/", {"kind": "objection", "channel": "letter", "email": subject.email, "purpose": ""}
    )
    assert response.status_code == 302
    request = SubjectRequest.objects.get()
    assert request.kind == "objection" and request.purpose == "analytics" and request.channel == "letter"
    refused = client.post(f"{ADMIN_URL}add/", {"kind": "access", "channel": "letter", "email": "x@unknown.example"})
    assert refused.status_code == 200 and "No customer matches" in refused.content.decode()
    assert SubjectRequest.objects.count() == 1


# --- Analytics leave out withdrawn consent and restricted processing -----------------------


def _report_count(user, dataset: str) -> int:
    with scoped(user):  # as a request runs it: the user's database role and scope
        return report_definitions.run(user, {"dataset": dataset, "aggregate": "count"})[0]["value"]


def test_reports_and_exports_leave_out_withdrawn_and_restricted_subjects(world):
    org, subject = world
    before = {ds: _report_count(org.admin, ds) for ds in ("customers", "orders", "pageviews")}
    with scoped(system=True):
        consent.withdraw([subject.ids[0]], "analytics")
    after = {ds: _report_count(org.admin, ds) for ds in ("customers", "orders", "pageviews")}
    first = subject.customers[0]
    assert after["customers"] == before["customers"] - 1
    assert after["orders"] == before["orders"] - sum(1 for o in subject.orders if o.customer_id == first.pk)
    assert after["pageviews"] == before["pageviews"] - subject.page_views // 2
    # The analyst of the first row's team (North) misses it too, under their own database role.
    assert _report_count(org.analyst, "customers") == 2
    with scoped(system=True):
        consent.restrict([subject.ids[1]])
    assert _report_count(org.admin, "customers") == before["customers"] - 2
    export = Export.objects.create(requested_by=org.admin, dataset="customers", format="csv", purpose="Churn review")
    with scoped(org.admin):
        content, rows = exports.render(org.admin, export)
    assert rows == before["customers"] - 2 and subject.email.encode() not in content
    with scoped(system=True):
        consent.grant([subject.ids[0]], "analytics", notice_version="2025-02")
    assert _report_count(org.admin, "customers") == before["customers"] - 1
    events = AuditEvent.objects.filter(action=AuditAction.CONSENT_CHANGED).order_by("id")
    assert [e.extra["change"] for e in events] == ["granted", "withdrawn", "restricted", "granted"]


def test_consent_history_is_kept(world):
    org, subject = world
    first = subject.ids[0]
    with scoped(system=True):
        consent.withdraw([first], "analytics")
        consent.withdraw([first], "analytics")  # idempotent
        consent.grant([first], "analytics", notice_version="2025-02")
        from compliance.models import ConsentRecord

        history = list(ConsentRecord.objects.filter(customer_id=first, purpose="analytics").order_by("id"))
    assert [(bool(r.granted_at), bool(r.withdrawn_at), r.current) for r in history] == [
        (True, True, False),
        (True, False, True),
    ]
    assert history[1].notice_version == "2025-02"


def test_consent_history_and_erased_register_in_the_admin(world):
    org, subject = world
    client = dpo_admin(org.dpo)
    page = client.get("/admin/compliance/consentrecord/")
    assert page.status_code == 200
    body = page.content.decode()
    assert all(f">{customer_id}<" in body for customer_id in subject.ids)  # read under the system scope
    assert AuditEvent.objects.filter(action=AuditAction.VIEW, resource="consent_record", actor_id=org.dpo.pk).exists()
    assert client.get("/admin/compliance/erasedsubject/").status_code == 200
    admin = dpo_admin(org.admin)
    assert admin.get("/admin/compliance/consentrecord/").status_code == 403  # the DPO's work, not the Admin's
    assert admin.get("/admin/compliance/erasedsubject/").status_code == 200
    assert admin.get(ADMIN_URL).status_code == 200
    assert dpo_admin(org.manager).get(ADMIN_URL).status_code == 403
