"""Security events (hash-chained, append-only), chain checks and security alerts."""

from datetime import timedelta

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.contrib.postgres.indexes import GinIndex
from django.db import models
from django.utils import timezone

from audit.choices import AlertSeverity, AlertStatus, AuditAction, IncidentStageName


class AuditEvent(models.Model):
    """One security event in the seed's JSON shape.  Append-only: never updated or deleted.

    The actor is kept as id and email *at that time* (no foreign key: the trail must outlive
    and never cascade from the account).  ``prev_hash`` is the previous event's ``hash`` and
    ``hash`` the SHA-256 of this event's canonical form (``audit.chain``): editing, removing or
    slipping in a row breaks the chain at that row."""

    timestamp = models.DateTimeField(default=timezone.now)
    actor_id = models.BigIntegerField(null=True, blank=True)
    actor_email = models.CharField(max_length=254, blank=True, default="")
    action = models.CharField(max_length=32, choices=AuditAction.choices)
    resource = models.CharField(max_length=100, blank=True, default="")
    object_ids = models.JSONField(default=list, blank=True)
    rows = models.IntegerField(null=True, blank=True)
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=256, blank=True, default="")
    request_id = models.CharField(max_length=64, blank=True, default="")
    success = models.BooleanField(default=True)
    reason = models.CharField(max_length=500, blank=True, default="")
    extra = models.JSONField(default=dict, blank=True)
    prev_hash = models.CharField(max_length=64, editable=False, default="")
    hash = models.CharField(max_length=64, editable=False, default="")

    class Meta:
        ordering = ["-id"]
        # Every admin filter and investigation is an index range: no LIKE, no full scan.
        indexes = [
            models.Index(fields=["timestamp"], name="audit_event_ts"),
            models.Index(fields=["actor_id", "timestamp"], name="audit_event_actor_ts"),
            models.Index(fields=["actor_email", "timestamp"], name="audit_event_email_ts"),
            models.Index(fields=["resource", "timestamp"], name="audit_event_resource_ts"),
            models.Index(fields=["action", "timestamp"], name="audit_event_action_ts"),
            models.Index(fields=["ip_address", "timestamp"], name="audit_event_ip_ts"),
            # "Everyone who touched customer 42": object_ids @> '["42"]'.
            GinIndex(fields=["object_ids"], name="audit_event_object_ids", opclasses=["jsonb_path_ops"]),
        ]

    def __str__(self):
        return f"#{self.pk} {self.timestamp:%Y-%m-%dT%H:%M:%SZ} {self.action} {self.resource}"

    def as_record(self) -> dict:
        """The seed's JSON record."""
        record = {
            "timestamp": self.timestamp.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "user": self.actor_email,
            "action": self.action,
            "resource": self.resource,
            "ip_address": self.ip_address,
            "success": self.success,
        }
        if self.action == AuditAction.EXPORT_DATA and self.rows is not None:
            record["rows_exported"] = self.rows
        elif self.rows is not None:
            record["rows"] = self.rows
        if self.object_ids:
            record["object_ids"] = self.object_ids
        if self.reason:
            record["reason"] = self.reason
        record["request_id"] = self.request_id
        return record

    def as_export(self) -> dict:
        """The seed's record plus what a SIEM needs to correlate and check the chain."""
        return {
            "id": self.pk,
            **self.as_record(),
            "timestamp_precise": self.timestamp.isoformat(),
            "actor_id": self.actor_id,
            "user_agent": self.user_agent,
            "extra": self.extra,
            "prev_hash": self.prev_hash,
            "hash": self.hash,
        }


class AuditChainCheck(models.Model):
    """One run of the chain verifier: the daily review's evidence, and the anchor for the next run.

    Append-only like the events.  The next run checks that the head recorded here is still in
    place, so cutting events off the end of the chain is caught as well."""

    checked_at = models.DateTimeField(default=timezone.now)
    ok = models.BooleanField()
    events = models.BigIntegerField(default=0)
    head_id = models.BigIntegerField(null=True, blank=True)
    head_hash = models.CharField(max_length=64, blank=True, default="")
    first_bad_id = models.BigIntegerField(null=True, blank=True)
    detail = models.CharField(max_length=500, blank=True, default="")
    alerts_open = models.IntegerField(default=0)
    alerts_raised_24h = models.IntegerField(default=0)

    class Meta:
        ordering = ["-id"]

    def __str__(self):
        return f"chain check #{self.pk} {'ok' if self.ok else 'BROKEN'} at {self.checked_at:%Y-%m-%d %H:%M}"


class SecurityAlert(models.Model):
    """A rule that fired for one subject; repeats inside the rule's window raise ``count``."""

    rule = models.CharField(max_length=64)
    severity = models.CharField(max_length=16, choices=AlertSeverity.choices)
    # Never personal data in clear: "user:17", "ip:192.0.2.1", "account:<keyed hash>", "gdpr_request:5".
    subject = models.CharField(max_length=200)
    first_seen = models.DateTimeField(default=timezone.now)
    last_seen = models.DateTimeField(default=timezone.now)
    count = models.PositiveIntegerField(default=1)
    status = models.CharField(max_length=16, choices=AlertStatus.choices, default=AlertStatus.OPEN)
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="security_alerts"
    )
    detail = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-last_seen"]
        indexes = [
            models.Index(fields=["rule", "subject", "last_seen"], name="audit_alert_rule_subject"),
            models.Index(fields=["status", "last_seen"], name="audit_alert_status"),
        ]

    def __str__(self):
        return f"{self.rule} [{self.severity}] {self.subject} x{self.count}"


# --- Incident response ----------------------------------------------------------------------


class Incident(models.Model):
    """A security incident worked through the seed's five stages (``IncidentStageName``).

    A breach (personal data affected) starts the GDPR 72-hour clock at ``breach_detected_at``;
    ``audit.incidents.check_breach_deadlines`` alerts while the authority has not been told."""

    title = models.CharField(max_length=200)
    summary = models.TextField(blank=True, default="")
    stage = models.CharField(max_length=16, choices=IncidentStageName.choices, default=IncidentStageName.DETECT)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="incidents_owned"
    )
    alerts = models.ManyToManyField(SecurityAlert, blank=True, related_name="incidents")
    opened_at = models.DateTimeField(default=timezone.now)
    # Categories of personal data affected ("contact", "payment", ...) and how many people.
    data_categories = ArrayField(models.CharField(max_length=64), blank=True, default=list)
    affected_subjects = models.PositiveIntegerField(default=0)
    is_breach = models.BooleanField(default=False, help_text="Personal data breach: starts the 72-hour clock")
    breach_detected_at = models.DateTimeField(null=True, blank=True)
    authority_notified_at = models.DateTimeField(null=True, blank=True)
    subjects_notified_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-opened_at"]
        indexes = [models.Index(fields=["is_breach", "authority_notified_at"], name="audit_incident_breach_open")]

    def __str__(self):
        return f"incident #{self.pk} {self.title} [{self.stage}]"

    @property
    def breach_deadline(self):
        """When the supervisory authority must have been notified (GDPR Art. 33)."""
        if not self.is_breach or self.breach_detected_at is None:
            return None
        return self.breach_detected_at + timedelta(hours=settings.INCIDENT_BREACH_DEADLINE_HOURS)


class IncidentStage(models.Model):
    """When an incident entered one stage, and the notes kept for that stage."""

    incident = models.ForeignKey(Incident, on_delete=models.CASCADE, related_name="stages")
    stage = models.CharField(max_length=16, choices=IncidentStageName.choices)
    at = models.DateTimeField(default=timezone.now)
    by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    notes = models.TextField(blank=True, default="")

    class Meta:
        ordering = ["incident", "at", "id"]
        constraints = [models.UniqueConstraint(fields=["incident", "stage"], name="audit_incident_stage_once")]

    def __str__(self):
        return f"{self.stage} at {self.at:%Y-%m-%d %H:%M}"


class BlockedIP(models.Model):
    """An address the portal answers 403 to (``audit.middleware.BlockedIPMiddleware``)."""

    ip_address = models.GenericIPAddressField(unique=True)
    reason = models.CharField(max_length=200, blank=True, default="")
    incident = models.ForeignKey(Incident, null=True, blank=True, on_delete=models.SET_NULL, related_name="blocked_ips")
    created_at = models.DateTimeField(default=timezone.now)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-created_at"]

    def __str__(self):
        return self.ip_address


class EvidenceSnapshot(models.Model):
    """A frozen JSON Lines export of audit events for an incident.  The file is encrypted at
    rest (``portal.file_crypto``); ``sha256`` is over the plaintext JSON Lines.  Append-only."""

    incident = models.ForeignKey(Incident, on_delete=models.PROTECT, related_name="evidence")
    created_at = models.DateTimeField(default=timezone.now)
    # The actor as id (no foreign key: an append-only row neither cascades nor blocks a deletion).
    actor_id = models.BigIntegerField(null=True, blank=True)
    period_start = models.DateTimeField()
    period_end = models.DateTimeField()
    selection = models.JSONField(default=dict, blank=True)  # {"actor_ids": [...], "ips": [...]}
    events = models.IntegerField(default=0)
    first_event_id = models.BigIntegerField(null=True, blank=True)
    last_event_id = models.BigIntegerField(null=True, blank=True)
    sha256 = models.CharField(max_length=64)
    path = models.CharField(max_length=500)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self):
        return f"evidence #{self.pk} of incident {self.incident_id} ({self.events} events)"
