"""Customer data: personal fields encrypted at rest, blind indexes for look-ups, team ownership."""

import uuid

from django.conf import settings
from django.core.validators import MinValueValidator, RegexValidator
from django.db import models
from django.utils import timezone

from datasets import blind_index
from datasets.choices import Device, ExportFormat, ExportStatus, GrantKind, GrantStatus, OrderStatus
from datasets.querysets import CustomerQuerySet, ReportQuerySet, TeamOwnedQuerySet
from portal.field_crypto import EncryptedCharField, EncryptedEmailField


class Customer(models.Model):
    """A customer.  Name, email and phone are encrypted; the card is only its last four digits
    plus the payment processor's token (data minimisation: no card number is ever stored)."""

    team = models.ForeignKey("accounts.Team", on_delete=models.PROTECT, related_name="customers")
    name = EncryptedCharField(max_length=200)
    email = EncryptedEmailField(max_length=254)
    phone = EncryptedCharField(max_length=32, blank=True, default="")
    email_index = models.CharField(max_length=64, editable=False, db_index=True)
    phone_index = models.CharField(max_length=64, editable=False, db_index=True, blank=True, default="")
    card_last4 = models.CharField(
        max_length=4, blank=True, default="", validators=[RegexValidator(r"^\d{4}$", "Four digits.")]
    )
    card_token = models.CharField(max_length=64, blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    objects = CustomerQuerySet.as_manager()

    PERSONAL_FIELDS = ("name", "email", "phone")
    BLIND_INDEX_FIELDS = ("email_index", "phone_index")

    class Meta:
        ordering = ["id"]

    def __str__(self):
        return f"Customer #{self.pk}"

    def save(self, *args, **kwargs):
        self.refresh_blind_indexes()
        update_fields = kwargs.get("update_fields")
        if update_fields is not None:
            kwargs["update_fields"] = {*update_fields, *self.BLIND_INDEX_FIELDS}
        super().save(*args, **kwargs)

    def refresh_blind_indexes(self) -> None:
        self.email_index = blind_index.email_index(self.email)
        self.phone_index = blind_index.phone_index(self.phone)


class Order(models.Model):
    """An order, owned through its customer's team (``team`` is kept equal to the customer's, so
    row-level security and the scope filter use one indexed column)."""

    # No customer once anonymised by an erasure (GDPR): the order stays for the bookkeeping duty,
    # without its personal link.  PROTECT: a customer is never deleted with their orders.
    customer = models.ForeignKey(Customer, null=True, blank=True, on_delete=models.PROTECT, related_name="orders")
    team = models.ForeignKey("accounts.Team", on_delete=models.PROTECT, related_name="+", editable=False)
    amount = models.DecimalField(max_digits=12, decimal_places=2, validators=[MinValueValidator(0)])
    currency = models.CharField(max_length=3, default="EUR")
    status = models.CharField(max_length=16, choices=OrderStatus.choices, default=OrderStatus.PENDING)
    created_at = models.DateTimeField(default=timezone.now)
    anonymised = models.BooleanField(default=False, editable=False)

    objects = TeamOwnedQuerySet.as_manager()

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["team", "created_at"], name="order_team_created")]

    def __str__(self):
        return f"Order #{self.pk}"

    def save(self, *args, **kwargs):
        if self.customer_id is not None:  # an anonymised order keeps the team it had
            self.team_id = self.customer.team_id
        super().save(*args, **kwargs)


class PageView(models.Model):
    """A page view by a customer or an anonymous session; owned by a team like the customer."""

    customer = models.ForeignKey(Customer, null=True, blank=True, on_delete=models.CASCADE, related_name="page_views")
    session_id = models.CharField(max_length=64, blank=True, default="")
    team = models.ForeignKey("accounts.Team", on_delete=models.PROTECT, related_name="+")
    page = models.CharField(max_length=200)
    referrer = models.CharField(max_length=200, blank=True, default="")
    city = models.CharField(max_length=100, blank=True, default="")
    device = models.CharField(max_length=16, choices=Device.choices, default=Device.DESKTOP)
    timestamp = models.DateTimeField(default=timezone.now)

    objects = TeamOwnedQuerySet.as_manager()

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["team", "timestamp"], name="pageview_team_ts")]

    def __str__(self):
        return f"PageView #{self.pk}"

    def save(self, *args, **kwargs):
        if self.customer_id is not None:
            self.team_id = self.customer.team_id
        super().save(*args, **kwargs)


class Report(models.Model):
    """A saved analysis: a definition from the allow-list (``datasets.report_definitions``), never SQL.

    Rights follow the roles table (view by team scope, edit/delete per role); sharing through
    django-guardian adds viewers but never widens the data a run returns."""

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="reports")
    team = models.ForeignKey("accounts.Team", on_delete=models.PROTECT, related_name="reports")
    department = models.ForeignKey("accounts.Department", on_delete=models.PROTECT, related_name="reports")
    title = models.CharField(max_length=200)
    description = models.TextField(blank=True, default="", max_length=2000)
    definition = models.JSONField()
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = ReportQuerySet.as_manager()

    class Meta:
        ordering = ["-updated_at", "id"]

    def __str__(self):
        return self.title

    def save(self, *args, **kwargs):
        self.department_id = self.team.department_id
        super().save(*args, **kwargs)


class AccessGrant(models.Model):
    """Temporary access beyond the roles table: another team's data, or revealing one customer's
    fields.  Asked for with a reason, decided by a manager of the department or an admin, and
    over by itself at ``expires_at``."""

    requester = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="access_grants")
    kind = models.CharField(max_length=20, choices=GrantKind.choices)
    team = models.ForeignKey("accounts.Team", null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    customer = models.ForeignKey(Customer, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    reason = models.TextField(max_length=1000)
    status = models.CharField(max_length=10, choices=GrantStatus.choices, default=GrantStatus.PENDING)
    requested_at = models.DateTimeField(auto_now_add=True)
    duration_hours = models.PositiveIntegerField(default=8)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    decision_note = models.CharField(max_length=500, blank=True, default="")
    expires_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-requested_at"]
        indexes = [models.Index(fields=["requester", "status", "expires_at"], name="grant_active")]

    def __str__(self):
        return f"{self.get_kind_display()} for {self.requester_id} ({self.status})"

    @property
    def is_active(self) -> bool:
        return self.status == GrantStatus.APPROVED and self.expires_at is not None and self.expires_at > timezone.now()


class Export(models.Model):
    """One export: who, what, why, how many rows, and the file's SHA-256.  The file itself is
    encrypted at rest and downloadable only by its requester through an expiring link."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="exports")
    dataset = models.CharField(max_length=20)
    filters = models.JSONField(default=dict, blank=True)
    format = models.CharField(max_length=4, choices=ExportFormat.choices)
    purpose = models.CharField(max_length=500)
    status = models.CharField(max_length=10, choices=ExportStatus.choices, default=ExportStatus.QUEUED)
    row_count = models.IntegerField(null=True, blank=True)
    sha256 = models.CharField(max_length=64, blank=True, default="")
    file_name = models.CharField(max_length=100, blank=True, default="")
    error = models.CharField(max_length=200, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self):
        return f"Export {self.id} ({self.dataset}, {self.status})"


class KeyRotation(models.Model):
    """One run of ``rotate_keys``: its checkpoint per model makes it resumable after a crash."""

    started_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    key_id = models.CharField(max_length=16, help_text="id of the field key being rotated to")
    checkpoints = models.JSONField(default=dict, help_text="model label -> last primary key done")
    rows = models.JSONField(default=dict, help_text="model label -> rows re-encrypted")

    class Meta:
        ordering = ["-started_at"]

    def __str__(self):
        return f"Key rotation {self.pk} ({'done' if self.finished_at else 'in progress'})"
