"""The evidence pack: one ZIP per date range with a manifest of SHA-256s; what goes in follows what
the requester may read; the pack itself is audited."""

import hashlib
import io
import json
import zipfile
from datetime import date, timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone

from accounts.policy import Role
from audit import services as audit
from audit.choices import GDPR_ACTIONS
from audit.models import AuditEvent
from compliance import checklist, evidence
from compliance.governance_choices import ChecklistItem, SnapshotTrigger
from compliance.governance_models import Vendor, VendorAssessment
from tests.factories import browser_login, make_user

TODAY = date.today()


def build(user, start=None, end=None) -> tuple[zipfile.ZipFile, dict]:
    handle = io.BytesIO()
    manifest = evidence.build(user, start or TODAY - timedelta(days=30), end or TODAY, handle)
    handle.seek(0)
    return zipfile.ZipFile(handle), manifest


def seed_evidence(org):
    checklist.take_snapshot(trigger=SnapshotTrigger.MANUAL, actor=org.admin)
    checklist.attest(ChecklistItem.TRAINING, actor=org.admin, statement="Training done", evidence="LMS-2026")
    vendor = Vendor.objects.create(name="PayCo", service="Payments", data_shared="card tokens")
    VendorAssessment.objects.create(vendor=vendor, assessed_by=org.admin, result="approved", summary="ok", evidence="x")
    audit.record("VIEW", actor=org.analyst, resource="customer", object_ids=[1], rows=1)
    audit.record("GDPR_REQUEST", actor=org.admin, resource="subject_request", object_ids=[7])
    from audit.models import Incident

    Incident.objects.create(title="Phished laptop", is_breach=True, breach_detected_at=timezone.now())


def test_admin_pack_has_every_part_and_a_verifiable_manifest(org):
    seed_evidence(org)
    archive, manifest = build(org.admin)
    names = set(archive.namelist())
    for expected in (
        "manifest.json",
        "checklist/snapshots.json",
        "checklist/current.json",
        "checklist/attestations.json",
        "record_of_processing.csv",
        "vendors/vendors.json",
        "vendors/assessments.json",
        "retention/runs.json",
        "retention/proofs.json",
        "checklist/backup_verifications.json",
        "checklist/vulnerability_scans.json",
        "access_reviews/reviews.json",
        "audit/events.jsonl",
        "audit/chain_checks.json",
        "incidents/security_alerts.json",
        "incidents/incidents.json",
    ):
        assert expected in names, expected
    stored = json.loads(archive.read("manifest.json"))
    assert stored["files"] == manifest["files"] and stored["generated_by"] == org.admin.email
    for name, meta in stored["files"].items():
        assert hashlib.sha256(archive.read(name)).hexdigest() == meta["sha256"], name
    events = [json.loads(line) for line in archive.read("audit/events.jsonl").splitlines()]
    assert {"VIEW", "GDPR_REQUEST"} <= {e["action"] for e in events}
    assert all("hash" in e and "prev_hash" in e for e in events)
    assert len(json.loads(archive.read("checklist/current.json"))) == 10
    assert json.loads(archive.read("checklist/attestations.json"))[0]["evidence"] == "LMS-2026"
    [incident] = json.loads(archive.read("incidents/incidents.json"))
    assert incident["title"] == "Phished laptop" and incident["is_breach"] is True
    pack_event = AuditEvent.objects.filter(action="EXPORT_DATA", resource="evidence_pack").get()
    assert pack_event.actor_id == org.admin.pk and pack_event.extra["files"] == len(stored["files"])


def test_dpo_pack_holds_gdpr_events_only_and_no_alerts(org):
    seed_evidence(org)
    archive, _ = build(org.dpo)
    events = [json.loads(line) for line in archive.read("audit/events.jsonl").splitlines()]
    assert events and {e["action"] for e in events} <= set(GDPR_ACTIONS)
    assert "incidents/security_alerts.json" not in archive.namelist()


def test_range_limits_what_goes_in(org):
    seed_evidence(org)
    # Events and snapshots are from today: a range in the past holds none of them.
    archive, _ = build(org.admin, TODAY - timedelta(days=90), TODAY - timedelta(days=60))
    assert archive.read("audit/events.jsonl") == b""
    assert json.loads(archive.read("checklist/snapshots.json")) == []


def test_refusals(org):
    with pytest.raises(PermissionError):
        build(org.manager)
    with pytest.raises(evidence.EvidenceError):
        build(org.admin, TODAY, TODAY - timedelta(days=1))
    with pytest.raises(evidence.EvidenceError):
        build(org.admin, TODAY - timedelta(days=500), TODAY)


def test_admin_download_and_command(org, tmp_path):
    seed_evidence(org)
    client = browser_login(org.admin)
    response = client.post(
        "/admin/compliance/monthlychecklist/evidence-pack/",
        {"start": (TODAY - timedelta(days=7)).isoformat(), "end": TODAY.isoformat()},
    )
    assert response.status_code == 200 and response["Content-Type"] == "application/zip"
    archive = zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content)))
    assert "manifest.json" in archive.namelist()
    manager = browser_login(make_user(Role.MANAGER))
    assert manager.post("/admin/compliance/monthlychecklist/evidence-pack/", {}).status_code == 403
    out = tmp_path / "pack.zip"
    call_command(
        "evidence_pack",
        "--as",
        org.admin.email,
        "--from",
        TODAY.isoformat(),
        "--to",
        TODAY.isoformat(),
        "--out",
        str(out),
    )
    assert zipfile.ZipFile(out).read("manifest.json")
    assert oct(out.stat().st_mode & 0o777) == "0o600"
