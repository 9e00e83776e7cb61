"""Writing security events.  Every module records through ``record``; nothing writes the table directly.

Inside a unit of work (a request, a Celery task) events are buffered and appended in their own
transaction right after the unit's transaction has ended, committed or rolled back: a request
that is refused (DRF rolls its transaction back on every APIException) keeps its
PERMISSION_DENIED or LOGIN_FAILED event.  Outside a unit (shell, commands) ``record`` appends at
once.
"""

import contextvars
import ipaddress
import logging
from collections.abc import Iterable
from contextlib import contextmanager

from django.contrib.contenttypes.models import ContentType
from django.utils import timezone

from audit import chain
from audit.choices import AuditAction
from audit.models import AuditEvent
from portal.middleware import current_client, current_request_id

logger = logging.getLogger("audit")

_buffer: contextvars.ContextVar[list[AuditEvent] | None] = contextvars.ContextVar("audit_buffer", default=None)
# At most this many object ids are kept on one event; larger sets keep their count in ``rows``.
MAX_OBJECT_IDS = 1000


def _text(value, limit: int) -> str:
    # PostgreSQL text cannot hold NUL; limits match the columns.
    return str(value or "").replace("\x00", "")[:limit]


def _ip(value: str) -> str | None:
    """The address as PostgreSQL's inet prints it (so the hash verifies after a round trip)."""
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return f"::ffff:{address.ipv4_mapped}"
    return address.compressed


def build_event(
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
    """An unsaved event; client address, user agent and request id come from the current request."""
    ip, agent = current_client()
    authenticated = actor is not None and getattr(actor, "is_authenticated", False)
    request_id = current_request_id()
    return AuditEvent(
        timestamp=timezone.now(),
        action=AuditAction(action),
        actor_id=actor.pk if authenticated else None,
        actor_email=_text(actor.email, 254) if authenticated else "",
        resource=_text(resource, 100),
        object_ids=[_text(i, 64) for i in list(object_ids)[:MAX_OBJECT_IDS]],
        rows=rows,
        ip_address=_ip(ip) if ip else None,
        user_agent=_text(agent, 256),
        request_id=_text(request_id if request_id != "-" else "", 64),
        success=bool(success),
        reason=_text(reason, 500),
        extra=extra or {},
    )


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
    """Record one event: buffered inside a request or task, appended at once outside one."""
    event = build_event(
        action,
        actor=actor,
        resource=resource,
        object_ids=object_ids,
        rows=rows,
        success=success,
        reason=reason,
        extra=extra,
    )
    pending = _buffer.get()
    if pending is not None:
        pending.append(event)
        return event
    append([event])
    return event


def pending_events() -> list[AuditEvent]:
    """Events buffered by the current unit of work (empty outside one)."""
    return list(_buffer.get() or [])


def append(events: list[AuditEvent]) -> list[AuditEvent]:
    """Chain and store events in their own transaction, then run the alert rules over them."""
    chain.append(events)
    from audit import alerts

    alerts.evaluate(events)
    return events


@contextmanager
def unit_of_work():
    """Buffer the events of the block; append them once it has ended, whatever its outcome.

    Wrap it *around* the block's transaction, so that the append runs after the commit or
    rollback.  Nested units share the outermost buffer."""
    if _buffer.get() is not None:
        yield
        return
    token = _buffer.set([])
    try:
        yield
    finally:
        events = _buffer.get()
        _buffer.reset(token)
        # A failure to store the trail is not swallowed: the caller's response or task fails.
        append(events)


def record_bulk_change(
    queryset_or_model,
    object_ids: Iterable,
    *,
    actor=None,
    changes: dict | None = None,
    operation: str = "update",
    reason: str = "",
) -> AuditEvent:
    """Log a bulk operation that django-auditlog cannot see (``queryset.update()``, ``bulk_create``,
    ``queryset.delete()`` with signals bypassed): one BULK_CHANGE event with the row count, and one
    change-history entry per object with the changed fields (personal fields masked).

    Call it in the same transaction as the bulk operation, with the ids it touched."""
    from auditlog.models import LogEntry
    from auditlog.registry import auditlog

    model = getattr(queryset_or_model, "model", queryset_or_model)
    ids = [str(i) for i in object_ids]
    changes = changes or {}
    masked = set(auditlog.get_model_fields(model).get("mask_fields", [])) if auditlog.contains(model) else set()
    diff = {
        field: ["(bulk)", "[redacted]" if field in masked else _text(value, 200)] for field, value in changes.items()
    }
    action = {
        "create": LogEntry.Action.CREATE,
        "update": LogEntry.Action.UPDATE,
        "delete": LogEntry.Action.DELETE,
    }[operation]
    content_type = ContentType.objects.get_for_model(model)
    actor_obj = actor if actor is not None and getattr(actor, "is_authenticated", False) else None
    ip, _ = current_client()
    LogEntry.objects.bulk_create(
        [
            LogEntry(
                content_type=content_type,
                object_pk=object_id,
                object_id=int(object_id) if object_id.isdigit() else None,
                object_repr=f"{model._meta.verbose_name} #{object_id}",
                action=action,
                changes=diff,
                actor=actor_obj,
                remote_addr=_ip(ip) if ip else None,
                additional_data={"bulk": True, "operation": operation},
            )
            for object_id in ids
        ],
        batch_size=1000,
    )
    return record(
        AuditAction.BULK_CHANGE,
        actor=actor,
        resource=model._meta.label_lower,
        object_ids=ids,
        rows=len(ids),
        reason=reason,
        extra={"operation": operation, "fields": sorted(changes)},
    )
