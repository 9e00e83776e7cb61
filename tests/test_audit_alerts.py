"""Each alert rule fires at its threshold and not below it; repeats raise the count; the email
and the signed webhook arrive at real local receivers (aiosmtpd, http.server)."""

import hashlib
import hmac
import json
import socket
import threading
from contextlib import contextmanager
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
from aiosmtpd.controller import Controller

from audit import alerts, review, services
from audit.alerts import Rule
from audit.choices import AlertStatus, AuditAction
from audit.models import AuditEvent, SecurityAlert
from portal import middleware
from tests.factories import make_user

pytestmark = pytest.mark.django_db


@contextmanager
def from_ip(ip: str):
    """The client address a request would carry (what RequestIdMiddleware sets)."""
    token = middleware._client.set((ip, "test-agent"))
    try:
        yield
    finally:
        middleware._client.reset(token)


def alerts_for(rule: str) -> list[SecurityAlert]:
    return list(SecurityAlert.objects.filter(rule=rule))


def failed_login(name: str, ip: str):
    from audit.signals import login_failed

    with from_ip(ip):
        login_failed({"email": name})


def test_failed_logins_for_one_account_fire_above_ten():
    for n in range(10):
        failed_login("target@example.test", f"198.51.100.{n}")
    assert alerts_for(Rule.FAILED_LOGINS_ACCOUNT) == []
    failed_login("target@example.test", "198.51.100.99")
    [alert] = alerts_for(Rule.FAILED_LOGINS_ACCOUNT)
    assert alert.status == AlertStatus.OPEN and alert.count == 1
    assert "target" not in alert.subject  # a keyed hash, never the typed name
    assert alerts_for(Rule.FAILED_LOGINS_IP) == []
    failed_login("target@example.test", "198.51.100.98")
    [alert] = alerts_for(Rule.FAILED_LOGINS_ACCOUNT)
    assert alert.count == 2  # a repeat inside the window: the count, not a new alert


def test_failed_logins_from_one_ip_fire_above_ten():
    for n in range(10):
        failed_login(f"user{n}@example.test", "203.0.113.7")
    assert alerts_for(Rule.FAILED_LOGINS_IP) == []
    failed_login("user10@example.test", "203.0.113.7")
    [alert] = alerts_for(Rule.FAILED_LOGINS_IP)
    assert alert.subject == "ip:203.0.113.7"


def test_an_export_over_100000_rows_fires():
    user = make_user("Admin")
    services.record(AuditAction.EXPORT_DATA, actor=user, resource="customer", rows=100_000)
    assert alerts_for(Rule.LARGE_EXPORT) == []
    services.record(AuditAction.EXPORT_DATA, actor=user, resource="customer", rows=100_001)
    [alert] = alerts_for(Rule.LARGE_EXPORT)
    assert alert.subject == f"user:{user.pk}" and alert.detail["rows"] == 100_001


def test_twenty_denials_in_five_minutes_fire():
    user = make_user("Analyst")
    for _ in range(19):
        services.record(AuditAction.PERMISSION_DENIED, actor=user, resource="report", success=False)
    assert alerts_for(Rule.PERMISSION_DENIALS) == []
    services.record(AuditAction.PERMISSION_DENIED, actor=user, resource="report", success=False)
    [alert] = alerts_for(Rule.PERMISSION_DENIALS)
    assert alert.detail["denials"] == 20


def test_reading_more_distinct_customers_than_the_threshold_fires(settings):
    settings.ALERT_DISTINCT_CUSTOMERS = 5
    user = make_user("Manager")
    services.record(AuditAction.VIEW, actor=user, resource="customer", object_ids=[1, 2, 3], rows=3)
    services.record(AuditAction.VIEW, actor=user, resource="customer", object_ids=[3, 4, 5], rows=3)
    services.record(AuditAction.VIEW, actor=user, resource="customer", object_ids=[1, 5], rows=2)
    assert alerts_for(Rule.DISTINCT_CUSTOMERS) == []  # 5 distinct, many reads
    services.record(AuditAction.SEARCH, actor=user, resource="customer", object_ids=[6], rows=1)
    [alert] = alerts_for(Rule.DISTINCT_CUSTOMERS)
    assert alert.detail["distinct_customers"] == 6


def test_distinct_customer_alert_counts_multiples_of_the_threshold_not_every_read(settings):
    settings.ALERT_DISTINCT_CUSTOMERS = 5
    user = make_user("Analyst")
    services.record(AuditAction.VIEW, actor=user, resource="customer", object_ids=range(1, 7), rows=6)
    [alert] = alerts_for(Rule.DISTINCT_CUSTOMERS)
    assert alert.count == 1
    for ids in ([1, 2], [7], [8, 9], [1, 9]):  # 9 distinct: still below twice the threshold
        services.record(AuditAction.VIEW, actor=user, resource="customer", object_ids=ids, rows=len(ids))
    alert.refresh_from_db()
    assert alert.count == 1  # no locked update and history row per read once over the threshold
    services.record(AuditAction.VIEW, actor=user, resource="customer", object_ids=[10, 11], rows=2)
    alert.refresh_from_db()
    assert (alert.count, alert.detail["distinct_customers"]) == (2, 11)


@pytest.mark.parametrize(
    ("read", "added", "crossed"),
    [(5, 5, False), (6, 1, True), (6, 6, True), (7, 1, False), (9, 2, False), (10, 1, True), (12, 4, True)],
)
def test_crossing_rule(read, added, crossed):
    assert alerts.crossed_a_multiple(read, added, 5) is crossed


def test_access_outside_configured_hours_fires(settings):
    user = make_user("Analyst")
    hour = datetime.now(UTC).hour
    settings.ALERT_BUSINESS_HOURS = f"{hour}-{hour + 1}"  # now is inside
    services.record(AuditAction.VIEW, actor=user, resource="customer", object_ids=[1], rows=1)
    assert alerts_for(Rule.OUT_OF_HOURS) == []
    settings.ALERT_BUSINESS_HOURS = "0-1" if hour != 0 else "1-2"  # now is outside
    services.record(AuditAction.VIEW, actor=user, resource="customer", object_ids=[1], rows=1)
    [alert] = alerts_for(Rule.OUT_OF_HOURS)
    assert alert.subject == f"user:{user.pk}"


def test_business_hours_setting_is_validated():
    assert alerts.parse_hours("") is None
    assert alerts.parse_hours("7-20") == (7, 20)
    with pytest.raises(ValueError):
        alerts.parse_hours("20-7")


def test_a_broken_chain_fires_from_the_daily_review():
    services.record(AuditAction.LOGIN, resource="session")
    assert review.verify_and_record().ok
    assert alerts_for(Rule.AUDIT_CHAIN_BROKEN) == []
    # A row that does not belong: inserted without the chain (as a forger would).
    AuditEvent.objects.bulk_create([AuditEvent(action=AuditAction.LOGIN, prev_hash="0" * 64, hash="1" * 64)])
    check = review.verify_and_record()
    assert not check.ok
    [alert] = alerts_for(Rule.AUDIT_CHAIN_BROKEN)
    assert alert.severity == "critical" and alert.detail["first_bad_id"] == check.first_bad_id


def test_the_gdpr_overdue_hook_raises_once_per_request():
    alerts.gdpr_request_overdue(41, due_at=datetime(2025, 1, 1, tzinfo=UTC), kind="access")
    alerts.gdpr_request_overdue(41)
    alerts.gdpr_request_overdue(42)
    rows = {a.subject: a.count for a in alerts_for(Rule.GDPR_OVERDUE)}
    assert rows == {"gdpr_request:41": 2, "gdpr_request:42": 1}


def test_a_resolved_alert_is_not_reopened_by_a_repeat():
    first = alerts.gdpr_request_overdue(7)
    first.status = AlertStatus.RESOLVED
    first.save()
    second = alerts.gdpr_request_overdue(7)
    assert second.pk != first.pk and second.count == 1


def test_a_new_alert_is_itself_audited():
    alert = alerts.gdpr_request_overdue(9)
    event = AuditEvent.objects.filter(action=AuditAction.ALERT_RAISED).order_by("-id").first()
    assert event.object_ids == [str(alert.pk)] and event.reason == Rule.GDPR_OVERDUE


# --- Notifications through real local receivers --------------------------------------------


class _Mailbox:
    def __init__(self):
        self.messages = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's hook name
        self.messages.append(envelope)
        return "250 OK"


@pytest.fixture
def smtp_receiver(settings):
    mailbox = _Mailbox()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(mailbox, hostname="127.0.0.1", port=port)
    controller.start()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST = "127.0.0.1"
    settings.EMAIL_PORT = port
    settings.ALERT_EMAIL_TO = ["security@example.test"]
    yield mailbox
    controller.stop()


@pytest.fixture
def webhook_receiver(settings):
    received = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - http.server's hook name
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append((dict(self.headers), body))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    settings.ALERT_WEBHOOK_URL = f"http://127.0.0.1:{server.server_port}/hook"
    settings.ALERT_WEBHOOK_SECRET = "w" * 40
    yield received
    server.shutdown()
    server.server_close()


def test_email_and_signed_webhook_arrive(smtp_receiver, webhook_receiver, settings):
    alert = alerts.gdpr_request_overdue(77)
    assert alerts.notify(alert) == {"email": True, "webhook": True}

    [mail] = smtp_receiver.messages
    assert mail.rcpt_tos == ["security@example.test"]
    text = mail.content.decode()
    assert Rule.GDPR_OVERDUE in text and "gdpr_request:77" in text

    [(headers, body)] = webhook_receiver
    timestamp = headers["X-Portal-Timestamp"]
    expected = hmac.new(settings.ALERT_WEBHOOK_SECRET.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    assert hmac.compare_digest(headers["X-Portal-Signature"], "sha256=" + expected.hexdigest())
    payload = json.loads(body)
    assert payload["id"] == alert.pk and payload["rule"] == Rule.GDPR_OVERDUE
    # A different key (or a changed body) does not verify.
    forged = hmac.new(b"x" * 40, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    assert headers["X-Portal-Signature"] != "sha256=" + forged


def test_no_webhook_without_a_secret(webhook_receiver, settings):
    settings.ALERT_WEBHOOK_SECRET = ""
    settings.ALERT_EMAIL_TO = []
    alert = alerts.gdpr_request_overdue(78)
    assert alerts.notify(alert) == {"email": False, "webhook": False}
    assert webhook_receiver == []


def test_the_celery_task_sends_through_the_same_service(smtp_receiver, settings):
    from audit.tasks import notify_alert

    settings.ALERT_WEBHOOK_URL = ""
    alert = alerts.gdpr_request_overdue(79)
    assert notify_alert.apply(args=[alert.pk]).get() == {"email": True, "webhook": False}
    assert len(smtp_receiver.messages) == 1


def test_distinct_customer_rule_falls_back_to_the_audit_table_without_redis(settings):
    settings.ALERT_DISTINCT_CUSTOMERS = 2
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens there
    user = make_user("Manager")
    services.record(AuditAction.VIEW, actor=user, resource="customer", object_ids=[1, 2], rows=2)
    assert alerts_for(Rule.DISTINCT_CUSTOMERS) == []
    services.record(AuditAction.VIEW, actor=user, resource="customer", object_ids=[2, 3], rows=2)
    [alert] = alerts_for(Rule.DISTINCT_CUSTOMERS)
    assert alert.detail["distinct_customers"] == 3
