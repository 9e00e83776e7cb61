"""Incident response: five stages with timestamps and notes, the GDPR 72-hour breach clock and
its 48/72-hour alerts, and the containment actions in the admin (each audited once)."""

import hashlib
import json
from datetime import timedelta
from pathlib import Path

import pytest
from django.test import Client
from django.utils import timezone

from accounts.models import UserSession
from audit import incidents
from audit.alerts import Rule
from audit.choices import AuditAction, ContainmentAction
from audit.models import AuditEvent, BlockedIP, EvidenceSnapshot, Incident, IncidentStage, SecurityAlert
from audit.services import record
from tests.conftest import token_client
from tests.factories import browser_login

INCIDENTS = "/admin/audit/incident/"
CUSTOMERS = "/api/v1/customers/"


@pytest.fixture(autouse=True)
def _evidence_dir(settings, tmp_path):
    settings.INCIDENT_EVIDENCE_DIR = str(tmp_path / "evidence")


@pytest.fixture(autouse=True)
def _fresh_block_cache(db):
    incidents._drop_blocked_cache()
    yield
    incidents._drop_blocked_cache()


def containment_events(action: str) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(action=AuditAction.INCIDENT_CONTAINMENT, reason=action))


def events_about(incident, action):
    return AuditEvent.objects.filter(action=action, object_ids__contains=[str(incident.pk)])


def contain(client, incident, action, **data):
    return client.post(f"{INCIDENTS}{incident.pk}/contain/{action}/", data)


# --- Stages ------------------------------------------------------------------------------------


def test_stages_move_forward_with_a_timestamp_and_notes_each(org):
    incident = incidents.open_incident("Token leak", actor=org.admin, owner=org.admin, notes="seen in a paste")
    assert incident.stage == "detect"
    first = incident.stages.get()
    assert first.stage == "detect" and first.notes == "seen in a paste" and first.at == incident.opened_at

    incidents.move_to_stage(incident, "contain", actor=org.admin, notes="token revoked")
    incidents.move_to_stage(incident, "investigate", actor=org.admin, notes="reading the trail")
    incident.refresh_from_db()
    assert incident.stage == "investigate"
    entries = list(incident.stages.order_by("at", "id"))
    assert [e.stage for e in entries] == ["detect", "contain", "investigate"]
    assert entries[0].at <= entries[1].at <= entries[2].at
    assert entries[1].notes == "token revoked" and entries[1].by == org.admin

    with pytest.raises(incidents.IncidentError):
        incidents.move_to_stage(incident, "contain", actor=org.admin)
    with pytest.raises(incidents.IncidentError):
        incidents.move_to_stage(incident, "investigate", actor=org.admin)
    changed = AuditEvent.objects.filter(
        action=AuditAction.INCIDENT_STAGE_CHANGED, object_ids__contains=[str(incident.pk)]
    )
    assert changed.count() == 2


def test_the_admin_opens_an_incident_and_moves_its_stage(org):
    client = browser_login(org.admin)
    response = client.post(
        f"{INCIDENTS}add/",
        {
            "title": "Suspicious export",
            "summary": "",
            "stage": "detect",
            "stage_notes": "alert from the large-export rule",
            "affected_subjects": "0",
            "stages-TOTAL_FORMS": "0",
            "stages-INITIAL_FORMS": "0",
            "evidence-TOTAL_FORMS": "0",
            "evidence-INITIAL_FORMS": "0",
        },
    )
    assert response.status_code == 302, response.content[:3000]
    incident = Incident.objects.get(title="Suspicious export")
    assert incident.stages.get().notes == "alert from the large-export rule"
    assert AuditEvent.objects.filter(
        action=AuditAction.INCIDENT_OPENED, object_ids__contains=[str(incident.pk)]
    ).exists()

    detect = incident.stages.get()
    response = client.post(
        f"{INCIDENTS}{incident.pk}/change/",
        {
            "title": "Suspicious export",
            "summary": "",
            "stage": "contain",
            "stage_notes": "account disabled",
            "affected_subjects": "0",
            "stages-TOTAL_FORMS": "1",
            "stages-INITIAL_FORMS": "1",
            "stages-0-id": str(detect.pk),
            "stages-0-incident": str(incident.pk),
            "stages-0-notes": "alert from the large-export rule (confirmed)",
            "evidence-TOTAL_FORMS": "0",
            "evidence-INITIAL_FORMS": "0",
        },
    )
    assert response.status_code == 302, response.content[:3000]
    incident.refresh_from_db()
    assert incident.stage == "contain"
    assert incident.stages.get(stage="contain").notes == "account disabled"
    assert incident.stages.get(stage="detect").notes == "alert from the large-export rule (confirmed)"
    page = client.get(f"{INCIDENTS}{incident.pk}/change/")
    assert page.status_code == 200 and b"Containment" in page.content


# --- The breach clock ----------------------------------------------------------------------------


def breach(hours_ago: float, **fields) -> Incident:
    detected = timezone.now() - timedelta(hours=hours_ago)
    return incidents.open_incident("Breach", is_breach=True, breach_detected_at=detected, **fields)


def clock_alerts(incident) -> set[str]:
    return set(SecurityAlert.objects.filter(subject=f"incident:{incident.pk}").values_list("rule", flat=True))


def test_the_breach_flag_starts_the_72_hour_clock(org):
    incident = incidents.open_incident("Laptop lost", actor=org.admin)
    assert incident.breach_deadline is None
    incident.is_breach = True
    incident.save()
    incidents.breach_fields_changed(incident, {"is_breach": False}, actor=org.admin)
    assert incident.breach_detected_at is not None
    assert incident.breach_deadline == incident.breach_detected_at + timedelta(hours=72)
    assert AuditEvent.objects.filter(
        action=AuditAction.BREACH_RECORDED, object_ids__contains=[str(incident.pk)]
    ).exists()

    client = browser_login(org.admin)
    page = client.get(f"{INCIDENTS}{incident.pk}/change/")
    assert f"{incident.breach_deadline:%Y-%m-%d %H:%M} UTC".encode() in page.content
    assert b"h left" in page.content


def test_breach_alerts_fire_at_48_and_72_hours_and_not_below(org):
    fresh = breach(47.9)
    warn = breach(48.01)
    late = breach(72.01)
    just_before_deadline = breach(71.9)
    not_a_breach = incidents.open_incident(
        "Phishing", is_breach=False, breach_detected_at=timezone.now() - timedelta(days=5)
    )

    raised = incidents.check_breach_deadlines()
    assert clock_alerts(fresh) == set()
    assert clock_alerts(warn) == {Rule.BREACH_NOTIFICATION_DUE}
    assert clock_alerts(just_before_deadline) == {Rule.BREACH_NOTIFICATION_DUE}
    assert clock_alerts(late) == {Rule.BREACH_NOTIFICATION_DUE, Rule.BREACH_NOTIFICATION_OVERDUE}
    assert clock_alerts(not_a_breach) == set()
    assert len(raised) == 4
    overdue = SecurityAlert.objects.get(subject=f"incident:{late.pk}", rule=Rule.BREACH_NOTIFICATION_OVERDUE)
    assert overdue.severity == "critical"

    # Run again: no new alert (one per threshold per incident).
    assert incidents.check_breach_deadlines() == []
    assert SecurityAlert.objects.filter(subject__startswith="incident:").count() == 4


def test_the_beat_task_is_scheduled_and_runs(org, settings):
    from audit.tasks import check_breach_deadlines

    assert settings.CELERY_BEAT_SCHEDULE["audit-breach-deadlines"]["task"] == "audit.tasks.check_breach_deadlines"
    incident = breach(49)
    result = check_breach_deadlines.apply().get()
    assert len(result["raised"]) == 1
    assert clock_alerts(incident) == {Rule.BREACH_NOTIFICATION_DUE}


def test_notifying_the_authority_stops_the_alerts(org):
    notified = breach(80, authority_notified_at=timezone.now() - timedelta(hours=10))
    told_later = breach(50)
    told_later.authority_notified_at = timezone.now()
    told_later.subjects_notified_at = timezone.now()
    told_later.save()
    incidents.breach_fields_changed(told_later, {"is_breach": True}, actor=org.admin)
    assert incidents.check_breach_deadlines() == []
    assert clock_alerts(notified) == set() and clock_alerts(told_later) == set()
    reasons = set(
        AuditEvent.objects.filter(
            action=AuditAction.BREACH_RECORDED, object_ids__contains=[str(told_later.pk)]
        ).values_list("reason", flat=True)
    )
    assert {"authority notified", "subjects notified"} <= reasons


# --- Containment -----------------------------------------------------------------------------


@pytest.fixture
def incident(org):
    alert = SecurityAlert.objects.create(rule="large_export", severity="high", subject=f"user:{org.analyst.pk}")
    ip_alert = SecurityAlert.objects.create(rule="failed_logins_ip", severity="high", subject="ip:203.0.113.9")
    incident = incidents.open_incident("Suspicious reads", actor=org.admin, owner=org.admin)
    incident.alerts.set([alert, ip_alert])
    return incident


def test_disable_the_account(org, incident):
    client = browser_login(org.admin)
    api = token_client(org.analyst, mfa=False)
    assert api.get(CUSTOMERS).status_code == 200
    response = contain(client, incident, ContainmentAction.DISABLE_ACCOUNT, user_id=org.analyst.pk)
    assert response.status_code == 302
    org.analyst.refresh_from_db()
    assert not org.analyst.is_active
    assert api.get(CUSTOMERS).status_code == 401
    [event] = containment_events(ContainmentAction.DISABLE_ACCOUNT)
    assert event.actor_id == org.admin.pk and event.ip_address and event.object_ids[0] == str(incident.pk)
    assert AuditEvent.objects.filter(action=AuditAction.USER_DISABLED, object_ids__contains=[str(org.analyst.pk)])


def test_revoke_sessions_and_tokens(org, incident):
    client = browser_login(org.admin)
    browser_login(org.analyst)
    api = token_client(org.analyst, mfa=False)
    assert UserSession.objects.filter(user_id=org.analyst.pk).exists()
    response = contain(client, incident, ContainmentAction.REVOKE_SESSIONS, user_id=org.analyst.pk)
    assert response.status_code == 302
    assert not UserSession.objects.filter(user_id=org.analyst.pk).exists()
    assert api.get(CUSTOMERS).status_code == 401
    org.analyst.refresh_from_db()
    assert org.analyst.is_active  # revoked, not disabled
    [event] = containment_events(ContainmentAction.REVOKE_SESSIONS)
    assert event.extra["sessions"] >= 1 and event.extra["tokens"] == 1


def test_block_an_ip(org, incident):
    outsider = Client(REMOTE_ADDR="203.0.113.9")
    neighbour = Client(REMOTE_ADDR="203.0.113.10")
    assert outsider.get("/accounts/login/").status_code == 200  # the empty set is cached now
    client = browser_login(org.admin)
    response = contain(client, incident, ContainmentAction.BLOCK_IP, ip="203.0.113.9", reason="brute force")
    assert response.status_code == 302
    assert BlockedIP.objects.get(ip_address="203.0.113.9").incident == incident
    assert outsider.get("/accounts/login/").status_code == 403
    assert outsider.get(CUSTOMERS).status_code == 403
    assert neighbour.get("/accounts/login/").status_code == 200
    [event] = containment_events(ContainmentAction.BLOCK_IP)
    assert event.extra["ip"] == "203.0.113.9" and event.actor_id == org.admin.pk
    assert contain(client, incident, ContainmentAction.BLOCK_IP, ip="not-an-ip").status_code == 400
    assert len(containment_events(ContainmentAction.BLOCK_IP)) == 1


def test_blocked_addresses_are_read_from_the_database_when_the_cache_fails(org, incident, settings):
    incidents.block_ip(incident, "198.51.100.4", actor=org.admin)
    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": "redis://127.0.0.1:1/0"}
    }
    # (Django's setting_changed signal rebuilds the cache handler.)
    assert Client(REMOTE_ADDR="198.51.100.4").get("/accounts/login/").status_code == 403
    assert Client(REMOTE_ADDR="198.51.100.5").get("/accounts/login/").status_code == 200


def test_preserve_evidence(org, incident):
    record(AuditAction.VIEW, actor=org.analyst, resource="customer", object_ids=[1], rows=1)
    record(AuditAction.EXPORT_DATA, actor=org.analyst, resource="customer", rows=5, reason="canary-reason-7731")
    record(AuditAction.VIEW, actor=org.manager, resource="customer", object_ids=[2], rows=1)  # not a subject
    client = browser_login(org.admin)
    response = contain(client, incident, ContainmentAction.PRESERVE_EVIDENCE)
    assert response.status_code == 302
    snapshot = EvidenceSnapshot.objects.get(incident=incident)
    body = incidents.read_evidence(snapshot)
    assert hashlib.sha256(body).hexdigest() == snapshot.sha256
    lines = [json.loads(line) for line in body.decode().splitlines()]
    assert len(lines) == snapshot.events >= 2
    assert {line["actor_id"] for line in lines} == {org.analyst.pk}
    assert any(line.get("reason") == "canary-reason-7731" for line in lines)
    assert all(line["hash"] for line in lines)
    stored = Path(snapshot.path).read_bytes()
    assert b"canary-reason-7731" not in stored and org.analyst.email.encode() not in stored
    assert b'"action"' not in stored and hashlib.sha256(stored).hexdigest() != snapshot.sha256
    [event] = containment_events(ContainmentAction.PRESERVE_EVIDENCE)
    assert event.rows == snapshot.events and event.extra["sha256"] == snapshot.sha256
    # Later events do not change the frozen export.
    record(AuditAction.VIEW, actor=org.analyst, resource="customer", object_ids=[3], rows=1)
    assert incidents.read_evidence(snapshot) == body


def test_containment_is_post_only(org, incident):
    client = browser_login(org.admin)
    assert client.get(f"{INCIDENTS}{incident.pk}/contain/block_ip/").status_code == 405
    assert contain(client, incident, "format_disk").status_code == 404
    assert not AuditEvent.objects.filter(action=AuditAction.INCIDENT_CONTAINMENT).exists()


# --- Who reaches the incident admin ----------------------------------------------------------


@pytest.mark.parametrize("who", ["manager"])
def test_other_staff_cannot_reach_incidents(org, incident, who):
    client = browser_login(getattr(org, who))
    assert client.get(INCIDENTS).status_code == 403
    assert client.get(f"{INCIDENTS}{incident.pk}/change/").status_code in (302, 403)
    assert contain(client, incident, ContainmentAction.DISABLE_ACCOUNT, user_id=org.analyst.pk).status_code == 403
    assert contain(client, incident, ContainmentAction.BLOCK_IP, ip="192.0.2.1").status_code == 403
    assert client.get("/admin/audit/blockedip/").status_code == 403
    org.analyst.refresh_from_db()
    assert org.analyst.is_active and not BlockedIP.objects.exists()
    assert not AuditEvent.objects.filter(action=AuditAction.INCIDENT_CONTAINMENT).exists()


@pytest.mark.parametrize("who", ["analyst", "executive"])
def test_non_staff_never_reach_the_admin(org, incident, who):
    client = browser_login(getattr(org, who))
    assert client.get(INCIDENTS).status_code == 302  # to the admin login
    assert contain(client, incident, ContainmentAction.BLOCK_IP, ip="192.0.2.1").status_code == 302
    assert not BlockedIP.objects.exists()


def test_the_dpo_edits_breach_fields_only(org, incident):
    client = browser_login(org.dpo)
    assert client.get(INCIDENTS).status_code == 200
    page = client.get(f"{INCIDENTS}{incident.pk}/change/")
    assert page.status_code == 200 and b'id="containment"' not in page.content
    assert contain(client, incident, ContainmentAction.BLOCK_IP, ip="192.0.2.1").status_code == 403
    assert client.get(f"{INCIDENTS}add/").status_code == 403
    response = client.post(
        f"{INCIDENTS}{incident.pk}/change/",
        {
            "title": "renamed by the DPO",
            "stage": "learn",
            "is_breach": "on",
            "affected_subjects": "120",
            "data_categories": "contact,payment",
            "stages-TOTAL_FORMS": "1",
            "stages-INITIAL_FORMS": "1",
            "stages-0-id": str(incident.stages.get().pk),
            "stages-0-incident": str(incident.pk),
            "evidence-TOTAL_FORMS": "0",
            "evidence-INITIAL_FORMS": "0",
        },
    )
    assert response.status_code == 302, response.content[:3000]
    incident.refresh_from_db()
    assert incident.title == "Suspicious reads" and incident.stage == "detect"  # not the DPO's fields
    assert incident.is_breach and incident.breach_detected_at and incident.affected_subjects == 120
    assert incident.data_categories == ["contact", "payment"]
    assert IncidentStage.objects.filter(incident=incident).count() == 1


def test_evidence_rows_are_append_only_for_the_portal(org, incident):
    from django.db import DatabaseError, transaction

    snapshot = incidents.preserve_evidence(incident, actor=org.admin)
    with pytest.raises(DatabaseError), transaction.atomic():
        EvidenceSnapshot.objects.filter(pk=snapshot.pk).update(sha256="0" * 64)
    with pytest.raises(DatabaseError), transaction.atomic():
        EvidenceSnapshot.objects.filter(pk=snapshot.pk).delete()
    assert EvidenceSnapshot.objects.get(pk=snapshot.pk).sha256 == snapshot.sha256
