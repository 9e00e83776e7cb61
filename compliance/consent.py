"""Consent and restriction of processing: writes, each audited (CONSENT_CHANGED).

History is kept: a grant is a new row (the previous row for the purpose stops being current);
a withdrawal stamps the current row, or records a withdrawal row when nothing was on file.
Writes reach customers of every team, so callers run them under ``scoped(system=True)``.
"""

from django.utils import timezone

from audit import services as audit
from audit.choices import AuditAction
from compliance.models import ConsentRecord, ProcessingRestriction
from compliance.requests_choices import ConsentSource, LawfulBasis


def _record(actor, customer_ids, purpose: str, change: str, *, request=None, source: str = "") -> None:
    audit.record(
        AuditAction.CONSENT_CHANGED,
        actor=actor,
        resource="customer",
        object_ids=list(customer_ids),
        rows=len(customer_ids),
        reason=f"{purpose}: {change}",
        extra={"purpose": purpose, "change": change, "source": source, "request_id": getattr(request, "pk", None)},
    )


def grant(
    customer_ids,
    purpose: str,
    *,
    actor=None,
    lawful_basis: str = LawfulBasis.CONSENT,
    source: str = ConsentSource.ADMIN,
    notice_version: str = "",
    request=None,
    at=None,
) -> list[ConsentRecord]:
    """Record a grant for each customer row of the subject (previous current rows are kept)."""
    at = at or timezone.now()
    ids = sorted(set(customer_ids))
    ConsentRecord.objects.filter(customer_id__in=ids, purpose=purpose, current=True).update(current=False)
    records = [
        ConsentRecord.objects.create(
            customer_id=customer_id,
            purpose=purpose,
            lawful_basis=lawful_basis,
            granted_at=at,
            source=source,
            notice_version=notice_version,
            recorded_by=actor if getattr(actor, "is_authenticated", False) else None,
            request=request,
        )
        for customer_id in ids
    ]
    if ids:
        _record(actor, ids, purpose, "granted", request=request, source=source)
    return records


def withdraw(
    customer_ids,
    purpose: str,
    *,
    actor=None,
    source: str = ConsentSource.SUBJECT_REQUEST,
    notice_version: str = "",
    request=None,
    at=None,
) -> int:
    """Withdraw the purpose for each customer row; idempotent (a withdrawn consent stays as it is)."""
    at = at or timezone.now()
    ids = sorted(set(customer_ids))
    changed = 0
    current = {
        c.customer_id: c for c in ConsentRecord.objects.filter(customer_id__in=ids, purpose=purpose, current=True)
    }
    for customer_id in ids:
        record = current.get(customer_id)
        if record is not None and record.withdrawn_at is not None:
            continue
        if record is not None:
            record.withdrawn_at = at
            record.request = request or record.request
            record.save(update_fields=["withdrawn_at", "request"])
        else:
            ConsentRecord.objects.create(
                customer_id=customer_id,
                purpose=purpose,
                lawful_basis=LawfulBasis.CONSENT,
                withdrawn_at=at,
                source=source,
                notice_version=notice_version,
                recorded_by=actor if getattr(actor, "is_authenticated", False) else None,
                request=request,
            )
        changed += 1
    if changed:
        _record(actor, ids, purpose, "withdrawn", request=request, source=source)
    return changed


def restrict(customer_ids, *, actor=None, request=None) -> int:
    """Start a restriction of processing for each customer row that has none active."""
    ids = sorted(set(customer_ids))
    active = set(
        ProcessingRestriction.objects.filter(customer_id__in=ids, lifted_at__isnull=True).values_list(
            "customer_id", flat=True
        )
    )
    created = [ProcessingRestriction.objects.create(customer_id=i, request=request) for i in ids if i not in active]
    if created:
        _record(actor, ids, "all processing", "restricted", request=request, source=ConsentSource.SUBJECT_REQUEST)
    return len(created)


def lift_restriction(restriction: ProcessingRestriction, *, actor, reason: str) -> None:
    if restriction.lifted_at is not None:
        return
    restriction.lifted_at = timezone.now()
    restriction.lifted_by = actor
    restriction.lift_reason = reason[:500]
    restriction.save(update_fields=["lifted_at", "lifted_by", "lift_reason"])
    _record(actor, [restriction.customer_id], "all processing", "restriction lifted", source=ConsentSource.ADMIN)
