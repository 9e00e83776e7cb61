"""GDPR subject requests, consent, restriction of processing, access packages and erasure records.

The subject of a request is named by email and/or phone; those are stored encrypted, and the
request keeps their blind indexes, which is how the subject's rows are found (never by
decrypting and scanning a table).  After an erasure the request keeps neither: only the keyed
hash of the subject (``subject_hash``) stays, as on the ``ErasedSubject`` row.
"""

import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from compliance.requests_choices import (
    OPEN_STATUSES,
    Channel,
    ConsentPurpose,
    ConsentSource,
    LawfulBasis,
    RequestKind,
    RequestStatus,
)
from datasets import blind_index
from portal.field_crypto import EncryptedCharField, EncryptedEmailField


class SubjectRequestQuerySet(models.QuerySet):
    def visible_to(self, user):
        """Requests a user may read: all of them with the READ right (policy), none otherwise."""
        from accounts import policy

        return self if policy.may_privacy(user, policy.PrivacyRight.READ) else self.none()

    def open(self):
        return self.filter(status__in=OPEN_STATUSES)


class SubjectRequest(models.Model):
    """One data-subject request and its workflow (``compliance.requests`` moves it along)."""

    kind = models.CharField(max_length=16, choices=RequestKind.choices)
    status = models.CharField(max_length=20, choices=RequestStatus.choices, default=RequestStatus.RECEIVED)
    channel = models.CharField(max_length=16, choices=Channel.choices)
    subject_email = EncryptedEmailField(max_length=254, blank=True, default="")
    subject_phone = EncryptedCharField(max_length=32, blank=True, default="")
    email_index = models.CharField(max_length=64, blank=True, default="", editable=False, db_index=True)
    phone_index = models.CharField(max_length=64, blank=True, default="", editable=False, db_index=True)
    # What the subject asked for in their words (what to correct, grounds of an objection).
    details = EncryptedCharField(max_length=2000, blank=True, default="")
    purpose = models.CharField(
        max_length=24, choices=ConsentPurpose.choices, blank=True, default="", help_text="Objection: the purpose"
    )
    received_at = models.DateTimeField(default=timezone.now)
    due_at = models.DateTimeField()
    extension_reason = models.CharField(max_length=500, blank=True, default="")
    extended_months = models.PositiveSmallIntegerField(default=0)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    verified_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    verified_at = models.DateTimeField(null=True, blank=True)
    approved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    approved_at = models.DateTimeField(null=True, blank=True)
    run_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    run_started_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    rejection_reason = models.CharField(max_length=500, blank=True, default="")
    error_step = models.CharField(max_length=40, blank=True, default="")
    error_detail = models.CharField(max_length=200, blank=True, default="")
    attempts = models.PositiveIntegerField(default=0)
    # Figures only (rows per table, package checksum): never personal data.
    result = models.JSONField(default=dict, blank=True)
    # Set by an erasure: the keyed hash of the subject, once email and phone are gone.
    subject_hash = models.CharField(max_length=64, blank=True, default="", editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    objects = SubjectRequestQuerySet.as_manager()

    class Meta:
        ordering = ["due_at", "id"]
        indexes = [
            models.Index(fields=["status", "due_at"], name="subject_request_queue"),
            models.Index(fields=["kind", "due_at"], name="subject_request_kind"),
        ]

    def __str__(self):
        return f"Subject request #{self.pk} ({self.kind}, {self.status})"

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES

    # ``rotate_keys`` recomputes these under a new BLIND_INDEX_KEY (as for ``Customer``).
    BLIND_INDEX_FIELDS = ("email_index", "phone_index")

    def refresh_blind_indexes(self) -> None:
        """The look-up indexes of the subject's email and phone (empty once erased: no values)."""
        self.email_index = blind_index.email_index(self.subject_email)
        self.phone_index = blind_index.phone_index(self.subject_phone)


class ConsentRecord(models.Model):
    """One consent (or its withdrawal) for one purpose.  History is kept: a new grant is a new row
    and the previous one stops being ``current``; a withdrawal stamps ``withdrawn_at``."""

    customer = models.ForeignKey("datasets.Customer", on_delete=models.CASCADE, related_name="consents")
    purpose = models.CharField(max_length=24, choices=ConsentPurpose.choices)
    lawful_basis = models.CharField(max_length=24, choices=LawfulBasis.choices, default=LawfulBasis.CONSENT)
    granted_at = models.DateTimeField(null=True, blank=True)
    withdrawn_at = models.DateTimeField(null=True, blank=True)
    source = models.CharField(max_length=16, choices=ConsentSource.choices)
    notice_version = models.CharField(max_length=32, blank=True, default="")
    current = models.BooleanField(default=True)
    recorded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    request = models.ForeignKey(
        SubjectRequest, null=True, blank=True, on_delete=models.SET_NULL, related_name="consent_records"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["customer", "purpose"], condition=Q(current=True), name="consent_one_current_per_purpose"
            ),
            models.CheckConstraint(
                condition=Q(granted_at__isnull=False) | Q(withdrawn_at__isnull=False),
                name="consent_granted_or_withdrawn",
            ),
        ]
        indexes = [
            # The analytics filter is an anti-join on this (small) partial index.
            models.Index(
                fields=["customer"],
                condition=Q(current=True, withdrawn_at__isnull=False),
                name="consent_withdrawn_current",
            ),
        ]

    def __str__(self):
        state = "withdrawn" if self.withdrawn_at else "granted"
        return f"Consent #{self.pk} {self.purpose} {state}"


class ProcessingRestriction(models.Model):
    """Art. 18: the subject's data is kept but left out of processing (analytics) until lifted."""

    customer = models.ForeignKey("datasets.Customer", on_delete=models.CASCADE, related_name="restrictions")
    request = models.ForeignKey(
        SubjectRequest, null=True, blank=True, on_delete=models.SET_NULL, related_name="restrictions"
    )
    started_at = models.DateTimeField(default=timezone.now)
    lifted_at = models.DateTimeField(null=True, blank=True)
    lifted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    lift_reason = models.CharField(max_length=500, blank=True, default="")

    class Meta:
        ordering = ["-started_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["customer"], condition=Q(lifted_at__isnull=True), name="restriction_one_active"
            )
        ]

    def __str__(self):
        return f"Restriction #{self.pk} ({'lifted' if self.lifted_at else 'active'})"


class AccessPackage(models.Model):
    """One generated access/portability package: a ZIP (JSON + CSV) encrypted at rest.

    Rebuilt packages (a redaction of third-party data) are new rows; the newest is delivered."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    request = models.ForeignKey(SubjectRequest, on_delete=models.CASCADE, related_name="packages")
    created_at = models.DateTimeField(default=timezone.now)
    file_name = models.CharField(max_length=100)
    sha256 = models.CharField(max_length=64)
    size_bytes = models.PositiveBigIntegerField(default=0)
    rows = models.JSONField(default=dict, blank=True, help_text="section -> rows")
    third_party_redacted = models.BooleanField(default=False)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self):
        return f"Access package {self.pk}"


class ErasedSubject(models.Model):
    """Proof that a subject was erased, and what ``reapply_erasures`` needs after a backup restore.

    No personal data: the keyed hash of the subject and the blind-index values (HMACs) under
    which the subject's rows are found again, for every look-up key configured at erasure time."""

    subject_hash = models.CharField(max_length=64, unique=True)
    email_indexes = models.JSONField(default=list, blank=True)
    phone_indexes = models.JSONField(default=list, blank=True)
    erased_at = models.DateTimeField(default=timezone.now)
    request = models.ForeignKey(
        SubjectRequest, null=True, blank=True, on_delete=models.SET_NULL, related_name="erasures"
    )
    counts = models.JSONField(default=dict, blank=True, help_text="table -> rows deleted or anonymised")
    reapplied_at = models.DateTimeField(null=True, blank=True)
    reapplied_count = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-erased_at"]

    def __str__(self):
        return f"Erased subject {self.subject_hash[:12]}"


from compliance.governance_models import *  # noqa: E402, F401, F403
