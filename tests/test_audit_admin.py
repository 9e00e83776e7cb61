"""The audit viewer: read-only, policy-scoped (Admin all, DPO GDPR events), index-served
search, investigation pages and bounded CSV / JSON Lines exports."""

import csv
import io
import json

import pytest
from django.db import connection

from audit import services
from audit.choices import AuditAction
from audit.models import AuditEvent
from tests.factories import browser_login

EVENTS = "/admin/audit/auditevent/"


@pytest.fixture
def trail(org):
    """A few events by two people, one of them a GDPR event."""
    north = org.customers["North"][0]
    services.record(AuditAction.VIEW, actor=org.analyst, resource="customer", object_ids=[north.pk], rows=1)
    services.record(AuditAction.EXPORT_DATA, actor=org.manager, resource="customer", object_ids=[], rows=250)
    services.record(AuditAction.GDPR_EXPORT, actor=org.dpo, resource="customer", object_ids=[north.pk], rows=1)
    services.record(AuditAction.LOGIN, actor=org.analyst, resource="session")
    return north


def body_of(response) -> str:
    if response.streaming:
        return b"".join(response.streaming_content).decode()
    return response.content.decode()


def test_admin_sees_every_event_and_can_filter(org, trail):
    client = browser_login(org.admin)
    response = client.get(EVENTS)
    assert response.status_code == 200
    shown = {e.pk for e in response.context["cl"].result_list}
    assert shown >= set(
        AuditEvent.objects.filter(actor_id__in=[org.analyst.pk, org.manager.pk]).values_list("id", flat=True)
    )
    by_action = client.get(EVENTS, {"action__exact": "EXPORT_DATA"}).context["cl"].result_list
    assert {e.action for e in by_action} == {"EXPORT_DATA"}
    by_actor = client.get(EVENTS, {"actor": org.analyst.email}).context["cl"].result_list
    assert {e.actor_id for e in by_actor} == {org.analyst.pk} and len(by_actor) >= 2
    by_search = client.get(EVENTS, {"q": str(org.manager.pk)}).context["cl"].result_list
    assert {e.actor_id for e in by_search} == {org.manager.pk}
    by_resource = client.get(EVENTS, {"resource": "session", "success__exact": "1"}).context["cl"].result_list
    assert by_resource and {e.resource for e in by_resource} == {"session"}
    future = client.get(EVENTS, {"from": "2999-01-01"}).context["cl"].result_list
    assert list(future) == []


def test_the_dpo_sees_gdpr_events_only(org, trail):
    client = browser_login(org.dpo)
    response = client.get(EVENTS)
    assert response.status_code == 200
    actions = {e.action for e in response.context["cl"].result_list}
    assert actions == {"GDPR_EXPORT"}
    other = AuditEvent.objects.filter(action="VIEW").first()
    assert client.get(f"{EVENTS}{other.pk}/change/").status_code in (302, 404)


@pytest.mark.parametrize("who", ["manager"])
def test_other_staff_cannot_read_the_trail(org, trail, who):
    client = browser_login(getattr(org, who))
    assert client.get(EVENTS).status_code == 403
    assert client.get(f"{EVENTS}export/", {"from": "2000-01-01", "to": "2999-01-01"}).status_code == 403
    assert client.get("/admin/auditlog/logentry/").status_code == 403


def test_nothing_can_be_added_changed_or_deleted(org, trail):
    client = browser_login(org.admin)
    event = AuditEvent.objects.first()
    assert client.get(f"{EVENTS}add/").status_code == 403
    assert client.post(f"{EVENTS}{event.pk}/delete/", {"post": "yes"}).status_code == 403
    page = client.get(f"{EVENTS}{event.pk}/change/")
    assert page.status_code == 200 and b'type="submit"' not in page.content.split(b'id="content-main"')[1][:20000]
    assert client.post(f"{EVENTS}{event.pk}/change/", {"reason": "edited"}).status_code == 403
    assert AuditEvent.objects.get(pk=event.pk).reason == event.reason
    entries = client.get("/admin/auditlog/logentry/")
    assert entries.status_code == 200
    some_entry = entries.context["cl"].result_list[0]
    assert client.post(f"/admin/auditlog/logentry/{some_entry.pk}/delete/", {"post": "yes"}).status_code == 403


def test_everything_one_user_did_between_two_times(org, trail):
    client = browser_login(org.admin)
    response = client.get(
        f"{EVENTS}investigate/user/", {"actor": org.analyst.email, "from": "2000-01-01", "to": "2999-01-01"}
    )
    assert response.status_code == 200
    events = response.context["events"]
    assert {e.actor_id for e in events} == {org.analyst.pk}
    assert {"VIEW", "LOGIN"} <= {e.action for e in events}
    empty = client.get(f"{EVENTS}investigate/user/", {"actor": org.analyst.email, "to": "2000-01-02"})
    assert list(empty.context["events"]) == []


def test_everyone_who_touched_one_customer(org, trail):
    client = browser_login(org.admin)
    response = client.get(f"{EVENTS}investigate/customer/", {"customer": trail.pk})
    assert response.status_code == 200
    assert {actor_id for actor_id, _ in response.context["people"]} == {org.analyst.pk, org.dpo.pk}
    assert response.context["changes"]  # its creation in the change history
    assert client.get(f"{EVENTS}investigate/customer/", {"customer": "x' OR 1=1"}).status_code == 400


def test_exports_as_csv_and_json_lines_are_audited(org, trail):
    client = browser_login(org.admin)
    expected = AuditEvent.objects.count()
    response = client.get(f"{EVENTS}export/", {"from": "2000-01-01", "to": "2999-01-01", "format": "csv"})
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(body_of(response))))
    assert len(rows) == expected
    assert {"id", "timestamp", "action", "actor_email", "hash", "prev_hash"} <= set(rows[0])
    exported = AuditEvent.objects.filter(action=AuditAction.EXPORT_DATA, resource="audit_event").order_by("-id").first()
    assert exported.actor_id == org.admin.pk and exported.rows == expected

    response = client.get(f"{EVENTS}export/", {"from": "2000-01-01", "to": "2999-01-01", "format": "jsonl"})
    lines = [json.loads(line) for line in body_of(response).splitlines()]
    assert len(lines) == expected + 1  # the CSV export's own event is in the period now
    assert all(line["hash"] and "rows" in line or "action" in line for line in lines)


def test_exports_are_bounded(org, trail, settings):
    settings.AUDIT_EXPORT_MAX_ROWS = 2
    client = browser_login(org.admin)
    response = client.get(f"{EVENTS}export/", {"from": "2000-01-01", "to": "2999-01-01"})
    assert response.status_code == 400
    assert client.get(f"{EVENTS}export/", {"from": "yesterday", "to": "now"}).status_code == 400


def test_the_dpo_export_holds_gdpr_events_only(org, trail):
    client = browser_login(org.dpo)
    response = client.get(f"{EVENTS}export/", {"from": "2000-01-01", "to": "2999-01-01", "format": "jsonl"})
    actions = {json.loads(line)["action"] for line in body_of(response).splitlines()}
    assert actions == {"GDPR_EXPORT"}


def _plan(queryset) -> str:
    sql, params = queryset.query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute("EXPLAIN " + sql, params)
        return "\n".join(row[0] for row in cursor.fetchall())


@pytest.mark.parametrize(
    "filters,index",
    [
        ({"actor_id": 1, "timestamp__gte": "2025-01-01"}, "audit_event_actor_ts"),
        ({"actor_email": "a@b.test", "timestamp__gte": "2025-01-01"}, "audit_event_email_ts"),
        ({"resource": "customer", "timestamp__gte": "2025-01-01"}, "audit_event_resource_ts"),
        ({"action": "LOGIN", "timestamp__gte": "2025-01-01"}, "audit_event_action_ts"),
        ({"object_ids__contains": ["42"]}, "audit_event_object_ids"),
    ],
)
def test_searches_are_served_by_an_index(db, filters, index):
    plan = _plan(AuditEvent.objects.filter(**filters).order_by("-timestamp")[:100])
    assert index in plan, plan
    assert "Seq Scan" not in plan
