"""Canary: a customer's name, email and phone never reach logs, the change history, the audit
trail, alerts or HTTP error bodies, whatever path they travel (API, admin, export, 500)."""

import io
import logging

import pytest
from auditlog.models import LogEntry
from django.test import Client, override_settings
from django.urls import path

from audit import alerts, services
from audit.choices import AuditAction
from audit.models import AuditEvent, SecurityAlert
from portal.urls import urlpatterns as portal_urlpatterns
from tests.conftest import token_client
from tests.factories import CustomerFactory, browser_login

NAME, EMAIL, PHONE = "Zebulon Canarybird", "zebulon.canary@canary.example", "+1-555-012-3487"
FORBIDDEN = ["Zebulon", "Canarybird", "zebulon.canary", "012-3487", "0123487"]


def boom(request):
    raise ValueError(f"failed for {EMAIL} {NAME} {PHONE}")


urlpatterns = [*portal_urlpatterns, path("boom/", boom)]


@pytest.fixture
def captured_logs():
    console = next(h for h in logging.getLogger().handlers if h.filters)
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.setFormatter(console.formatter)
    for log_filter in console.filters:
        handler.addFilter(log_filter)
    root = logging.getLogger()
    root.addHandler(handler)
    yield buffer
    root.removeHandler(handler)


def assert_clean(text: str, where: str) -> None:
    for canary in FORBIDDEN:
        assert canary not in text, f"{canary!r} found in {where}"


@override_settings(ROOT_URLCONF=__name__, DEBUG=False)
def test_canary_values_never_leak(org, captured_logs, settings):
    customer = CustomerFactory(team=org.north, name=NAME, email=EMAIL, phone=PHONE)
    # API: list, search by email, detail, as a manager who sees the values in clear.
    api = token_client(org.manager)
    assert EMAIL in api.get(f"/api/v1/customers/{customer.pk}/").content.decode()
    api.get("/api/v1/customers/", {"email": EMAIL})
    # Refused and failing requests.
    refused = token_client(org.executive).get("/api/v1/customers/", {"email": EMAIL})
    assert refused.status_code == 403
    assert_clean(refused.content.decode(), "403 body")
    bad = api.get("/api/v1/customers/", {"email": f"{EMAIL}x@@"})
    assert bad.status_code == 400
    assert_clean(bad.content.decode(), "400 body")
    failing = Client(raise_request_exception=False).get("/boom/")
    assert failing.status_code == 500
    assert_clean(failing.content.decode(), "500 body")
    # Admin: list, search, detail; then the audit export.
    admin = browser_login(org.admin)
    admin.get("/admin/datasets/customer/", {"q": EMAIL})
    admin.get(f"/admin/datasets/customer/{customer.pk}/change/")
    export = admin.get("/admin/audit/auditevent/export/", {"from": "2000-01-01", "to": "2999-01-01"})
    assert_clean(b"".join(export.streaming_content).decode(), "audit export")
    # An alert about reading it.
    services.record(
        AuditAction.EXPORT_DATA, actor=org.manager, resource="customer", object_ids=[customer.pk], rows=10**6
    )
    alert = SecurityAlert.objects.get(rule=alerts.Rule.LARGE_EXPORT)
    assert_clean(str(alerts.payload(alert)) + str(alert.detail), "alert")

    assert_clean(captured_logs.getvalue(), "logs")
    for entry in LogEntry.objects.all():
        assert_clean(f"{entry.object_repr} {entry.changes} {entry.changes_text} {entry.additional_data}", "auditlog")
    for event in AuditEvent.objects.all():
        assert_clean(str(event.as_export()), "audit event")
    assert AuditEvent.objects.filter(object_ids__contains=[str(customer.pk)]).count() >= 4
