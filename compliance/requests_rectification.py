"""Rectification (Art. 16): the DPO corrects the subject's fields in the admin, with a reason.

The subject's rows are read and written under the system scope (entered here and named in the
audit events); ``Customer.save`` recomputes the blind indexes, django-auditlog records the change
with the personal values masked, and one GDPR_RECTIFICATION event names the fields (never the
values) and the reason.
"""

from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import transaction
from django.utils import timezone

from accounts import policy
from audit import services as audit
from audit.choices import AuditAction
from compliance import selectors
from compliance.requests import (
    RequestError,
    _audit,
    _check_reason,
    _locked,
    _require,
    contains_card_number,
    set_progress,
)
from compliance.requests_choices import RequestKind, RequestStatus
from datasets import blind_index
from portal.security_context import scoped

RECTIFIABLE_FIELDS = ("name", "email", "phone")


def subject_rows(request, user) -> list:
    """The subject's customer rows in clear, for the DPO's rectification form (audited VIEW)."""
    _require(user, policy.PrivacyRight.WORK)
    with scoped(system=True):
        rows = list(
            selectors.customers_matching(request.subject_email, request.subject_phone)
            .select_related("team")
            .order_by("pk")
        )
    if rows:
        audit.record(
            AuditAction.VIEW,
            actor=user,
            resource="customer",
            object_ids=[c.pk for c in rows],
            rows=len(rows),
            reason=f"rectification of subject request #{request.pk}",
            extra={"scope": "system"},
        )
    return rows


def clean_changes(changes: dict) -> dict[str, str]:
    """Keep the fields given (blank = unchanged) and check them; RequestError names the field."""
    clean = {}
    for name in RECTIFIABLE_FIELDS:
        value = (changes.get(name) or "").strip()
        if not value:
            continue
        if contains_card_number(value):
            raise RequestError("A card number is not a valid value.", name)
        if name == "email":
            try:
                validate_email(value)
            except ValidationError:
                raise RequestError("Enter a valid email address.", "email") from None
            value = blind_index.normalize_email(value)
        elif name == "phone" and not 6 <= len(blind_index.normalize_phone(value)) <= 15:
            raise RequestError("Enter a phone number of 6 to 15 digits.", "phone")
        elif name == "name" and len(value) > 200:
            raise RequestError("At most 200 characters.", "name")
        clean[name] = value
    if not clean:
        raise RequestError("Give at least one corrected value.", "changes")
    return clean


@transaction.atomic
def rectify(request_id, user, *, changes: dict, reason: str, customer_ids=None):
    """Apply the corrections to the subject's rows (all of them, or the ids chosen) and close the
    request: approved -> in_progress -> completed, each step audited.  Nothing changes on error."""
    _require(user, policy.PrivacyRight.WORK)
    reason = _check_reason(reason)
    clean = clean_changes(changes)
    request = _locked(request_id)
    if request.kind != RequestKind.RECTIFICATION:
        raise RequestError("Only a rectification request is carried out with this form.", "kind")
    if request.status != RequestStatus.APPROVED:
        raise RequestError("The request must be approved before the correction is applied.", "status")
    with scoped(system=True):
        rows = selectors.customers_matching(request.subject_email, request.subject_phone).select_for_update()
        if customer_ids:
            rows = rows.filter(pk__in=[int(i) for i in customer_ids])
        customers = list(rows.order_by("pk"))
        if not customers:
            raise RequestError("No customer row of the subject was chosen.", "customers")
        for customer in customers:
            for name, value in clean.items():
                setattr(customer, name, value)
            try:
                customer.full_clean(exclude=["team"])
            except ValidationError as exc:
                field, messages = next(iter(exc.message_dict.items()))
                raise RequestError(" ".join(messages), field) from None
            customer.save(update_fields=list(clean))
    now = timezone.now()
    _audit(request, user, "rectify", RequestStatus.APPROVED, RequestStatus.IN_PROGRESS, reason=reason)
    request.status = RequestStatus.COMPLETED
    request.run_by, request.run_started_at, request.completed_at = user, now, now
    request.result = {"customers": len(customers), "fields": ",".join(sorted(clean)), "rows_total": len(customers)}
    request.save(update_fields=["status", "run_by", "run_started_at", "completed_at", "result", "updated_at"])
    set_progress(request.pk, step="done", done=len(customers), total=len(customers))
    audit.record(
        AuditAction.GDPR_RECTIFICATION,
        actor=user,
        resource="customer",
        object_ids=[c.pk for c in customers],
        rows=len(customers),
        reason=reason,
        extra={"fields": sorted(clean), "request_id": request.pk, "scope": "system"},
    )
    _audit(request, user, "finish", RequestStatus.IN_PROGRESS, RequestStatus.COMPLETED, reason=reason)
    return request
