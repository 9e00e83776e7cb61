"""Security events: who did what to which resource, when, from where, and whether it worked."""

from django.db import models
from django.utils import timezone

from audit.choices import AuditAction


class AuditEvent(models.Model):
    """One security event in the seed's JSON shape.  Append-only: never updated or deleted.

    The actor is kept as id and email *at that time* (no foreign key: the trail must outlive
    and never cascade from the account)."""

    timestamp = models.DateTimeField(default=timezone.now, db_index=True)
    actor_id = models.BigIntegerField(null=True, blank=True, db_index=True)
    actor_email = models.CharField(max_length=254, blank=True, default="")
    action = models.CharField(max_length=32, choices=AuditAction.choices, db_index=True)
    resource = models.CharField(max_length=100, blank=True, default="", db_index=True)
    object_ids = models.JSONField(default=list, blank=True)
    rows = models.IntegerField(null=True, blank=True)
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=256, blank=True, default="")
    request_id = models.CharField(max_length=64, blank=True, default="")
    success = models.BooleanField(default=True)
    reason = models.CharField(max_length=500, blank=True, default="")
    extra = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self):
        return f"{self.timestamp:%Y-%m-%dT%H:%M:%SZ} {self.action} {self.resource}"

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
