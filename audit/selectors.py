"""Reads over the audit trail: what a user may see, and the investigation queries (all indexed)."""

from datetime import datetime

from django.db.models import QuerySet

from accounts import policy
from audit.choices import GDPR_ACTIONS
from audit.models import AuditEvent
from portal.ids import parse_id


def visible_events(user) -> QuerySet:
    """The events the policy lets the user read (Admin: all; DPO duty: GDPR events; else none)."""
    view = policy.audit_view(user)
    events = AuditEvent.objects.all()
    if view == policy.AuditView.ALL:
        return events
    if view == policy.AuditView.GDPR:
        return events.filter(action__in=sorted(GDPR_ACTIONS))
    return events.none()


def by_actor(events: QuerySet, term: str) -> QuerySet:
    """Exact actor: an id, or an email as it was at the time (the (actor_*, timestamp) indexes)."""
    term = (term or "").strip()
    actor_id = parse_id(term)
    if actor_id is not None:
        return events.filter(actor_id=actor_id)
    if "@" in term:
        return events.filter(actor_email=term.lower())
    return events.none()


def between(events: QuerySet, start: datetime | None, end: datetime | None) -> QuerySet:
    if start is not None:
        events = events.filter(timestamp__gte=start)
    if end is not None:
        events = events.filter(timestamp__lt=end)
    return events


def user_activity(user, actor: str, start: datetime | None, end: datetime | None) -> QuerySet:
    """Everything one user did between two times, oldest first."""
    return between(by_actor(visible_events(user), actor), start, end).order_by("timestamp", "id")


def customer_touches(user, customer_id: int, resource: str = "customer") -> QuerySet:
    """Every event naming the customer (``object_ids @> '["<id>"]'``, the GIN index), oldest first."""
    return (
        visible_events(user)
        .filter(resource=resource, object_ids__contains=[str(customer_id)])
        .order_by("timestamp", "id")
    )


def customer_changes(user, customer_id: int) -> QuerySet:
    """django-auditlog entries of the customer (change history), for the change-history readers."""
    from auditlog.models import LogEntry
    from django.contrib.contenttypes.models import ContentType

    from datasets.models import Customer

    if not policy.may_read_change_history(user):
        return LogEntry.objects.none()
    content_type = ContentType.objects.get_for_model(Customer)
    return LogEntry.objects.filter(content_type=content_type, object_pk=str(customer_id)).order_by("timestamp")
