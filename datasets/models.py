"""Customer data: personal fields encrypted at rest, blind indexes for look-ups, team ownership."""

from django.core.validators import RegexValidator
from django.db import models
from django.utils import timezone
from django_cryptography.fields import encrypt

from datasets import blind_index
from datasets.querysets import TeamOwnedQuerySet


class Customer(models.Model):
    """A customer.  Name, email and phone are encrypted; the card is only its last four digits
    plus the payment processor's token (data minimisation: no card number is ever stored)."""

    team = models.ForeignKey("accounts.Team", on_delete=models.PROTECT, related_name="customers")
    name = encrypt(models.CharField(max_length=200))
    email = encrypt(models.EmailField(max_length=254))
    phone = encrypt(models.CharField(max_length=32, blank=True, default=""))
    email_index = models.CharField(max_length=64, editable=False, db_index=True)
    phone_index = models.CharField(max_length=64, editable=False, db_index=True, blank=True, default="")
    card_last4 = models.CharField(
        max_length=4, blank=True, default="", validators=[RegexValidator(r"^\d{4}$", "Four digits.")]
    )
    card_token = models.CharField(max_length=64, blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    objects = TeamOwnedQuerySet.as_manager()

    PERSONAL_FIELDS = ("name", "email", "phone")

    class Meta:
        ordering = ["id"]

    def __str__(self):
        return f"Customer #{self.pk}"

    def save(self, *args, **kwargs):
        self.refresh_blind_indexes()
        update_fields = kwargs.get("update_fields")
        if update_fields is not None:
            kwargs["update_fields"] = {*update_fields, "email_index", "phone_index"}
        super().save(*args, **kwargs)

    def refresh_blind_indexes(self) -> None:
        self.email_index = blind_index.email_index(self.email)
        self.phone_index = blind_index.phone_index(self.phone)
