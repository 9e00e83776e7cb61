"""Security alerts: rules over the audit trail, de-duplicated alerts, email and signed webhook.

The rules run right after events are appended (``audit.services.append``).  A rule that fires
again for the same subject inside its window raises the open alert's ``count``; only a new
alert is notified.  Subjects never hold personal data in clear: ``user:<id>``, ``ip:<addr>``,
``account:<keyed hash>``, ``gdpr_request:<id>``.  Thresholds are settings (``ALERT_*``).
"""

import hashlib
import hmac
import json
import logging
import time
import urllib.request
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

from django.conf import settings
from django.core.mail import send_mail
from django.db import connections, transaction
from django.db.models import Count
from django.utils import timezone
from psycopg import sql

from audit.choices import READ_ACTIONS, AlertSeverity, AlertStatus, AuditAction
from audit.models import AuditEvent, SecurityAlert

logger = logging.getLogger("audit.alerts")
DATABASE = "default"
# pg_advisory_xact_lock(class, key) class for alert upserts ("alrt").
ALERT_LOCK_CLASS = int.from_bytes(b"alrt", "big")


class Rule:
    FAILED_LOGINS_ACCOUNT = "failed_logins_account"
    FAILED_LOGINS_IP = "failed_logins_ip"
    LARGE_EXPORT = "large_export"
    PERMISSION_DENIALS = "permission_denials"
    DISTINCT_CUSTOMERS = "distinct_customers"
    OUT_OF_HOURS = "out_of_hours"
    AUDIT_CHAIN_BROKEN = "audit_chain_broken"
    GDPR_OVERDUE = "gdpr_request_overdue"
    BREACH_NOTIFICATION_DUE = "breach_notification_due"  # 48 hours, authority not yet notified
    BREACH_NOTIFICATION_OVERDUE = "breach_notification_overdue"  # 72 hours: GDPR Art. 33 deadline


@dataclass(frozen=True)
class Thresholds:
    failed_logins: int
    failed_logins_window: timedelta
    export_rows: int
    denials: int
    denials_window: timedelta
    distinct_customers: int
    distinct_customers_window: timedelta
    business_hours: tuple[int, int] | None
    timezone: str
    dedupe_window: timedelta


def thresholds() -> Thresholds:
    return Thresholds(
        failed_logins=settings.ALERT_FAILED_LOGINS,
        failed_logins_window=timedelta(minutes=settings.ALERT_FAILED_LOGINS_MINUTES),
        export_rows=settings.ALERT_EXPORT_ROWS,
        denials=settings.ALERT_PERMISSION_DENIALS,
        denials_window=timedelta(minutes=settings.ALERT_PERMISSION_DENIALS_MINUTES),
        distinct_customers=settings.ALERT_DISTINCT_CUSTOMERS,
        distinct_customers_window=timedelta(minutes=settings.ALERT_DISTINCT_CUSTOMERS_MINUTES),
        business_hours=parse_hours(settings.ALERT_BUSINESS_HOURS),
        timezone=settings.ALERT_TIMEZONE,
        dedupe_window=timedelta(minutes=settings.ALERT_DEDUPE_MINUTES),
    )


def parse_hours(value: str) -> tuple[int, int] | None:
    """``"7-20"`` -> (7, 20): access from 07:00 up to 20:00 is in hours; empty: the rule is off."""
    value = (value or "").strip()
    if not value:
        return None
    start, _, end = value.partition("-")
    start_hour, end_hour = int(start), int(end)
    if not (0 <= start_hour <= 23 and 1 <= end_hour <= 24 and start_hour < end_hour):
        raise ValueError("ALERT_BUSINESS_HOURS must look like 7-20 (start < end, hours 0-24)")
    return start_hour, end_hour


# --- Raising ---------------------------------------------------------------------------------


def raise_alert(
    rule: str, subject: str, severity: str, *, detail: dict | None = None, window: timedelta | None = None
) -> SecurityAlert:
    """Open an alert, or count a repeat on the one still open for the same rule and subject."""
    window = window or thresholds().dedupe_window
    now = timezone.now()
    with transaction.atomic(using=DATABASE):
        with connections[DATABASE].cursor() as cursor:
            # One upsert at a time per (rule, subject): two workers never open twin alerts.
            cursor.execute("SELECT pg_advisory_xact_lock(%s, hashtext(%s))", [ALERT_LOCK_CLASS, f"{rule}|{subject}"])
        alert = (
            SecurityAlert.objects.using(DATABASE)
            .filter(rule=rule, subject=subject, last_seen__gte=now - window)
            .exclude(status=AlertStatus.RESOLVED)
            .order_by("-last_seen")
            .first()
        )
        if alert is not None:
            alert.count += 1
            alert.last_seen = now
            alert.detail = {**alert.detail, **(detail or {})}
            alert.save(update_fields=["count", "last_seen", "detail"])
            return alert
        alert = SecurityAlert.objects.using(DATABASE).create(
            rule=rule, severity=severity, subject=subject, first_seen=now, last_seen=now, detail=detail or {}
        )
        transaction.on_commit(lambda: _queue_notification(alert.pk), using=DATABASE)
    from audit import services

    services.record(
        AuditAction.ALERT_RAISED,
        resource="security_alert",
        object_ids=[alert.pk],
        reason=rule,
        extra={"severity": severity},
    )
    return alert


def _queue_notification(alert_id: int) -> None:
    from audit.tasks import notify_alert

    try:
        notify_alert.apply_async(args=[alert_id], retry=False)
    except Exception as exc:  # broker down: the alert stays in the admin; say so in the log
        logger.error("could not queue the notification of alert %s: %s", alert_id, type(exc).__name__)


def gdpr_request_overdue(request_id: int | str, *, due_at: datetime | None = None, kind: str = "") -> SecurityAlert:
    """Hook for the GDPR module: a subject request passed its deadline unanswered."""
    detail = {"due_at": due_at.isoformat() if due_at else "", "kind": kind}
    return raise_alert(Rule.GDPR_OVERDUE, f"gdpr_request:{request_id}", AlertSeverity.HIGH, detail=detail)


def audit_chain_broken(first_bad_id: int | None, detail: str) -> SecurityAlert:
    return raise_alert(
        Rule.AUDIT_CHAIN_BROKEN,
        "audit_chain",
        AlertSeverity.CRITICAL,
        detail={"first_bad_id": first_bad_id, "detail": detail[:200]},
    )


# --- Rules over appended events --------------------------------------------------------------


def evaluate(events: list[AuditEvent]) -> list[SecurityAlert]:
    """Run every rule that an appended event can trigger; a failing rule never loses the events."""
    raised = []
    try:
        limits = thresholds()
        seen = set()
        for event in events:
            for check in _CHECKS:
                key = (check, event.action, event.actor_id, event.ip_address, str(event.extra.get("username_hash")))
                if check is _distinct_customers:
                    key = (check, id(event))  # every read event adds its own ids to the tracker
                if key in seen:
                    continue
                seen.add(key)
                raised.extend(check(event, limits))
    except Exception as exc:
        logger.error("alert rules failed: %s", type(exc).__name__)
    return raised


def _since(window: timedelta) -> datetime:
    return timezone.now() - window


def _failed_logins(event: AuditEvent, limits: Thresholds):
    if event.action != AuditAction.LOGIN_FAILED:
        return []
    alerts = []
    since = _since(limits.failed_logins_window)
    recent = AuditEvent.objects.using(DATABASE).filter(action=AuditAction.LOGIN_FAILED, timestamp__gte=since)
    account = event.extra.get("username_hash")
    if account:
        attempts = recent.filter(extra__username_hash=account).count()
        if attempts > limits.failed_logins:
            alerts.append(
                raise_alert(
                    Rule.FAILED_LOGINS_ACCOUNT,
                    f"account:{account[:16]}",
                    AlertSeverity.HIGH,
                    detail={"attempts": attempts, "actor_id": event.actor_id},
                    window=limits.failed_logins_window,
                )
            )
    if event.ip_address:
        attempts = recent.filter(ip_address=event.ip_address).count()
        if attempts > limits.failed_logins:
            alerts.append(
                raise_alert(
                    Rule.FAILED_LOGINS_IP,
                    f"ip:{event.ip_address}",
                    AlertSeverity.HIGH,
                    detail={"attempts": attempts},
                    window=limits.failed_logins_window,
                )
            )
    return alerts


def _large_export(event: AuditEvent, limits: Thresholds):
    if event.action not in (AuditAction.EXPORT_DATA, AuditAction.GDPR_EXPORT):
        return []
    if event.rows is None or event.rows <= limits.export_rows:
        return []
    return [
        raise_alert(
            Rule.LARGE_EXPORT,
            f"user:{event.actor_id}",
            AlertSeverity.HIGH,
            detail={"rows": event.rows, "resource": event.resource},
        )
    ]


def _permission_denials(event: AuditEvent, limits: Thresholds):
    if event.action != AuditAction.PERMISSION_DENIED or event.actor_id is None:
        return []
    denials = (
        AuditEvent.objects.using(DATABASE)
        .filter(
            actor_id=event.actor_id, action=AuditAction.PERMISSION_DENIED, timestamp__gte=_since(limits.denials_window)
        )
        .count()
    )
    if denials < limits.denials:
        return []
    return [
        raise_alert(
            Rule.PERMISSION_DENIALS,
            f"user:{event.actor_id}",
            AlertSeverity.MEDIUM,
            detail={"denials": denials},
            window=limits.denials_window,
        )
    ]


_DISTINCT_SQL = sql.SQL(
    "SELECT count(DISTINCT ids.value) FROM {table} AS e"
    " CROSS JOIN LATERAL jsonb_array_elements_text(e.object_ids) AS ids(value)"
    " WHERE e.actor_id = %s AND e.timestamp >= %s AND e.resource = %s AND e.action = ANY(%s)"
)


def distinct_customers_read(actor_id: int, since: datetime) -> int:
    """Distinct customers the actor read since ``since`` (the (actor_id, timestamp) index)."""
    query = _DISTINCT_SQL.format(table=sql.Identifier(AuditEvent._meta.db_table))
    with connections[DATABASE].cursor() as cursor:
        cursor.execute(query, [actor_id, since, CUSTOMER_RESOURCE, [str(a) for a in READ_ACTIONS]])
        return cursor.fetchone()[0]


CUSTOMER_RESOURCE = "customer"


@lru_cache(maxsize=1)
def _redis(url: str):
    import redis

    return redis.Redis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5)


def tracker_key(actor_id) -> str:
    # Keyed by database too, so separate portals (and test runs) sharing a Redis never mix.
    return f"portal:alert-distinct:{settings.DATABASES['default']['NAME']}:{actor_id}"


def _distinct_customers_tracked(event: AuditEvent, window: timedelta) -> tuple[int, int] | None:
    """(distinct customers the actor read within the window, how many of them this event added),
    kept in a Redis sorted set (customer id -> last read time): constant cost per read, where
    counting over the audit table grows with every event in the window.  None when Redis cannot
    be reached."""
    import redis

    now = time.time()
    key = tracker_key(event.actor_id)
    try:
        pipe = _redis(settings.REDIS_URL).pipeline()
        pipe.zadd(key, {str(i): now for i in event.object_ids})
        pipe.zremrangebyscore(key, 0, now - window.total_seconds())
        pipe.zcard(key)
        pipe.expire(key, int(window.total_seconds()) + 60)
        added, _, read, _ = pipe.execute()
        return read, added
    except redis.RedisError as exc:
        logger.warning("distinct-customer tracker unavailable: %s", type(exc).__name__)
        return None


def crossed_a_multiple(read: int, added: int, threshold: int) -> bool:
    """Whether this read took the count past the threshold or past a further multiple of it.

    Once someone is over the threshold every further read would otherwise bump the open alert
    (a locked transaction and a history row per request); the alert's count now says how many
    multiples of the threshold were passed."""
    before = read - added
    return read > threshold and (before <= threshold or before // threshold != read // threshold)


def _distinct_customers(event: AuditEvent, limits: Thresholds):
    if event.action not in READ_ACTIONS or event.actor_id is None or event.resource != CUSTOMER_RESOURCE:
        return []
    if not event.object_ids:
        return []
    tracked = _distinct_customers_tracked(event, limits.distinct_customers_window)
    if tracked is None:  # Redis unavailable: count from the audit table instead (slower, exact)
        read = distinct_customers_read(event.actor_id, _since(limits.distinct_customers_window))
        if read <= limits.distinct_customers:
            return []
    else:
        read, added = tracked
        if not crossed_a_multiple(read, added, limits.distinct_customers):
            return []
    return [
        raise_alert(
            Rule.DISTINCT_CUSTOMERS,
            f"user:{event.actor_id}",
            AlertSeverity.HIGH,
            detail={"distinct_customers": read},
            window=limits.distinct_customers_window,
        )
    ]


def is_out_of_hours(moment: datetime, hours: tuple[int, int] | None, zone: str) -> bool:
    if hours is None:
        return False
    local = moment.astimezone(ZoneInfo(zone))
    return not (hours[0] <= local.hour < hours[1])


def _out_of_hours(event: AuditEvent, limits: Thresholds):
    if event.actor_id is None or not event.success:
        return []
    if event.action not in READ_ACTIONS and event.action != AuditAction.LOGIN:
        return []
    if not is_out_of_hours(event.timestamp, limits.business_hours, limits.timezone):
        return []
    return [
        raise_alert(
            Rule.OUT_OF_HOURS,
            f"user:{event.actor_id}",
            AlertSeverity.LOW,
            detail={"action": event.action, "at": event.timestamp.isoformat()},
        )
    ]


_CHECKS = [_failed_logins, _large_export, _permission_denials, _distinct_customers, _out_of_hours]


def summary_since(since: datetime) -> dict[str, int]:
    """Alerts raised since ``since`` by rule (the daily review's figure)."""
    rows = SecurityAlert.objects.filter(first_seen__gte=since).values("rule").annotate(n=Count("id"))
    return {row["rule"]: row["n"] for row in rows.order_by("rule")}


# --- Notifications ---------------------------------------------------------------------------


def payload(alert: SecurityAlert) -> dict:
    return {
        "id": alert.pk,
        "rule": alert.rule,
        "severity": alert.severity,
        "subject": alert.subject,
        "count": alert.count,
        "status": alert.status,
        "first_seen": alert.first_seen.isoformat(),
        "last_seen": alert.last_seen.isoformat(),
    }


def sign(body: bytes, timestamp: str, secret: str) -> str:
    """``sha256=<hex>`` of HMAC-SHA256 over ``<timestamp>.<body>`` (the receiver checks both)."""
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def send_email(alert: SecurityAlert) -> bool:
    recipients = list(settings.ALERT_EMAIL_TO)
    if not recipients:
        return False
    data = payload(alert)
    body = "\n".join(f"{key}: {value}" for key, value in data.items())
    send_mail(
        f"[portal alert] {alert.severity}: {alert.rule}",
        body + "\n\nOpen the alert in the admin to acknowledge or resolve it.",
        settings.ALERT_EMAIL_FROM,
        recipients,
        fail_silently=False,
    )
    return True


def send_webhook(alert: SecurityAlert) -> bool:
    url = settings.ALERT_WEBHOOK_URL
    secret = settings.ALERT_WEBHOOK_SECRET
    if not url or not secret:
        return False
    if not url.startswith(("https://", "http://")):
        raise ValueError("ALERT_WEBHOOK_URL must be an http(s) URL")
    body = json.dumps(payload(alert), sort_keys=True).encode()
    timestamp = str(int(time.time()))
    request = urllib.request.Request(  # noqa: S310 - scheme checked above
        url,
        data=body,
        method="POST",
        headers={
            "Content-Type": "application/json",
            "X-Portal-Timestamp": timestamp,
            "X-Portal-Signature": sign(body, timestamp, secret),
        },
    )
    with urllib.request.urlopen(request, timeout=settings.ALERT_WEBHOOK_TIMEOUT) as response:  # noqa: S310
        if response.status >= 300:
            raise RuntimeError(f"webhook answered {response.status}")
    return True


def notify(alert: SecurityAlert) -> dict[str, bool]:
    """Send the alert by email and webhook (each when configured); raise if a channel fails."""
    return {"email": send_email(alert), "webhook": send_webhook(alert)}
