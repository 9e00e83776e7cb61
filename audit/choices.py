from django.db import models


class AuditAction(models.TextChoices):
    """Security events, in the seed's vocabulary; extend here, never with free strings."""

    LOGIN = "LOGIN"
    LOGIN_FAILED = "LOGIN_FAILED"
    LOGOUT = "LOGOUT"
    LOCKED_OUT = "LOCKED_OUT"
    VIEW = "VIEW"
    SEARCH = "SEARCH"
    EXPORT_DATA = "EXPORT_DATA"
    UNMASK = "UNMASK"
    PERMISSION_DENIED = "PERMISSION_DENIED"
    TOKEN_CREATED = "TOKEN_CREATED"  # noqa: S105 - an action name
    TOKEN_REVOKED = "TOKEN_REVOKED"  # noqa: S105 - an action name
    ROLE_CHANGED = "ROLE_CHANGED"
    USER_CREATED = "USER_CREATED"
    USER_DISABLED = "USER_DISABLED"
    PASSWORD_CHANGED = "PASSWORD_CHANGED"  # noqa: S105 - an action name  # pragma: allowlist secret
    MFA_ENROLLED = "MFA_ENROLLED"
    ACCESS_GRANTED = "ACCESS_GRANTED"
    ACCESS_REVOKED = "ACCESS_REVOKED"
    ACCESS_REVIEWED = "ACCESS_REVIEWED"
    REPORT_RUN = "REPORT_RUN"
    REPORT_SHARED = "REPORT_SHARED"
    GDPR_REQUEST = "GDPR_REQUEST"
    GDPR_EXPORT = "GDPR_EXPORT"
    GDPR_ERASURE = "GDPR_ERASURE"
    GDPR_RECTIFICATION = "GDPR_RECTIFICATION"
    CONSENT_CHANGED = "CONSENT_CHANGED"
    USER_DELETED = "USER_DELETED"
    RETENTION_PURGE = "RETENTION_PURGE"
    BREACH_RECORDED = "BREACH_RECORDED"
    KEY_ROTATED = "KEY_ROTATED"
    ALERT_RAISED = "ALERT_RAISED"
    BULK_CHANGE = "BULK_CHANGE"
    INCIDENT_OPENED = "INCIDENT_OPENED"
    INCIDENT_STAGE_CHANGED = "INCIDENT_STAGE_CHANGED"
    INCIDENT_CONTAINMENT = "INCIDENT_CONTAINMENT"


# What the DPO duty reads of the trail (accounts.policy.AuditView.GDPR).
GDPR_ACTIONS = frozenset(
    {
        AuditAction.GDPR_REQUEST,
        AuditAction.GDPR_EXPORT,
        AuditAction.GDPR_ERASURE,
        AuditAction.GDPR_RECTIFICATION,
        AuditAction.CONSENT_CHANGED,
        AuditAction.USER_DELETED,
        AuditAction.RETENTION_PURGE,
        AuditAction.BREACH_RECORDED,
    }
)
# Reads of personal data: the distinct-customers and out-of-hours rules count these.
READ_ACTIONS = frozenset({AuditAction.VIEW, AuditAction.SEARCH, AuditAction.EXPORT_DATA, AuditAction.UNMASK})


class AlertSeverity(models.TextChoices):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"


class AlertStatus(models.TextChoices):
    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"


class IncidentStageName(models.TextChoices):
    """The seed's incident response plan, in order; an incident only moves forward."""

    DETECT = "detect"
    CONTAIN = "contain"
    INVESTIGATE = "investigate"
    RECOVER = "recover"
    LEARN = "learn"


INCIDENT_STAGE_ORDER = [stage.value for stage in IncidentStageName]


class ContainmentAction(models.TextChoices):
    DISABLE_ACCOUNT = "disable_account"
    REVOKE_SESSIONS = "revoke_sessions"
    BLOCK_IP = "block_ip"
    PRESERVE_EVIDENCE = "preserve_evidence"
