from django.db import models


class OrderStatus(models.TextChoices):
    PENDING = "pending"
    PAID = "paid"
    SHIPPED = "shipped"
    REFUNDED = "refunded"
    CANCELLED = "cancelled"


class Device(models.TextChoices):
    DESKTOP = "desktop"
    MOBILE = "mobile"
    TABLET = "tablet"


class ExportFormat(models.TextChoices):
    CSV = "csv"
    JSON = "json"


class ExportStatus(models.TextChoices):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


class GrantKind(models.TextChoices):
    TEAM_ACCESS = "team_access", "View another team's data"
    UNMASK_CUSTOMER = "unmask_customer", "Reveal one customer's fields"


class GrantStatus(models.TextChoices):
    PENDING = "pending"
    APPROVED = "approved"
    REFUSED = "refused"
    EXPIRED = "expired"
    REVOKED = "revoked"
