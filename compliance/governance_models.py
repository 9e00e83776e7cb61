"""Governance models: retention policies, runs and proofs, the order archive, the monthly
checklist (snapshots, attestations, scans, backup verifications) and vendor records.

Imported by ``compliance.models``; the subject-request models live there.  Nothing here holds a
customer's name, email or phone: runs and proofs carry ids, counts and digests only.
"""

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone

from compliance.governance_choices import (
    AssessmentResult,
    ChecklistItem,
    ItemStatus,
    RetentionAction,
    RunStatus,
    RunTrigger,
    ScanResult,
    SnapshotTrigger,
)
from compliance.retention_datasets import AGE_FIELD_CHOICES, DATASET_CHOICES, DATASETS

__all__ = [
    "ArchivedOrder",
    "Attestation",
    "BackupVerification",
    "ChecklistSnapshot",
    "MonthlyChecklist",
    "RecordOfProcessing",
    "RetentionPolicy",
    "RetentionProof",
    "RetentionRun",
    "Vendor",
    "VendorAssessment",
    "VulnerabilityScan",
]

DIGEST_GENESIS = "0" * 64


class RetentionPolicy(models.Model):
    """How long one dataset is kept and what happens after.  Editable in the admin; a changed
    rule is disabled until a fresh preview (counts, oldest row) has been looked at."""

    dataset = models.CharField(max_length=32, choices=DATASET_CHOICES, unique=True)
    age_field = models.CharField(max_length=32, choices=AGE_FIELD_CHOICES)
    max_age_days = models.PositiveIntegerField(validators=[MinValueValidator(1)])
    action = models.CharField(max_length=16, choices=RetentionAction.choices)
    basis = models.CharField(max_length=500, help_text="Why this period (law, contract, purpose)")
    enabled = models.BooleanField(default=False, editable=False)
    legal_hold = models.BooleanField(default=False, help_text="While on, nothing of this dataset is purged")
    legal_hold_reason = models.CharField(max_length=500, blank=True, default="")
    legal_hold_since = models.DateTimeField(null=True, blank=True, editable=False)
    # The last preview: what enabling was based on.
    previewed_at = models.DateTimeField(null=True, blank=True, editable=False)
    previewed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+", editable=False
    )
    preview_cutoff = models.DateTimeField(null=True, blank=True, editable=False)
    preview_rows = models.BigIntegerField(null=True, blank=True, editable=False)
    preview_oldest_id = models.BigIntegerField(null=True, blank=True, editable=False)
    preview_oldest_at = models.DateTimeField(null=True, blank=True, editable=False)
    preview_rule = models.CharField(max_length=200, blank=True, default="", editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["dataset"]
        verbose_name_plural = "retention policies"

    def __str__(self):
        return f"{self.get_dataset_display()}: {self.get_action_display().lower()} after {self.max_age_days} days"

    @property
    def spec(self):
        return DATASETS[self.dataset]

    def rule(self) -> str:
        """What a preview certifies: the rule's parameters (a changed rule needs a new preview)."""
        return f"{self.dataset}|{self.age_field}|{self.max_age_days}|{self.action}"

    def clean(self):
        spec = DATASETS.get(self.dataset)
        if spec is None:
            return
        errors = {}
        if self.age_field not in spec.age_fields:
            errors["age_field"] = f"{spec.label} are aged by: {', '.join(spec.age_fields)}."
        if self.action and self.action not in spec.actions:
            allowed = ", ".join(RetentionAction(a).label.lower() for a in spec.actions)
            errors["action"] = f"{spec.label} allow: {allowed}."
        if self.legal_hold and not self.legal_hold_reason.strip():
            errors["legal_hold_reason"] = "A legal hold needs its reason (matter, request, authority)."
        if errors:
            raise ValidationError(errors)


class RetentionRun(models.Model):
    """One application of a policy.  Counters, cursor and digest change in the same transaction
    as each batch, so after a crash they describe exactly what was committed; the next run of the
    policy resumes this one (same cutoff, same rule)."""

    policy = models.ForeignKey(RetentionPolicy, on_delete=models.PROTECT, related_name="runs")
    rule = models.JSONField(help_text="The policy as it was when the run started")
    trigger = models.CharField(max_length=16, choices=RunTrigger.choices)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    cutoff = models.DateTimeField()
    status = models.CharField(max_length=16, choices=RunStatus.choices, default=RunStatus.RUNNING)
    started_at = models.DateTimeField(default=timezone.now)
    heartbeat_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)
    batches = models.PositiveIntegerField(default=0)
    rows_deleted = models.BigIntegerField(default=0)
    rows_archived = models.BigIntegerField(default=0)
    rows_anonymised = models.BigIntegerField(default=0)
    # Where the run is: the next heap block to scan, the window it scans per batch (adapted to the
    # density of expired rows), and the pass (a pass that leaves rows behind is followed by another).
    cursor_block = models.BigIntegerField(default=0)
    window_blocks = models.PositiveIntegerField(default=64)
    passes = models.PositiveSmallIntegerField(default=1)
    digest = models.CharField(
        max_length=64, default=DIGEST_GENESIS, help_text="Set fingerprint of the ids handled (see the proof)"
    )
    resumed = models.PositiveIntegerField(default=0)
    largest_batch_rows = models.PositiveIntegerField(default=0)
    longest_batch_ms = models.PositiveIntegerField(default=0)
    error = models.CharField(max_length=300, blank=True, default="")

    class Meta:
        ordering = ["-started_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["policy"], condition=Q(status=RunStatus.RUNNING), name="one_unfinished_run_per_policy"
            )
        ]

    def __str__(self):
        return f"Retention run #{self.pk} ({self.rule.get('dataset')}, {self.status})"


class RetentionProof(models.Model):
    """The proof-of-deletion record of one run: what rule, which cutoff, how many rows, the digest
    of the ids handled, and the post-condition (rows still older than the cutoff: 0).  Its SHA-256
    is written into the run's RETENTION_PURGE audit event, whose hash is kept here: each vouches
    for the other, and the audit chain makes both tamper-evident."""

    run = models.OneToOneField(RetentionRun, on_delete=models.PROTECT, related_name="proof")
    created_at = models.DateTimeField(default=timezone.now)
    document = models.JSONField()
    sha256 = models.CharField(max_length=64)
    audit_event_id = models.BigIntegerField(null=True, blank=True)
    audit_event_hash = models.CharField(max_length=64, blank=True, default="")

    class Meta:
        ordering = ["-created_at"]

    def __str__(self):
        return f"Proof of run #{self.run_id} ({self.sha256[:12]})"


class ArchivedOrder(models.Model):
    """An order past its active retention, kept for the legal period out of day-to-day use.

    The primary key is the original order id (archiving twice cannot duplicate).  No foreign
    keys: the archive outlives customers and must not cascade from them; an erasure anonymises
    ``customer_id`` here too (``compliance.retention_datasets.archive_tables``).  Row-level
    security: read by ``policy.ARCHIVE_READER_ROLES``, written by the system role only."""

    id = models.BigIntegerField(primary_key=True)
    customer_id = models.BigIntegerField(null=True, blank=True, db_index=True)
    team_id = models.BigIntegerField(db_index=True)
    amount = models.DecimalField(max_digits=12, decimal_places=2)
    currency = models.CharField(max_length=3)
    status = models.CharField(max_length=16)
    created_at = models.DateTimeField()
    archived_at = models.DateTimeField(default=timezone.now)
    run_id = models.BigIntegerField(null=True, blank=True)

    class Meta:
        ordering = ["id"]

    def __str__(self):
        return f"Archived order #{self.pk}"


class Vendor(models.Model):
    """A third party that receives or processes personal data (processor or sub-processor)."""

    name = models.CharField(max_length=200, unique=True)
    service = models.CharField(max_length=300, help_text="What they do for us")
    data_shared = models.TextField(max_length=2000, help_text="Categories of personal data shared, and whose")
    handles_health_data = models.BooleanField(default=False, help_text="PHI: a BAA is required (HIPAA)")
    dpa_signed_on = models.DateField(null=True, blank=True, help_text="Data processing agreement (GDPR Art. 28)")
    baa_signed_on = models.DateField(null=True, blank=True, help_text="Business associate agreement (HIPAA)")
    transfers_outside_eea = models.BooleanField(default=False)
    transfer_safeguards = models.CharField(max_length=300, blank=True, default="", help_text="e.g. SCCs 2021/914")
    assessment_interval_days = models.PositiveIntegerField(default=365, validators=[MinValueValidator(1)])
    last_assessed_on = models.DateField(null=True, blank=True, editable=False)
    active = models.BooleanField(default=True)
    notes = models.TextField(max_length=2000, blank=True, default="")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name

    def clean(self):
        if self.transfers_outside_eea and not self.transfer_safeguards.strip():
            raise ValidationError({"transfer_safeguards": "A transfer outside the EEA needs its safeguard."})

    def problems(self, today=None) -> list[str]:
        """Why this vendor fails the monthly check (empty: it passes)."""
        today = today or timezone.localdate()
        found = []
        if self.dpa_signed_on is None:
            found.append("no DPA signed")
        if self.handles_health_data and self.baa_signed_on is None:
            found.append("health data without a BAA")
        if self.last_assessed_on is None:
            found.append("never assessed")
        elif (today - self.last_assessed_on).days > self.assessment_interval_days:
            found.append(f"last assessed {self.last_assessed_on.isoformat()}: overdue")
        return found


class VendorAssessment(models.Model):
    """One assessment of a vendor: who, when, the result and the evidence.  Never edited."""

    vendor = models.ForeignKey(Vendor, on_delete=models.PROTECT, related_name="assessments")
    assessed_on = models.DateField(default=timezone.localdate)
    assessed_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    result = models.CharField(max_length=16, choices=AssessmentResult.choices)
    summary = models.TextField(max_length=4000)
    evidence = models.CharField(max_length=500, help_text="Where the evidence is: SOC 2 report, questionnaire, URL")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-assessed_on", "-id"]

    def __str__(self):
        return f"{self.vendor} assessed {self.assessed_on} ({self.result})"


class Attestation(models.Model):
    """A person vouching for a checklist item no program can measure (training, incident plan
    review, ...): who, when, what, the evidence, and until when it holds.  Never edited."""

    item = models.CharField(max_length=32, choices=ChecklistItem.choices)
    attested_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    attested_at = models.DateTimeField(default=timezone.now)
    statement = models.TextField(max_length=2000)
    evidence = models.CharField(max_length=500, help_text="Where the evidence is (document, ticket, URL)")
    valid_until = models.DateField()

    class Meta:
        ordering = ["-attested_at", "-id"]
        indexes = [models.Index(fields=["item", "valid_until"], name="attestation_item_valid")]

    def __str__(self):
        return f"{self.get_item_display()} attested {self.attested_at:%Y-%m-%d}"


class VulnerabilityScan(models.Model):
    """The result of one dependency vulnerability scan (written by ``manage.py record_scan``)."""

    ran_at = models.DateTimeField(default=timezone.now)
    tool = models.CharField(max_length=100)
    result = models.CharField(max_length=8, choices=ScanResult.choices)
    packages = models.PositiveIntegerField(default=0)
    findings = models.PositiveIntegerField(default=0)
    detail = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-ran_at", "-id"]

    def __str__(self):
        return f"{self.tool} {self.ran_at:%Y-%m-%d}: {self.result}"


class BackupVerification(models.Model):
    """One ``verify_backup``: dump, restore into a scratch database, compare, record."""

    started_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)
    ok = models.BooleanField(default=False)
    server_version = models.CharField(max_length=64, blank=True, default="")
    tool_version = models.CharField(max_length=100, blank=True, default="")
    tables = models.PositiveIntegerField(default=0)
    rows = models.BigIntegerField(default=0)
    mismatches = models.JSONField(default=list, blank=True)
    sampled_values = models.PositiveIntegerField(default=0)
    sample_mismatches = models.PositiveIntegerField(default=0)
    dump_bytes = models.BigIntegerField(default=0)
    dump_sha256 = models.CharField(max_length=64, blank=True, default="")
    detail = models.CharField(max_length=500, blank=True, default="")
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-started_at", "-id"]

    def __str__(self):
        return f"Backup verification {self.started_at:%Y-%m-%d %H:%M}: {'ok' if self.ok else 'FAILED'}"


class ChecklistSnapshot(models.Model):
    """The monthly checklist as computed at one moment, kept as evidence (with its SHA-256)."""

    period = models.CharField(max_length=7, help_text="Month, e.g. 2026-05")
    taken_at = models.DateTimeField(default=timezone.now)
    taken_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    trigger = models.CharField(max_length=16, choices=SnapshotTrigger.choices)
    items = models.JSONField()
    passed = models.PositiveSmallIntegerField(default=0)
    failed = models.PositiveSmallIntegerField(default=0)
    attention = models.PositiveSmallIntegerField(default=0)
    sha256 = models.CharField(max_length=64)

    class Meta:
        ordering = ["-taken_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["period"], condition=Q(trigger=SnapshotTrigger.SCHEDULE), name="one_scheduled_snapshot_a_month"
            )
        ]

    def __str__(self):
        return f"Checklist {self.period} ({self.passed}/{len(self.items)} pass)"

    @property
    def overall(self) -> str:
        if self.failed:
            return ItemStatus.FAIL
        return ItemStatus.ATTENTION if self.attention else ItemStatus.PASS


class MonthlyChecklist(ChecklistSnapshot):
    """The live checklist page in the admin (a proxy: no table of its own)."""

    class Meta:
        proxy = True
        verbose_name = "monthly checklist"
        verbose_name_plural = "monthly checklist"


class RecordOfProcessing(models.Model):
    """The record of processing (Art. 30) page in the admin.  Generated from the models on every
    view (``compliance.record_of_processing``): no table, nothing stored that could go stale."""

    class Meta:
        managed = False
        db_table = "compliance_record_of_processing_page"
        verbose_name = "record of processing (Art. 30)"
        verbose_name_plural = "record of processing (Art. 30)"
        default_permissions = ()

    def __str__(self):
        return "Record of processing"
