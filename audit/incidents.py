"""Incident response: stages, the GDPR 72-hour breach clock, and containment actions.

Who may do what is ``accounts.policy.INCIDENT_RULES``; callers (the admin) check it.  Every
containment action writes one INCIDENT_CONTAINMENT event (the account services it reuses write
their own USER_DISABLED / TOKEN_REVOKED events as well).
"""

import hashlib
import ipaddress
import json
import logging
import os
import uuid
from datetime import datetime, timedelta
from pathlib import Path

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from audit import services as audit
from audit.alerts import Rule, raise_alert
from audit.choices import INCIDENT_STAGE_ORDER, AlertSeverity, AuditAction, ContainmentAction
from audit.models import AuditEvent, BlockedIP, EvidenceSnapshot, Incident, IncidentStage, SecurityAlert
from portal import file_crypto
from portal.ids import parse_id

logger = logging.getLogger("audit.incidents")

BLOCKED_IPS_CACHE_SECONDS = 30
# Evidence by default covers this long before the earliest linked alert.
EVIDENCE_LEAD = timedelta(hours=24)


class IncidentError(ValueError):
    pass


# --- Stages ----------------------------------------------------------------------------------


def open_incident(title: str, *, actor=None, owner=None, summary: str = "", notes: str = "", **fields) -> Incident:
    """Create an incident in the detect stage (with its first stage entry)."""
    with transaction.atomic():
        incident = Incident.objects.create(title=title, owner=owner, summary=summary, **fields)
        start_incident(incident, actor=actor, notes=notes)
    return incident


def start_incident(incident: Incident, *, actor=None, notes: str = "") -> None:
    """For a just-created incident: its first stage entry, the breach clock, the audit events."""
    IncidentStage.objects.create(
        incident=incident, stage=incident.stage, at=incident.opened_at, by=_user(actor), notes=notes
    )
    audit.record(AuditAction.INCIDENT_OPENED, actor=actor, resource="incident", object_ids=[incident.pk])
    breach_fields_changed(incident, {}, actor=actor)


def move_to_stage(incident: Incident, stage: str, *, actor=None, notes: str = "") -> IncidentStage:
    """Move the incident forward to ``stage`` (stages are skipped, never revisited)."""
    if stage not in INCIDENT_STAGE_ORDER:
        raise IncidentError(f"unknown stage {stage!r}")
    if INCIDENT_STAGE_ORDER.index(stage) <= INCIDENT_STAGE_ORDER.index(incident.stage):
        raise IncidentError(f"an incident in {incident.stage!r} cannot move to {stage!r}")
    previous = incident.stage
    with transaction.atomic():
        entry = IncidentStage.objects.create(incident=incident, stage=stage, by=_user(actor), notes=notes)
        incident.stage = stage
        incident.save(update_fields=["stage"])
    audit.record(
        AuditAction.INCIDENT_STAGE_CHANGED,
        actor=actor,
        resource="incident",
        object_ids=[incident.pk],
        extra={"from": previous, "to": stage},
    )
    return entry


def _user(actor):
    return actor if actor is not None and getattr(actor, "is_authenticated", False) else None


# --- The breach clock ------------------------------------------------------------------------


def _record_breach(incident: Incident, actor, reason: str) -> None:
    audit.record(
        AuditAction.BREACH_RECORDED,
        actor=actor,
        resource="incident",
        object_ids=[incident.pk],
        reason=reason,
        extra={"affected_subjects": incident.affected_subjects, "categories": list(incident.data_categories)},
    )


def breach_fields_changed(incident: Incident, before: dict, *, actor=None) -> None:
    """Start the clock when the flag is first set, and audit recorded notification times.

    ``before`` holds the breach fields as they were; call after the incident was saved."""
    if incident.is_breach and incident.breach_detected_at is None:
        incident.breach_detected_at = timezone.now()
        incident.save(update_fields=["breach_detected_at"])
    if incident.is_breach and not before.get("is_breach"):
        _record_breach(incident, actor, "breach flagged")
    for field in ("authority_notified_at", "subjects_notified_at"):
        if getattr(incident, field) and getattr(incident, field) != before.get(field):
            _record_breach(incident, actor, field.removesuffix("_at").replace("_", " "))


BREACH_FIELDS = ("is_breach", "breach_detected_at", "authority_notified_at", "subjects_notified_at")


def breach_snapshot(incident: Incident) -> dict:
    return {field: getattr(incident, field) for field in BREACH_FIELDS}


def check_breach_deadlines(now: datetime | None = None) -> list[SecurityAlert]:
    """Alert on breaches whose authority notification is still missing 48 and 72 hours (the
    settings) after detection.  Each threshold opens one alert per incident, once."""
    now = now or timezone.now()
    thresholds = [
        (timedelta(hours=settings.INCIDENT_BREACH_WARN_HOURS), Rule.BREACH_NOTIFICATION_DUE, AlertSeverity.HIGH),
        (
            timedelta(hours=settings.INCIDENT_BREACH_DEADLINE_HOURS),
            Rule.BREACH_NOTIFICATION_OVERDUE,
            AlertSeverity.CRITICAL,
        ),
    ]
    earliest = now - min(delay for delay, _, _ in thresholds)
    pending = Incident.objects.filter(
        is_breach=True, authority_notified_at__isnull=True, breach_detected_at__lte=earliest
    ).order_by("pk")
    raised = []
    for incident in pending:
        subject = f"incident:{incident.pk}"
        for delay, rule, severity in thresholds:
            if incident.breach_detected_at > now - delay:
                continue
            if SecurityAlert.objects.filter(rule=rule, subject=subject).exists():
                continue
            deadline = incident.breach_deadline
            raised.append(
                raise_alert(
                    rule,
                    subject,
                    severity,
                    detail={
                        "breach_detected_at": incident.breach_detected_at.isoformat(),
                        "deadline": deadline.isoformat() if deadline else "",
                    },
                )
            )
    return raised


# --- Containment -----------------------------------------------------------------------------


def _contained(incident: Incident, action: str, actor, *, object_ids=(), rows=None, extra=None) -> None:
    audit.record(
        AuditAction.INCIDENT_CONTAINMENT,
        actor=actor,
        resource="incident",
        object_ids=[incident.pk, *object_ids],
        rows=rows,
        reason=action,
        extra={"action": action, **(extra or {})},
    )


def disable_account(incident: Incident, user, *, actor) -> None:
    """Disable the account (its sessions and tokens end with it: ``accounts.signals``)."""
    from accounts import services

    if user.is_active:
        services.disable_user(user.email, actor=actor, reason=f"incident {incident.pk}: account disabled")
    _contained(incident, ContainmentAction.DISABLE_ACCOUNT, actor, extra={"user_id": user.pk})


def revoke_sessions(incident: Incident, user, *, actor) -> tuple[int, int]:
    """End every browser session and API token of the account; returns (sessions, tokens)."""
    from accounts import services

    sessions, tokens = services.end_sessions_and_tokens(
        user, actor=actor, reason=f"incident {incident.pk}: sessions revoked"
    )
    _contained(
        incident,
        ContainmentAction.REVOKE_SESSIONS,
        actor,
        extra={"user_id": user.pk, "sessions": sessions, "tokens": tokens},
    )
    return sessions, tokens


def normalise_ip(value: str) -> str:
    try:
        return ipaddress.ip_address((value or "").strip()).compressed
    except ValueError as exc:
        raise IncidentError(f"not an IP address: {str(value)[:45]!r}") from exc


def block_ip(incident: Incident, ip: str, *, actor, reason: str = "") -> BlockedIP:
    address = normalise_ip(ip)
    blocked, _ = BlockedIP.objects.get_or_create(
        ip_address=address,
        defaults={
            "incident": incident,
            "reason": reason[:200] or f"incident {incident.pk}",
            "created_by": _user(actor),
        },
    )
    forget_blocked_ips()
    _contained(incident, ContainmentAction.BLOCK_IP, actor, extra={"ip": address})
    return blocked


def unblock_ip(blocked: BlockedIP, *, actor) -> None:
    address, incident_id = blocked.ip_address, blocked.incident_id
    blocked.delete()
    forget_blocked_ips()
    audit.record(
        AuditAction.INCIDENT_CONTAINMENT,
        actor=actor,
        resource="incident",
        object_ids=[incident_id] if incident_id else [],
        reason="unblock_ip",
        extra={"action": "unblock_ip", "ip": address},
    )


def blocked_ips_cache_key() -> str:
    # Keyed by database too, so separate portals (and test runs) sharing a Redis never mix.
    return f"audit:blocked-ips:{settings.DATABASES['default']['NAME']}"


def forget_blocked_ips() -> None:
    """Drop the cached set now and again after commit (a request in between may have cached
    the old set); other processes re-read within BLOCKED_IPS_CACHE_SECONDS anyway."""
    _drop_blocked_cache()
    transaction.on_commit(_drop_blocked_cache)


def _drop_blocked_cache() -> None:
    try:
        cache.delete(blocked_ips_cache_key())
    except Exception as exc:  # cache down: the entry expires by itself
        logger.warning("could not drop the blocked-address cache: %s", type(exc).__name__)


def blocked_ips() -> frozenset[str]:
    """The blocked addresses: from the cache (30 s), or from the database when the cache fails."""
    try:
        cached = cache.get(blocked_ips_cache_key())
    except Exception as exc:
        logger.warning("blocked-address cache unavailable: %s", type(exc).__name__)
        return _blocked_from_db()
    if cached is not None:
        return frozenset(cached)
    addresses = _blocked_from_db()
    try:
        cache.set(blocked_ips_cache_key(), sorted(addresses), BLOCKED_IPS_CACHE_SECONDS)
    except Exception as exc:
        logger.warning("blocked-address cache unavailable: %s", type(exc).__name__)
    return addresses


def _blocked_from_db() -> frozenset[str]:
    return frozenset(BlockedIP.objects.values_list("ip_address", flat=True))


def is_blocked(ip: str) -> bool:
    if not ip:
        return False
    try:
        address = ipaddress.ip_address(ip).compressed
    except ValueError:
        return False
    return address in blocked_ips()


# --- Evidence --------------------------------------------------------------------------------


def alert_subjects(incident: Incident) -> tuple[list[int], list[str]]:
    """Users and addresses named by the incident's alerts ("user:17", "ip:192.0.2.1")."""
    actor_ids, ips = set(), set()
    for subject in incident.alerts.values_list("subject", flat=True):
        kind, _, value = subject.partition(":")
        if kind == "user" and (actor_id := parse_id(value)) is not None:
            actor_ids.add(actor_id)
        elif kind == "ip":
            try:
                ips.add(ipaddress.ip_address(value).compressed)
            except ValueError:
                continue
    return sorted(actor_ids), sorted(ips)


def evidence_period(incident: Incident) -> tuple[datetime, datetime]:
    first = incident.alerts.order_by("first_seen").values_list("first_seen", flat=True).first()
    start = min(filter(None, [first, incident.opened_at])) - EVIDENCE_LEAD
    return start, timezone.now()


def evidence_events(incident: Incident, start: datetime, end: datetime):
    """The audit events of the period that concern the alerts' subjects (all of the period's
    events when the linked alerts name no user or address)."""
    actor_ids, ips = alert_subjects(incident)
    events = AuditEvent.objects.filter(timestamp__gte=start, timestamp__lt=end)
    if actor_ids or ips:
        events = events.filter(Q(actor_id__in=actor_ids) | Q(ip_address__in=ips))
    return events.order_by("id"), {"actor_ids": actor_ids, "ips": ips}


def preserve_evidence(
    incident: Incident, *, actor, start: datetime | None = None, end: datetime | None = None
) -> EvidenceSnapshot:
    """Freeze the relevant audit events as JSON Lines: SHA-256 over the plaintext, the file
    encrypted at rest, and an append-only EvidenceSnapshot row naming both."""
    default_start, default_end = evidence_period(incident)
    start, end = start or default_start, end or default_end
    if start >= end:
        raise IncidentError("the evidence period must start before it ends")
    events, selection = evidence_events(incident, start, end)
    limit = settings.AUDIT_EXPORT_MAX_ROWS
    lines, first_id, last_id = [], None, None
    for event in events[: limit + 1].iterator(chunk_size=2000):
        lines.append(json.dumps(event.as_export(), sort_keys=True, default=str) + "\n")
        first_id = first_id or event.pk
        last_id = event.pk
    if len(lines) > limit:
        raise IncidentError(f"more than {limit} events in that period; narrow it")
    body = "".join(lines).encode()
    digest = hashlib.sha256(body).hexdigest()
    directory = Path(settings.INCIDENT_EVIDENCE_DIR)
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = directory / f"incident-{incident.pk}-{uuid.uuid4().hex}.jsonl.enc"
    # Written once, never replaced: exclusive create, read-only afterwards.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(file_crypto.encrypt_bytes(body))
    path.chmod(0o400)
    snapshot = EvidenceSnapshot.objects.create(
        incident=incident,
        actor_id=actor.pk if _user(actor) else None,
        period_start=start,
        period_end=end,
        selection=selection,
        events=len(lines),
        first_event_id=first_id,
        last_event_id=last_id,
        sha256=digest,
        path=str(path),
    )
    _contained(
        incident,
        ContainmentAction.PRESERVE_EVIDENCE,
        actor,
        object_ids=[],
        rows=len(lines),
        extra={"snapshot": snapshot.pk, "sha256": digest},
    )
    return snapshot


def read_evidence(snapshot: EvidenceSnapshot) -> bytes:
    """The snapshot's plaintext JSON Lines; raises if it no longer matches its hash."""
    body = file_crypto.decrypt_bytes(Path(snapshot.path).read_bytes())
    if hashlib.sha256(body).hexdigest() != snapshot.sha256:
        raise IncidentError(f"evidence #{snapshot.pk} does not match its hash")
    return body
