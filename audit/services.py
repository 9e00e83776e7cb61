"""Writing security events.  Every module records through ``record``; nothing writes the table directly."""

from collections.abc import Iterable

from audit.choices import AuditAction
from audit.models import AuditEvent
from portal.middleware import current_client, current_request_id


def record(
    action: AuditAction | str,
    *,
    actor=None,
    resource: str = "",
    object_ids: Iterable = (),
    rows: int | None = None,
    success: bool = True,
    reason: str = "",
    extra: dict | None = None,
) -> AuditEvent:
    """Append one event; client address, user agent and request id come from the current request."""
    ip, agent = current_client()
    authenticated = actor is not None and getattr(actor, "is_authenticated", False)
    return AuditEvent.objects.create(
        action=AuditAction(action),
        actor_id=actor.pk if authenticated else None,
        actor_email=actor.email if authenticated else "",
        resource=resource,
        object_ids=[str(i) for i in object_ids],
        rows=rows,
        ip_address=ip or None,
        user_agent=agent,
        request_id=current_request_id() if current_request_id() != "-" else "",
        success=success,
        reason=reason[:500],
        extra=extra or {},
    )
