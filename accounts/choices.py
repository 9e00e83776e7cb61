from django.db import models


class ReviewLineKind(models.TextChoices):
    """What one access-review line is about; other apps add kinds through ``accounts.access_review``."""

    ROLE = "role", "Role"
    DUTY = "duty", "Duty"
    OBJECT_PERMISSION = "object_permission", "Object permission"
    TEMPORARY_GRANT = "temporary_grant", "Temporary grant"


class ReviewDecision(models.TextChoices):
    PENDING = "pending", "Pending"
    CONFIRMED = "confirmed", "Confirmed"
    REVOKED = "revoked", "Revoked"
