"""The monthly checklist: ten items from live state or attestations, snapshots, the command,
vendors, scans, and the admin page."""

import json
from datetime import timedelta

import pytest
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.db import connections
from django.utils import timezone

from accounts.policy import Role
from audit import services as audit
from audit.models import AuditChainCheck
from compliance import checklist
from compliance.governance_choices import ChecklistItem, ItemStatus, ScanResult, SnapshotTrigger
from compliance.governance_models import (
    Attestation,
    BackupVerification,
    ChecklistSnapshot,
    Vendor,
    VendorAssessment,
    VulnerabilityScan,
)
from compliance.scan_report import parse_pip_audit
from datasets.models import AccessGrant
from portal.security_context import scoped
from tests.factories import browser_login, make_user

PAGE = "/admin/compliance/monthlychecklist/"
SEED_ITEMS = [
    "All data encrypted at rest",
    "All data encrypted in transit",
    "Access controls properly configured",
    "Audit logs being collected",
    "Inactive accounts disabled",
    "Dependencies updated",
    "Security training completed",
    "Backup restoration tested",
    "Incident response plan reviewed",
    "Third-party vendors assessed",
]


def item(key: str) -> checklist.ItemResult:
    return {i.key: i for i in checklist.evaluate()}[key]


def test_the_seeds_ten_items_in_order(db):
    items = checklist.evaluate()
    assert [i.label for i in items] == SEED_ITEMS
    assert {i.status for i in items} <= {"pass", "fail", "attention"}
    measured = {i.key for i in items if i.measured}
    assert {"encryption_at_rest", "encryption_in_transit", "access_controls", "audit_logs"} <= measured


def test_encryption_at_rest_from_the_record_and_the_stored_bytes(org):
    result = item("encryption_at_rest")
    assert result.status == ItemStatus.PASS, result.summary
    assert result.figures["sampled_values_not_ciphertext"] == 0 and result.figures["encrypted_columns_sampled"] >= 3
    # A value written around the field encryption (plain bytes in the column) is found.
    victim = org.customers["North"][0]
    with scoped(system=True), connections["default"].cursor() as cursor:
        cursor.execute("UPDATE datasets_customer SET phone = convert_to('555-0100', 'UTF8') WHERE id = %s", [victim.pk])
    result = item("encryption_at_rest")
    assert result.status == ItemStatus.FAIL and result.figures["sampled_values_not_ciphertext"] == 1


def test_encryption_in_transit_from_settings(db, settings):
    settings.SECURE_SSL_REDIRECT = True  # production's value (the test settings turn it off)
    assert item("encryption_in_transit").status == ItemStatus.PASS  # loopback PostgreSQL and Redis
    settings.SECURE_HSTS_SECONDS = 3600
    assert "HSTS" in item("encryption_in_transit").summary
    settings.SECURE_HSTS_SECONDS = 31536000
    settings.REDIS_URL = "redis://cache.internal:6379/0"
    result = item("encryption_in_transit")
    assert result.status == ItemStatus.FAIL and "rediss://" in result.summary
    settings.REDIS_URL = "rediss://cache.internal:6380/0"
    assert item("encryption_in_transit").status == ItemStatus.PASS
    settings.SECURE_SSL_REDIRECT = False
    assert "HTTPS" in item("encryption_in_transit").summary


def test_access_controls(org):
    result = item("access_controls")
    assert result.status == ItemStatus.PASS, result.summary  # the DPO holds a duty alone: fine
    org.analyst.groups.add(Group.objects.get(name=Role.MANAGER.value))
    result = item("access_controls")
    assert result.status == ItemStatus.FAIL and result.figures["users_with_several_roles"] == 1
    org.analyst.groups.remove(Group.objects.get(name=Role.MANAGER.value))
    AccessGrant.objects.create(
        requester=org.analyst,
        kind="team_access",
        team=org.east,
        reason="test",
        status="approved",
        expires_at=timezone.now() - timedelta(hours=1),
    )
    result = item("access_controls")
    assert result.status == ItemStatus.FAIL and result.figures["expired_grants_still_approved"] == 1
    assert "expired grant" in result.summary


def test_audit_logs_need_recent_events_and_a_verified_chain(db):
    result = item("audit_logs")
    assert result.status == ItemStatus.FAIL and "No audit event" in result.summary
    user = make_user(Role.ANALYST)
    audit.record("VIEW", actor=user, resource="customer", object_ids=[1], rows=1)
    assert item("audit_logs").status == ItemStatus.ATTENTION  # events, but no chain check yet
    result = {i.key: i for i in checklist.evaluate(verify_chain=True)}["audit_logs"]
    assert result.status == ItemStatus.PASS and result.figures["chain_ok"] is True
    AuditChainCheck.objects.create(ok=False, events=1, first_bad_id=1, detail="event 1: content does not match")
    result = item("audit_logs")
    assert result.status == ItemStatus.FAIL and "BROKEN" in result.summary


def test_inactive_accounts(db, settings):
    settings.INACTIVE_ACCOUNT_DAYS = 90
    assert item("inactive_accounts").status == ItemStatus.PASS
    stale = make_user(Role.ANALYST)
    stale.date_joined = timezone.now() - timedelta(days=200)
    stale.last_login = timezone.now() - timedelta(days=120)
    stale.save()
    result = item("inactive_accounts")
    assert result.status == ItemStatus.FAIL and result.figures["active_accounts_unused"] == 1


def test_dependencies_from_the_last_scan_or_an_attestation(db):
    assert item("dependencies").status == ItemStatus.ATTENTION
    VulnerabilityScan.objects.create(tool="pip-audit", result=ScanResult.FAIL, packages=80, findings=2)
    assert item("dependencies").status == ItemStatus.FAIL
    VulnerabilityScan.objects.create(tool="pip-audit", result=ScanResult.PASS, packages=80)
    assert item("dependencies").status == ItemStatus.PASS
    VulnerabilityScan.objects.create(tool="pip-audit", result=ScanResult.ERROR)
    result = item("dependencies")
    assert result.status == ItemStatus.ATTENTION and "did not complete" in result.summary
    VulnerabilityScan.objects.filter(result=ScanResult.ERROR).delete()
    VulnerabilityScan.objects.all().update(ran_at=timezone.now() - timedelta(days=40))
    assert item("dependencies").status == ItemStatus.ATTENTION
    checklist.attest(ChecklistItem.DEPENDENCIES, actor=make_user(Role.ADMIN), statement="Updated", evidence="PR #123")
    assert item("dependencies").status == ItemStatus.PASS


def test_record_scan_reads_pip_audit_json(db, tmp_path):
    report = {
        "dependencies": [
            {"name": "django", "version": "5.2.19", "vulns": []},
            {"name": "oldlib", "version": "1.0", "vulns": [{"id": "PYSEC-2026-1", "fix_versions": ["1.1"]}]},
        ]
    }
    assert parse_pip_audit(report) == (2, 1, [{"name": "oldlib", "version": "1.0", "ids": ["PYSEC-2026-1"]}], [])
    path = tmp_path / "audit.json"
    path.write_text(json.dumps(report))
    call_command("record_scan", "--pip-audit", str(path))
    scan = VulnerabilityScan.objects.get()
    assert scan.result == ScanResult.FAIL and scan.findings == 1 and scan.packages == 2
    # A report where the vulnerability service answered for nothing is no pass.
    unreachable = {"dependencies": [{"name": "django", "version": "5.2.19", "skip_reason": "network"}]}
    path.write_text(json.dumps(unreachable))
    call_command("record_scan", "--pip-audit", str(path))
    assert VulnerabilityScan.objects.order_by("-id").first().result == ScanResult.ERROR
    clean = {"dependencies": [{"name": "django", "version": "5.2.19", "vulns": []}]}
    path.write_text(json.dumps(clean))
    call_command("record_scan", "--pip-audit", str(path))
    assert VulnerabilityScan.objects.order_by("-id").first().result == ScanResult.PASS


def test_attested_items_and_their_rules(db):
    admin = make_user(Role.ADMIN)
    assert item("training").status == ItemStatus.ATTENTION
    attestation = checklist.attest(
        ChecklistItem.TRAINING, actor=admin, statement="All 42 staff completed 2026 training", evidence="LMS report"
    )
    result = item("training")
    assert result.status == ItemStatus.PASS and not result.measured and result.figures["evidence"] == "LMS report"
    Attestation.objects.filter(pk=attestation.pk).update(valid_until=timezone.localdate() - timedelta(days=1))
    assert item("training").status == ItemStatus.ATTENTION
    with pytest.raises(ValidationError):
        checklist.attest(ChecklistItem.ENCRYPTION_AT_REST, actor=admin, statement="trust me", evidence="none")
    with pytest.raises(ValidationError):
        checklist.attest(ChecklistItem.INCIDENT_PLAN, actor=admin, statement="Reviewed", evidence=" ")
    with pytest.raises(ValidationError):
        checklist.attest(ChecklistItem.INCIDENT_PLAN, actor=admin, statement="Reviewed", evidence="x", valid_days=999)


def test_backup_restore_item(db):
    assert item("backup_restore").status == ItemStatus.ATTENTION
    BackupVerification.objects.create(ok=False, finished_at=timezone.now(), detail="pg_restore failed")
    assert item("backup_restore").status == ItemStatus.FAIL
    BackupVerification.objects.create(ok=True, finished_at=timezone.now(), tables=40, rows=100, sampled_values=50)
    assert item("backup_restore").status == ItemStatus.PASS


def test_vendors_need_a_dpa_and_a_recent_assessment(db):
    assert item("vendors").status == ItemStatus.ATTENTION  # no vendor, no attestation
    vendor = Vendor.objects.create(name="MailCo", service="Transactional email", data_shared="customer emails")
    result = item("vendors")
    assert result.status == ItemStatus.FAIL and "no DPA signed" in result.summary and "never assessed" in result.summary
    Vendor.objects.filter(pk=vendor.pk).update(dpa_signed_on=timezone.localdate(), handles_health_data=True)
    assert "BAA" in item("vendors").summary
    Vendor.objects.filter(pk=vendor.pk).update(baa_signed_on=timezone.localdate())
    admin = make_user(Role.ADMIN)
    VendorAssessment.objects.create(vendor=vendor, assessed_by=admin, result="approved", summary="ok", evidence="SOC2")
    Vendor.objects.filter(pk=vendor.pk).update(last_assessed_on=timezone.localdate() - timedelta(days=400))
    assert "overdue" in item("vendors").summary
    Vendor.objects.filter(pk=vendor.pk).update(last_assessed_on=timezone.localdate())
    assert item("vendors").status == ItemStatus.PASS


def test_snapshot_is_stored_with_its_hash_and_taken_once_a_month(db):
    first = checklist.take_snapshot(trigger=SnapshotTrigger.SCHEDULE)
    again = checklist.take_snapshot(trigger=SnapshotTrigger.SCHEDULE)
    assert first.pk == again.pk and first.period == timezone.now().strftime("%Y-%m")
    assert len(first.items) == 10 and first.passed + first.failed + first.attention == 10
    assert first.sha256 == checklist._digest(first.period, first.items)
    manual = checklist.take_snapshot(trigger=SnapshotTrigger.MANUAL)
    assert manual.pk != first.pk and ChecklistSnapshot.objects.count() == 2
    assert checklist.latest_status()["period"] == first.period


def test_command_json_and_text(db, capsys):
    call_command("compliance_checklist", "--json")
    items = json.loads(capsys.readouterr().out)["items"]
    assert [i["label"] for i in items] == SEED_ITEMS
    call_command("compliance_checklist", "--snapshot")
    out = capsys.readouterr().out
    assert "Backup restoration tested" in out and out.strip().endswith("pass")
    assert ChecklistSnapshot.objects.filter(trigger=SnapshotTrigger.MANUAL).count() == 1


def test_checklist_admin_page_snapshot_and_attestation(org):
    client = browser_login(org.admin)
    page = client.get(PAGE)
    assert page.status_code == 200
    body = page.content.decode()
    assert all(label in body for label in SEED_ITEMS)
    response = client.post(PAGE + "snapshot/")
    assert response.status_code == 302 and ChecklistSnapshot.objects.count() == 1
    assert client.get(PAGE + "snapshot/").status_code == 405
    response = client.post(
        "/admin/compliance/attestation/add/",
        {"item": "incident_plan", "statement": "Plan v3 reviewed by the CISO", "evidence": "Confluence IR-3"},
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    attestation = Attestation.objects.get()
    assert attestation.attested_by == org.admin and attestation.valid_until > timezone.localdate()
    # Evidence is never edited or deleted in the admin.
    change = client.post(
        f"/admin/compliance/attestation/{attestation.pk}/change/",
        {"item": "incident_plan", "statement": "changed", "evidence": "x"},
    )
    assert change.status_code in (302, 403)
    attestation.refresh_from_db()
    assert attestation.statement == "Plan v3 reviewed by the CISO"
    assert client.post(f"/admin/compliance/attestation/{attestation.pk}/delete/").status_code == 403


def test_checklist_page_is_for_governance_roles_only(org):
    manager = browser_login(org.manager)
    assert manager.get(PAGE).status_code == 403
    assert manager.post(PAGE + "snapshot/").status_code == 403
    assert ChecklistSnapshot.objects.count() == 0
