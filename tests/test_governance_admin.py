"""Retention in the admin: preview before enabling, a changed rule disabled, legal hold needs a
reason, "run now" through a real worker, runs and proofs read-only; vendors and assessments;
the archive for its readers only."""

import time
from datetime import timedelta
from decimal import Decimal

import pytest
from celery.contrib.testing.worker import start_worker
from django.utils import timezone

from compliance import retention
from compliance.governance_choices import RunStatus
from compliance.governance_models import RetentionPolicy, RetentionProof, RetentionRun, Vendor, VendorAssessment
from datasets.models import Order, PageView
from portal.celery import app
from portal.security_context import scoped
from tests.conftest import BOTH_DATABASES, Org
from tests.factories import browser_login

pytestmark = pytest.mark.django_db(transaction=True, databases=BOTH_DATABASES)
POLICIES = "/admin/compliance/retentionpolicy/"


@pytest.fixture(scope="module")
def worker(django_db_blocker):
    with django_db_blocker.unblock(), start_worker(app, perform_ping_check=False, pool="solo", loglevel="WARNING"):
        yield


@pytest.fixture
def org():
    retention.ensure_default_policies()
    return Org(customers_per_team=2)


def old_page_views(org, count=5):
    customer = org.customers["North"][0]
    with scoped(system=True):
        PageView.objects.bulk_create(
            PageView(
                customer=customer, team_id=customer.team_id, page="/", timestamp=timezone.now() - timedelta(days=800)
            )
            for _ in range(count)
        )


def form_data(rule: RetentionPolicy, **changes) -> dict:
    data = {
        "dataset": rule.dataset,
        "age_field": rule.age_field,
        "max_age_days": rule.max_age_days,
        "action": rule.action,
        "basis": rule.basis,
        "legal_hold_reason": rule.legal_hold_reason,
    }
    if rule.legal_hold:
        data["legal_hold"] = "on"
    data.update(changes)
    return {k: v for k, v in data.items() if v is not None}


def test_preview_then_enable_then_run_now_on_a_worker(org, worker):
    old_page_views(org)
    rule = RetentionPolicy.objects.get(dataset="pageviews")
    client = browser_login(org.admin)
    assert client.post(f"{POLICIES}{rule.pk}/enable/").status_code == 302
    rule.refresh_from_db()
    assert not rule.enabled  # no preview yet: refused with a message
    page = client.get(f"{POLICIES}{rule.pk}/preview/")
    assert page.status_code == 200
    body = page.content.decode()
    assert 'id="preview-rows">5<' in body and "Enable this policy" in body
    assert client.get(f"{POLICIES}{rule.pk}/enable/").status_code == 405
    assert client.post(f"{POLICIES}{rule.pk}/enable/").status_code == 302
    rule.refresh_from_db()
    assert rule.enabled and rule.previewed_by == org.admin and rule.preview_rows == 5
    assert client.post(f"{POLICIES}{rule.pk}/run/").status_code == 302
    deadline = time.monotonic() + 30
    while not RetentionRun.objects.filter(status=RunStatus.COMPLETED).exists():
        assert time.monotonic() < deadline, "the queued run did not complete"
        time.sleep(0.2)
    run = RetentionRun.objects.get()
    assert run.rows_deleted == 5 and run.requested_by == org.admin and run.trigger == "admin"
    proof = RetentionProof.objects.get(run=run)
    page = client.get(f"/admin/compliance/retentionproof/{proof.pk}/change/").content.decode()
    assert "intact: matches its SHA-256" in page
    assert "Proof of deletion" in client.get(f"/admin/compliance/retentionrun/{run.pk}/change/").content.decode()


def test_changing_the_rule_disables_and_hold_needs_a_reason(org):
    rule = RetentionPolicy.objects.get(dataset="pageviews")
    retention.preview(rule)
    retention.enable(rule)
    client = browser_login(org.admin)
    response = client.post(f"{POLICIES}{rule.pk}/change/", form_data(rule, max_age_days=400))
    assert response.status_code == 302
    rule.refresh_from_db()
    assert rule.max_age_days == 400 and not rule.enabled
    response = client.post(f"{POLICIES}{rule.pk}/change/", form_data(rule, legal_hold="on"))
    assert response.status_code == 200 and "legal hold needs its reason" in response.content.decode()
    response = client.post(
        f"{POLICIES}{rule.pk}/change/", form_data(rule, legal_hold="on", legal_hold_reason="Litigation 17")
    )
    assert response.status_code == 302
    rule.refresh_from_db()
    assert rule.legal_hold and rule.legal_hold_since is not None
    response = client.post(f"{POLICIES}{rule.pk}/change/", form_data(rule, action="archive"))
    assert response.status_code == 200 and "Page views allow" in response.content.decode()


def test_runs_and_proofs_are_read_only_and_policies_not_deletable(org):
    old_page_views(org, 2)
    rule = RetentionPolicy.objects.get(dataset="pageviews")
    retention.preview(rule)
    retention.enable(rule)
    [run] = retention.run_due()
    client = browser_login(org.admin)
    assert client.post(f"/admin/compliance/retentionrun/{run.pk}/delete/").status_code == 403
    assert client.post(f"/admin/compliance/retentionpolicy/{rule.pk}/delete/").status_code == 403
    proof = RetentionProof.objects.get(run=run)
    assert client.post(f"/admin/compliance/retentionproof/{proof.pk}/change/", {}).status_code == 403
    assert RetentionRun.objects.filter(pk=run.pk).exists()


def test_governance_admin_is_closed_to_other_roles(org):
    manager = browser_login(org.manager)
    for url in (
        POLICIES,
        "/admin/compliance/retentionrun/",
        "/admin/compliance/vendor/",
        "/admin/compliance/archivedorder/",
    ):
        assert manager.get(url).status_code == 403, url
    rule = RetentionPolicy.objects.get(dataset="pageviews")
    assert manager.post(f"{POLICIES}{rule.pk}/enable/").status_code == 403
    assert manager.get(f"{POLICIES}{rule.pk}/preview/").status_code == 403


def test_archive_admin_under_row_level_security(org):
    customer = org.customers["East"][0]
    with scoped(system=True):
        Order.objects.create(
            customer=customer, amount=Decimal("3.00"), created_at=timezone.now() - timedelta(days=3000)
        )
    rule = RetentionPolicy.objects.get(dataset="orders")
    retention.preview(rule)
    retention.enable(rule)
    retention.run_due()
    page = browser_login(org.admin).get("/admin/compliance/archivedorder/")
    assert page.status_code == 200 and "3.00" in page.content.decode()


def test_vendor_and_assessment(org):
    client = browser_login(org.admin)
    response = client.post(
        "/admin/compliance/vendor/add/",
        {
            "name": "MailCo",
            "service": "Transactional email",
            "data_shared": "Customer email addresses",
            "dpa_signed_on": timezone.localdate().isoformat(),
            "assessment_interval_days": 365,
            "active": "on",
            "transfer_safeguards": "",
            "notes": "",
            "assessments-TOTAL_FORMS": 0,
            "assessments-INITIAL_FORMS": 0,
        },
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    vendor = Vendor.objects.get(name="MailCo")
    tomorrow = timezone.localdate() + timedelta(days=1)
    bad = client.post(
        "/admin/compliance/vendorassessment/add/",
        {
            "vendor": vendor.pk,
            "assessed_on": tomorrow.isoformat(),
            "result": "approved",
            "summary": "x",
            "evidence": "x",
        },
    )
    assert bad.status_code == 200 and "future" in bad.content.decode()
    ok = client.post(
        "/admin/compliance/vendorassessment/add/",
        {
            "vendor": vendor.pk,
            "assessed_on": timezone.localdate().isoformat(),
            "result": "approved",
            "summary": "SOC 2 type II reviewed",
            "evidence": "vendor-portal/soc2-2026.pdf",
        },
    )
    assert ok.status_code == 302
    assessment = VendorAssessment.objects.get()
    assert assessment.assessed_by == org.admin
    vendor.refresh_from_db()
    assert vendor.last_assessed_on == timezone.localdate() and vendor.problems() == []
