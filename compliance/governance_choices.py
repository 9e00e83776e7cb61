"""Choices of the governance models: retention, checklist, attestations, vendors, verifications."""

from django.db import models


class RetentionAction(models.TextChoices):
    DELETE = "delete", "Delete"
    ARCHIVE = "archive", "Archive, then delete"
    ANONYMISE = "anonymise", "Anonymise (remove the link to the person)"


class RunStatus(models.TextChoices):
    RUNNING = "running", "Running"  # also: interrupted (the worker died); the next run resumes it
    COMPLETED = "completed", "Completed"
    STOPPED = "stopped", "Stopped (legal hold placed or policy disabled mid-run)"
    FAILED = "failed", "Failed"


class RunTrigger(models.TextChoices):
    SCHEDULE = "schedule", "Nightly schedule"
    COMMAND = "command", "manage.py run_retention"
    ADMIN = "admin", "Run now (admin)"


class ItemStatus(models.TextChoices):
    PASS = "pass", "Pass"
    FAIL = "fail", "Fail"
    ATTENTION = "attention", "Needs evidence"


class ChecklistItem(models.TextChoices):
    """The seed's monthly checklist, in its order."""

    ENCRYPTION_AT_REST = "encryption_at_rest", "All data encrypted at rest"
    ENCRYPTION_IN_TRANSIT = "encryption_in_transit", "All data encrypted in transit"
    ACCESS_CONTROLS = "access_controls", "Access controls properly configured"
    AUDIT_LOGS = "audit_logs", "Audit logs being collected"
    INACTIVE_ACCOUNTS = "inactive_accounts", "Inactive accounts disabled"
    DEPENDENCIES = "dependencies", "Dependencies updated"
    TRAINING = "training", "Security training completed"
    BACKUP_RESTORE = "backup_restore", "Backup restoration tested"
    INCIDENT_PLAN = "incident_plan", "Incident response plan reviewed"
    VENDORS = "vendors", "Third-party vendors assessed"


class SnapshotTrigger(models.TextChoices):
    SCHEDULE = "schedule", "Monthly schedule"
    MANUAL = "manual", "Taken by hand"


class ScanResult(models.TextChoices):
    PASS = "pass", "No known vulnerability"
    FAIL = "fail", "Vulnerabilities found"
    ERROR = "error", "The scan did not complete"


class AssessmentResult(models.TextChoices):
    APPROVED = "approved", "Approved"
    CONDITIONAL = "conditional", "Approved with conditions"
    REJECTED = "rejected", "Rejected"
