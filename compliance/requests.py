"""Subject requests: intake, the workflow's transitions, deadlines and progress.

Statuses: received -> identity_verified -> approved -> in_progress -> awaiting_review ->
completed; or rejected (with a reason); or error (the failing step recorded; retry puts it back
in progress).  Every transition is checked against ``TRANSITIONS`` with the row locked, changes
nothing when it is illegal (``RequestError``, a 400 in the API and an error message in the
admin) and is audited (GDPR_REQUEST).  The subject's rows are reached under the system scope,
entered explicitly here and named in the audit events.
"""

import logging
import re
from dataclasses import dataclass
from datetime import timedelta

from dateutil.relativedelta import relativedelta
from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.utils import timezone

from accounts import policy
from audit import services as audit
from audit.choices import AuditAction
from compliance import selectors
from compliance.models import SubjectRequest
from compliance.requests_choices import (
    CLOSED_STATUSES,
    OPEN_STATUSES,
    ConsentPurpose,
    RequestKind,
    RequestStatus,
)
from datasets import blind_index
from portal.security_context import scoped

logger = logging.getLogger("compliance.requests")

RESOURCE = "subject_request"
# GDPR Art. 12(3): one month, extendable by two further months.
RESPONSE_MONTHS = 1
MAX_EXTENSION_MONTHS = 2
MIN_REASON_LENGTH = 10

# Kinds that end in a package the DPO reviews before delivery.
PACKAGE_KINDS = frozenset({RequestKind.ACCESS, RequestKind.PORTABILITY})
# Kinds whose work runs in a Celery task; rectification is the DPO's edit in the admin.
TASK_KINDS = frozenset(
    {RequestKind.ACCESS, RequestKind.PORTABILITY, RequestKind.ERASURE, RequestKind.RESTRICTION, RequestKind.OBJECTION}
)

S = RequestStatus
# action -> (statuses it leaves from, status it reaches).  The task's own moves (in_progress to
# awaiting_review, completed or error) are ``finish``/``mark_error`` below.
TRANSITIONS: dict[str, tuple[frozenset[str], str]] = {
    "verify": (frozenset({S.RECEIVED}), S.IDENTITY_VERIFIED),
    "approve": (frozenset({S.IDENTITY_VERIFIED}), S.APPROVED),
    "run": (frozenset({S.APPROVED}), S.IN_PROGRESS),
    "retry": (frozenset({S.ERROR}), S.IN_PROGRESS),
    "complete": (frozenset({S.AWAITING_REVIEW}), S.COMPLETED),
    "reject": (frozenset({S.RECEIVED, S.IDENTITY_VERIFIED, S.APPROVED, S.AWAITING_REVIEW, S.ERROR}), S.REJECTED),
}
# Actions that need a written reason.
REASON_REQUIRED = frozenset({"reject", "extend"})


class RequestError(ValueError):
    """Bad input or an illegal step; ``field`` names the input it is about (API: 400 with it)."""

    def __init__(self, message: str, field: str = "non_field_errors"):
        super().__init__(message)
        self.field = field
        self.message = message

    def as_dict(self) -> dict[str, list[str]]:
        return {self.field: [self.message]}


# --- Free text and subject keys -------------------------------------------------------------
_CARD_CANDIDATE = re.compile(r"(?<!\d)\d(?:[ -]?\d){12,18}(?!\d)")


def _luhn(digits: str) -> bool:
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char)
        if position % 2:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def contains_card_number(text: str) -> bool:
    """Free text may not carry a card number (data minimisation): 13-19 digits passing Luhn."""
    return any(_luhn(re.sub(r"\D", "", m.group(0))) for m in _CARD_CANDIDATE.finditer(text or ""))


def due_date(received_at, extended_months: int = 0):
    return received_at + relativedelta(months=RESPONSE_MONTHS + extended_months)


# --- Reads ----------------------------------------------------------------------------------


def subject_customer_ids(request: SubjectRequest) -> list[int]:
    """The request's subject rows, through the blind indexes, under the system scope."""
    with scoped(system=True):
        return selectors.customer_ids_matching(request.subject_email, request.subject_phone)


def progress_key(request_id) -> str:
    return f"subject-request-progress:{request_id}"


def set_progress(request_id, *, step: str, done: int, total: int) -> None:
    """Live progress in Redis (the task's database writes are invisible until it commits)."""
    cache.set(progress_key(request_id), {"step": step, "done": done, "total": total}, 6 * 3600)


def progress(request: SubjectRequest) -> dict:
    """Percent and rows processed: live while running, the stored figures once done."""
    live = cache.get(progress_key(request.pk)) or {}
    finished = request.status in (S.AWAITING_REVIEW, S.COMPLETED)
    total = live.get("total") or request.result.get("rows_total") or 0
    done = live.get("done") or 0
    if finished:
        done = total = request.result.get("rows_total", total) or total
    if finished:
        percent = 100
    elif request.status == S.IN_PROGRESS and total:
        percent = min(99, int(done * 100 / total))
    else:
        percent = 0
    return {"step": live.get("step", ""), "rows_done": done, "rows_total": total, "percent": percent}


# --- Intake ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Intake:
    kind: str
    channel: str
    email: str = ""
    phone: str = ""
    details: str = ""
    purpose: str = ""


def validate_intake(data: Intake) -> Intake:
    """Normalise and check an intake; raises RequestError naming the field."""
    if data.kind not in RequestKind.values:
        raise RequestError(f"Unknown request type {data.kind!r}.", "type")
    email = blind_index.normalize_email(data.email)
    phone = (data.phone or "").strip()
    if not email and not phone:
        raise RequestError("Give the subject's email address, phone number or both.", "subject")
    if phone and not 6 <= len(blind_index.normalize_phone(phone)) <= 15:
        raise RequestError("Enter a phone number of 6 to 15 digits.", "phone")
    if contains_card_number(data.details):
        raise RequestError("Free text may not contain a card number.", "details")
    purpose = data.purpose or ""
    if data.kind == RequestKind.OBJECTION:
        purpose = purpose or ConsentPurpose.ANALYTICS
        if purpose not in ConsentPurpose.values:
            raise RequestError(f"Unknown purpose {purpose!r}.", "purpose")
    elif purpose:
        raise RequestError("A purpose is given only with an objection.", "purpose")
    return Intake(data.kind, data.channel, email, phone, (data.details or "").strip(), purpose)


@transaction.atomic
def intake(user, data: Intake) -> SubjectRequest:
    """File a request for a known subject (found through the blind indexes) and audit it."""
    if not policy.may_privacy(user, policy.PrivacyRight.INTAKE):
        raise PermissionError("no intake right")
    data = validate_intake(data)
    with scoped(system=True):
        matched = selectors.customer_ids_matching(data.email, data.phone)
    if not matched:
        raise RequestError("No customer matches this email address or phone number.", "subject")
    now = timezone.now()
    request = SubjectRequest.objects.create(
        kind=data.kind,
        channel=data.channel,
        subject_email=data.email,
        subject_phone=data.phone,
        email_index=blind_index.email_index(data.email),
        phone_index=blind_index.phone_index(data.phone),
        details=data.details,
        purpose=data.purpose,
        received_at=now,
        due_at=due_date(now),
        created_by=user,
    )
    _audit(request, user, "intake", "", S.RECEIVED, extra={"channel": data.channel, "matched_rows": len(matched)})
    return request


# --- Transitions ----------------------------------------------------------------------------


def _audit(request, user, action: str, from_status: str, to_status: str, *, reason: str = "", extra=None) -> None:
    audit.record(
        AuditAction.GDPR_REQUEST,
        actor=user,
        resource=RESOURCE,
        object_ids=[request.pk],
        reason=reason,
        extra={"action": action, "kind": request.kind, "from": from_status, "to": to_status, **(extra or {})},
    )


def _locked(request_id) -> SubjectRequest:
    request = SubjectRequest.objects.select_for_update().filter(pk=request_id).first()
    if request is None:
        raise RequestError("No such request.", "request")
    return request


def _require(user, right: policy.PrivacyRight) -> None:
    if not policy.may_privacy(user, right):
        raise PermissionError(f"the {right} right is needed")


def _check_reason(reason: str) -> str:
    reason = (reason or "").strip()
    if len(reason) < MIN_REASON_LENGTH:
        raise RequestError(f"Give a reason of at least {MIN_REASON_LENGTH} characters.", "reason")
    if contains_card_number(reason):
        raise RequestError("Free text may not contain a card number.", "reason")
    return reason[:500]


def allowed_actions(request: SubjectRequest) -> list[str]:
    """The actions the request's status allows (the admin shows these buttons)."""
    actions = [name for name, (sources, _) in TRANSITIONS.items() if request.status in sources]
    if request.kind == RequestKind.RECTIFICATION and "run" in actions:
        actions.remove("run")
        actions.append("rectify")
    if request.status in OPEN_STATUSES and request.extended_months < MAX_EXTENSION_MONTHS:
        actions.append("extend")
    return actions


@transaction.atomic
def transition(request_id, user, action: str, *, reason: str = "") -> SubjectRequest:
    """Apply one DPO action (verify, approve, run, retry, complete, reject); audited.

    ``run`` and ``retry`` queue the task after commit (the caller checks the queue first)."""
    _require(user, policy.PrivacyRight.WORK)
    if action not in TRANSITIONS:
        raise RequestError(f"Unknown action {action!r}.", "action")
    request = _locked(request_id)
    sources, target = TRANSITIONS[action]
    if request.status not in sources:
        raise RequestError(
            f"A request that is {request.get_status_display().lower()} cannot be {_past(action)}.", "status"
        )
    if action in REASON_REQUIRED:
        reason = _check_reason(reason)
    if action in ("run", "retry") and request.kind not in TASK_KINDS:
        raise RequestError("A rectification is carried out with the rectification form.", "action")
    now = timezone.now()
    before = request.status
    request.status = target
    fields = ["status", "updated_at"]
    if action == "verify":
        request.verified_by, request.verified_at = user, now
        fields += ["verified_by", "verified_at"]
    elif action == "approve":
        request.approved_by, request.approved_at = user, now
        fields += ["approved_by", "approved_at"]
    elif action in ("run", "retry"):
        request.run_by, request.run_started_at = user, now
        request.attempts += 1
        request.error_step = request.error_detail = ""
        fields += ["run_by", "run_started_at", "attempts", "error_step", "error_detail"]
    elif action == "complete":
        request.completed_at = now
        fields += ["completed_at"]
    elif action == "reject":
        request.rejection_reason = reason
        request.completed_at = now
        fields += ["rejection_reason", "completed_at"]
    request.save(update_fields=fields)
    _audit(request, user, action, before, target, reason=reason)
    if action in ("run", "retry"):
        from compliance.requests_tasks import run_subject_request
        from portal.task_queue import enqueue

        cache.delete(progress_key(request.pk))
        enqueue(run_subject_request, request.pk, acting_user_id=user.pk)
    return request


def _past(action: str) -> str:
    return {
        "verify": "verified",
        "approve": "approved",
        "run": "run",
        "retry": "retried",
        "complete": "completed",
        "reject": "rejected",
    }.get(action, action)


@transaction.atomic
def extend(request_id, user, *, reason: str, months: int = MAX_EXTENSION_MONTHS) -> SubjectRequest:
    """Push the deadline back (at most two months in all, Art. 12(3)); a reason is required."""
    _require(user, policy.PrivacyRight.WORK)
    reason_clean = _check_reason(reason)
    request = _locked(request_id)
    if request.status in CLOSED_STATUSES:
        raise RequestError("A closed request cannot be extended.", "status")
    if not isinstance(months, int) or months < 1 or request.extended_months + months > MAX_EXTENSION_MONTHS:
        left = MAX_EXTENSION_MONTHS - request.extended_months
        raise RequestError(f"The deadline can be extended by {left} more month(s) at most.", "months")
    before = request.due_at
    request.extended_months += months
    request.due_at = due_date(request.received_at, request.extended_months)
    request.extension_reason = reason_clean
    request.save(update_fields=["extended_months", "due_at", "extension_reason", "updated_at"])
    _audit(
        request,
        user,
        "extend",
        request.status,
        request.status,
        reason=reason_clean,
        extra={"due_before": before.isoformat(), "due_after": request.due_at.isoformat(), "months": months},
    )
    return request


# --- The task's side ------------------------------------------------------------------------


def execute(request_id, user) -> str:
    """Carry out an in-progress request (called by the Celery task inside its one transaction).

    Idempotent: a request that is no longer in progress is left as it is, so a redelivered
    message (the worker was killed) or a duplicate does nothing twice."""
    request = SubjectRequest.objects.select_for_update().filter(pk=request_id).first()
    if request is None or request.status != S.IN_PROGRESS:
        return request.status if request is not None else "missing"
    try:
        _carry_out(request, user)
    except Exception as exc:
        # What the DPO sees on the request in error (erasure names its own, finer steps).
        exc.portal_step = getattr(exc, "portal_step", f"{request.kind}")
        raise
    return request.status


def _carry_out(request: SubjectRequest, user) -> None:
    if request.kind in PACKAGE_KINDS:
        from compliance import subject_export

        package = subject_export.build_package(request, user)
        finish(request, user, S.AWAITING_REVIEW, {"package": str(package.pk), "sha256": package.sha256, **package.rows})
    elif request.kind == RequestKind.ERASURE:
        from compliance import erasure

        counts = erasure.erase_request(request, user)
        finish(request, user, S.COMPLETED, counts)
    elif request.kind == RequestKind.RESTRICTION:
        finish(request, user, S.COMPLETED, _restrict(request, user))
    elif request.kind == RequestKind.OBJECTION:
        finish(request, user, S.COMPLETED, _object(request, user))
    else:
        raise RequestError("This request type has no task.", "kind")


def _restrict(request, user) -> dict:
    from compliance import consent

    set_progress(request.pk, step="restriction", done=0, total=1)
    with scoped(system=True):
        ids = selectors.customer_ids_matching(request.subject_email, request.subject_phone)
        created = consent.restrict(ids, actor=user, request=request)
    return {"customers": len(ids), "restrictions": created, "rows_total": len(ids)}


def _object(request, user) -> dict:
    from compliance import consent

    set_progress(request.pk, step="consent", done=0, total=1)
    purpose = request.purpose or ConsentPurpose.ANALYTICS
    with scoped(system=True):
        ids = selectors.customer_ids_matching(request.subject_email, request.subject_phone)
        changed = consent.withdraw(ids, purpose, actor=user, request=request)
    return {"customers": len(ids), "consents_withdrawn": changed, "purpose": purpose, "rows_total": len(ids)}


def finish(request: SubjectRequest, user, status: str, result: dict) -> None:
    """in_progress -> awaiting_review (packages) or completed; figures kept, audited."""
    before = request.status
    request.status = status
    request.result = {k: v for k, v in result.items() if isinstance(v, int | str | float | bool)}
    request.result.setdefault("rows_total", sum(v for v in result.values() if isinstance(v, int)))
    fields = ["status", "result", "updated_at"]
    if status == S.COMPLETED:
        request.completed_at = timezone.now()
        fields.append("completed_at")
    request.save(update_fields=fields)
    total = request.result["rows_total"]
    set_progress(request.pk, step="done", done=total, total=total)
    _audit(request, user, "finish", before, status, extra={"scope": "system"})


def mark_error(request_id, *, step: str, detail: str, user=None) -> bool:
    """The task failed for good (its transaction rolled back): record the failing step."""
    with transaction.atomic():
        request = SubjectRequest.objects.select_for_update().filter(pk=request_id).first()
        if request is None or request.status != S.IN_PROGRESS:
            return False
        request.status = S.ERROR
        request.error_step = step[:40]
        request.error_detail = detail[:200]
        request.save(update_fields=["status", "error_step", "error_detail", "updated_at"])
        _audit(request, user, "error", S.IN_PROGRESS, S.ERROR, reason=f"failed at {step}: {detail}"[:500])
    logger.error("subject request %s failed at step %s: %s", request_id, step, detail)
    return True


# --- Deadlines ------------------------------------------------------------------------------
DUE_SOON_RULE = "gdpr_request_due_soon"


def deadline_alerts(now=None) -> dict[str, int]:
    """Raise an alert for every open request past its deadline, or due within
    ``GDPR_DUE_SOON_DAYS`` (the audit app's alert rules de-duplicate and notify)."""
    from audit import alerts
    from audit.choices import AlertSeverity

    now = now or timezone.now()
    soon = now + timedelta(days=settings.GDPR_DUE_SOON_DAYS)
    overdue = due_soon = 0
    rows = SubjectRequest.objects.open().filter(due_at__lte=soon).values_list("pk", "due_at", "kind")
    for request_id, due_at, kind in rows.order_by("due_at"):
        if due_at <= now:
            alerts.gdpr_request_overdue(request_id, due_at=due_at, kind=kind)
            overdue += 1
        else:
            alerts.raise_alert(
                DUE_SOON_RULE,
                f"gdpr_request:{request_id}",
                AlertSeverity.MEDIUM,
                detail={"due_at": due_at.isoformat(), "kind": kind},
                window=timedelta(days=settings.GDPR_DUE_SOON_DAYS + 1),
            )
            due_soon += 1
    return {"overdue": overdue, "due_soon": due_soon}


def near_deadline(now=None):
    """Open requests due within the warning window or overdue (the admin highlights them)."""
    now = now or timezone.now()
    return SubjectRequest.objects.open().filter(due_at__lte=now + timedelta(days=settings.GDPR_DUE_SOON_DAYS))
