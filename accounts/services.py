"""Writes about users: create, roles, disable, passwords, sessions, API tokens, MFA, access reviews.

Ending a user's sessions and tokens when they are disabled, their password changes or a role
changes happens in ``accounts.signals`` (on the model), so that every path (these services, the
admin, the shell) does it; the services here say who acted and why.
"""

import csv
import io
import secrets
from collections.abc import Callable
from datetime import date, timedelta

from django.conf import settings
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import connection, transaction
from django.utils import timezone

from accounts import policy, selectors
from accounts.choices import ReviewDecision, ReviewLineKind
from accounts.models import AccessReview, AccessReviewLine, ApiTokenInfo, Department, Team, User, UserSession
from accounts.policy import Duty, Role
from audit.choices import AuditAction
from audit.services import record
from portal.ids import parse_id

ROLE_CHOICES = [r.value for r in Role] + [d.value for d in Duty]


class AccountError(ValueError):
    """A request about an account that cannot be carried out; the message says why."""


def parse_role(name: str) -> Role | Duty:
    for kind in (Role, Duty):
        for member in kind:
            if member.value.lower() == (name or "").lower():
                return member
    raise AccountError(f"unknown role {name!r}: choose one of {', '.join(ROLE_CHOICES)}")


def generate_password() -> str:
    return secrets.token_urlsafe(18)


@transaction.atomic
def create_user(
    email: str,
    role: str,
    *,
    password: str | None = None,
    team: str | None = None,
    department: str | None = None,
    full_name: str = "",
) -> User:
    """Create an active user with one role (or the DPO duty alone), team and department."""
    try:
        validate_email(email or "")
    except ValidationError:
        raise AccountError(f"invalid email address {email!r}") from None
    email = email.strip().lower()
    grant = parse_role(role)
    if User.objects.filter(email=email).exists():
        raise AccountError(f"a user with email {email} already exists")
    team_obj = None
    if team:
        team_obj = Team.objects.filter(name=team).first()
        if team_obj is None:
            raise AccountError(f"unknown team {team!r}")
    dept_obj = None
    if department:
        dept_obj = Department.objects.filter(name=department).first()
        if dept_obj is None:
            raise AccountError(f"unknown department {department!r}")
    if dept_obj is None and team_obj is not None:
        dept_obj = team_obj.department
    user = User.objects.create_user(email, password or None, full_name=full_name, department=dept_obj)
    if team_obj is not None:
        team_obj.members.add(user)
    set_role(user, grant)
    return user


def set_role(user: User, grant: Role | Duty, *, actor=None) -> None:
    """Put the user in exactly one role group (a duty is added beside it); staff follows the policy.

    A change of role or duty ends the user's sessions and tokens (``accounts.signals``)."""
    group, _ = Group.objects.get_or_create(name=grant.value)
    user._portal_actor = actor
    if isinstance(grant, Role):
        held = user.groups.filter(name__in=[r.value for r in Role]).exclude(pk=group.pk)
        if held.exists():
            user.groups.remove(*held)
        user.is_staff = policy.is_staff_role(grant) or _holds_staff_duty(user)
    elif policy.is_staff_duty(grant):
        user.is_staff = True  # the DPO's workspace is in the admin site
    if not user.groups.filter(pk=group.pk).exists():
        user.groups.add(group)
    forget_cached_access(user)
    user.save(update_fields=["is_staff"])


def remove_grant(user: User, grant: Role | Duty, *, actor=None) -> None:
    """Take one role or duty away (an access review's revoke); without a role a user reaches nothing."""
    user._portal_actor = actor
    user.groups.remove(*Group.objects.filter(name=grant.value))
    if isinstance(grant, Role) or policy.is_staff_duty(grant):
        forget_cached_access(user)
        user.is_staff = policy.is_staff_role(selectors.role_of(user)) or _holds_staff_duty(user)
        user.save(update_fields=["is_staff"])
    forget_cached_access(user)


def _holds_staff_duty(user: User) -> bool:
    return user.groups.filter(name__in=[d.value for d in policy.STAFF_DUTIES]).exists()


def forget_cached_access(user: User) -> None:
    """Drop what this user object remembers of its role, groups and scopes (after a change)."""
    user._portal_role = False  # drop the cached role and scopes
    user.__dict__.pop("_portal_groups", None)
    user.__dict__.pop("_portal_access", None)
    user.__dict__.pop("_portal_privacy_rights", None)


@transaction.atomic
def disable_user(email: str, *, actor=None, reason: str = "disabled by an administrator") -> User:
    """Deactivate a user; their sessions and API tokens end at once (``accounts.signals``)."""
    user = User.objects.filter(email=(email or "").strip().lower()).first()
    if user is None:
        raise AccountError(f"no user with email {email!r}")
    deactivate(user, actor=actor, reason=reason)
    return user


def deactivate(user: User, *, actor=None, reason: str) -> None:
    user.is_active = False
    user._portal_actor = actor
    user._portal_reason = reason
    user.save(update_fields=["is_active"])


def change_password(user: User, password: str, *, actor=None) -> None:
    """Set a new password (validated by the caller's form); every session and token ends."""
    user.set_password(password)
    user._portal_actor = actor
    user.save(update_fields=["password"])


# --- Sessions and API tokens ----------------------------------------------------------------


def end_sessions_and_tokens(user: User, *, actor=None, reason: str) -> tuple[int, int]:
    """End every browser session and API token of the user at once; returns (sessions, tokens)."""
    from knox.models import AuthToken

    sessions, _ = UserSession.objects.filter(user_id=user.pk).delete()
    digests = list(AuthToken.objects.filter(user_id=user.pk).values_list("digest", flat=True))
    if digests:
        AuthToken.objects.filter(digest__in=digests).delete()  # their ApiTokenInfo rows cascade
        record(
            AuditAction.TOKEN_REVOKED,
            actor=actor,
            resource="api_token",
            object_ids=[d[: selectors.TOKEN_ID_LENGTH] for d in digests],
            rows=len(digests),
            reason=reason,
            extra={"user_id": user.pk},
        )
    return sessions, len(digests)


def issue_token(user: User, *, mfa_verified: bool, ip: str | None = None):
    """A new API token (knox: hashed, expiring after ``API_TOKEN_TTL``); returns (row, token)."""
    from knox.models import AuthToken

    instance, token = AuthToken.objects.create(user, expiry=settings.API_TOKEN_TTL)
    ApiTokenInfo.objects.create(token=instance, mfa_verified=mfa_verified, created_ip=ip or None)
    record(
        AuditAction.TOKEN_CREATED,
        actor=user,
        resource="api_token",
        object_ids=[selectors.token_public_id(instance)],
        extra={"mfa": mfa_verified, "expiry": instance.expiry.isoformat() if instance.expiry else None},
    )
    return instance, token


def revoke_token(token, *, actor, reason: str = "revoked") -> None:
    public_id = selectors.token_public_id(token)
    owner_id = token.user_id
    token.delete()
    record(
        AuditAction.TOKEN_REVOKED,
        actor=actor,
        resource="api_token",
        object_ids=[public_id],
        rows=1,
        reason=reason,
        extra={"user_id": owner_id},
    )


def record_token_use(token, now=None) -> None:
    """Note that the token was used: one statement per request that writes at most once a minute
    per token and never waits for a concurrent request holding the row (SKIP LOCKED)."""
    now = now or timezone.now()
    stale = now - timedelta(seconds=settings.API_TOKEN_TOUCH_SECONDS)
    table = connection.ops.quote_name(ApiTokenInfo._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} SET last_used_at = %s WHERE token_id IN ("  # noqa: S608 - the table name is ours
            f" SELECT token_id FROM {table} WHERE token_id = %s"
            " AND (last_used_at IS NULL OR last_used_at < %s) FOR UPDATE SKIP LOCKED)",
            [now, token.pk, stale],
        )


def purge_expired_tokens(now=None) -> int:
    """Delete expired tokens (knox only deletes a token when it is presented)."""
    from knox.models import AuthToken

    _, per_model = AuthToken.objects.filter(expiry__lt=now or timezone.now()).delete()
    return per_model.get(AuthToken._meta.label, 0)


# --- MFA (django-otp: a TOTP authenticator plus a set of one-time backup codes) --------------
AUTHENTICATOR_NAME = "Authenticator"
BACKUP_CODES_NAME = "Backup codes"


class MfaError(ValueError):
    """An MFA step that cannot be carried out; the message says why."""


def pending_authenticator(user: User):
    """The unconfirmed TOTP device of an enrolment in progress (created on first call)."""
    from django_otp.plugins.otp_totp.models import TOTPDevice

    if selectors.has_authenticator(user):
        raise MfaError("An authenticator is already enrolled.")
    device = TOTPDevice.objects.filter(user=user, confirmed=False).order_by("-pk").first()
    if device is None:
        device = TOTPDevice.objects.create(user=user, name=AUTHENTICATOR_NAME, confirmed=False)
    return device


@transaction.atomic
def confirm_authenticator(user: User, code: str) -> tuple[object, list[str]]:
    """Finish enrolment with a code from the new authenticator; returns the device and the
    backup codes, shown once (only the device keeps them)."""
    from django_otp.plugins.otp_totp.models import TOTPDevice

    device = TOTPDevice.objects.select_for_update().filter(user=user, confirmed=False).order_by("-pk").first()
    if device is None or selectors.has_authenticator(user):
        raise MfaError("There is no enrolment in progress.")
    if not device.verify_token(_clean_code(code)):
        raise MfaError("That code is not valid. Check the time on your device and try the current code.")
    device.confirmed = True
    device.save(update_fields=["confirmed"])
    TOTPDevice.objects.filter(user=user, confirmed=False).delete()
    codes = _new_backup_codes(user)
    record(AuditAction.MFA_ENROLLED, actor=user, resource="mfa", extra={"device": "totp"})
    return device, codes


def _new_backup_codes(user: User) -> list[str]:
    from django_otp.plugins.otp_static.models import StaticDevice, StaticToken

    StaticDevice.objects.filter(user=user).delete()
    device = StaticDevice.objects.create(user=user, name=BACKUP_CODES_NAME, confirmed=True)
    codes = [StaticToken.random_token() for _ in range(settings.MFA_BACKUP_CODES)]
    StaticToken.objects.bulk_create([StaticToken(device=device, token=code) for code in codes])
    return codes


def _clean_code(code: str) -> str:
    return "".join(str(code or "").split()).lower()[:16]


@transaction.atomic
def verify_second_factor(user: User, code: str):
    """The confirmed device (authenticator first, then backup codes) that accepts the code, or
    None.  Each device throttles repeated failures itself; a backup code works once."""
    from django_otp.plugins.otp_static.models import StaticDevice
    from django_otp.plugins.otp_totp.models import TOTPDevice

    code = _clean_code(code)
    if not code:
        return None
    # Digits go to the authenticator, anything else to the backup codes: a failure throttles
    # only the device it was meant for.
    model = TOTPDevice if code.isdigit() and len(code) in (6, 8) else StaticDevice
    for device in model.objects.devices_for_user(user, confirmed=True).select_for_update():
        if device.verify_token(code):
            return device
    return None


@transaction.atomic
def reset_mfa(user: User, *, actor) -> None:
    """Remove every second-factor device (a lost phone): the user must enrol again before any
    privileged work; their sessions and tokens end."""
    from django_otp.plugins.otp_static.models import StaticDevice
    from django_otp.plugins.otp_totp.models import TOTPDevice

    TOTPDevice.objects.filter(user=user).delete()
    StaticDevice.objects.filter(user=user).delete()
    end_sessions_and_tokens(user, actor=actor, reason="second factor reset")
    record(
        AuditAction.ACCESS_REVOKED,
        actor=actor,
        resource="mfa",
        object_ids=[user.pk],
        reason="second factor reset; the user enrols again",
    )


def unlock_sign_in(user: User, *, actor) -> int:
    """Lift a lockout early (django-axes' failed attempts against the account, from any address)."""
    from accounts import lockout

    cleared = lockout.unlock(user)
    record(
        AuditAction.ACCESS_GRANTED,
        actor=actor,
        resource="lockout",
        object_ids=[user.pk],
        rows=cleared,
        reason="sign-in unlocked by an administrator",
    )
    return cleared


# --- Inactive accounts ----------------------------------------------------------------------


def disable_inactive_accounts(now=None) -> list[int]:
    """Disable active accounts with no login for ``INACTIVE_ACCOUNT_DAYS`` (never-used accounts
    count from their creation); returns the ids disabled."""
    now = now or timezone.now()
    days = settings.INACTIVE_ACCOUNT_DAYS
    cutoff = now - timedelta(days=days)
    stale = User.objects.filter(is_active=True).exclude(last_login__gte=cutoff).filter(date_joined__lt=cutoff)
    disabled = []
    for user in stale.order_by("pk"):
        last = user.last_login.date().isoformat() if user.last_login else "never"
        deactivate(user, actor=None, reason=f"inactive: no login for {days} days (last login: {last})")
        disabled.append(user.pk)
    return disabled


# --- Access reviews -------------------------------------------------------------------------


def quarter_of(day: date) -> tuple[str, date]:
    """("2026-Q4", first day of that quarter)."""
    quarter = (day.month - 1) // 3 + 1
    return f"{day.year}-Q{quarter}", date(day.year, 3 * quarter - 2, 1)


@transaction.atomic
def create_access_reviews(today: date | None = None) -> list[AccessReview]:
    """This quarter's review for every reviewer who has none yet (idempotent: run daily)."""
    today = today or timezone.localdate()
    period, start = quarter_of(today)
    # Due a fixed time after the quarter began, or after creation for a review made late in it
    # (a new manager): never overdue on the day it appears.
    due = max(start, today) + timedelta(days=settings.ACCESS_REVIEW_DUE_DAYS)
    created = []
    reviewers = User.objects.filter(is_active=True, groups__name__in=[r.value for r in policy.ACCESS_REVIEWER_ROLES])
    for reviewer in reviewers.exclude(access_reviews__period=period).distinct().order_by("pk"):
        if not policy.is_access_reviewer(reviewer):
            continue
        review = AccessReview.objects.create(reviewer=reviewer, period=period, period_start=start, due_on=due)
        AccessReviewLine.objects.bulk_create(
            [
                AccessReviewLine(
                    review=review,
                    subject=item.subject,
                    kind=item.kind,
                    grant_ref=item.grant_ref[:100],
                    description=item.description[:300],
                )
                for item in selectors.access_review_lines(reviewer)
            ],
            ignore_conflicts=True,
        )
        if not review.lines.exists():
            review.completed_at = timezone.now()  # nobody to review: done, and the evidence says so
            review.save(update_fields=["completed_at"])
        created.append(review)
    return created


# How each kind of line is revoked; other apps add theirs with ``register_review_revoker``.
_REVIEW_REVOKERS: dict[str, Callable[[AccessReviewLine, User], None]] = {}


def register_review_revoker(kind: str, revoke: Callable[[AccessReviewLine, User], None]) -> None:
    _REVIEW_REVOKERS[kind] = revoke


def _revoke_role_or_duty(line: AccessReviewLine, actor: User) -> None:
    grant = parse_role(line.grant_ref)
    remove_grant(line.subject, grant, actor=actor)


def _revoke_object_permission(line: AccessReviewLine, actor: User) -> None:
    from guardian.models import UserObjectPermission

    pk = parse_id(line.grant_ref.removeprefix("uop:"))
    if pk is not None:
        UserObjectPermission.objects.filter(pk=pk, user_id=line.subject_id).delete()


def _revoke_temporary_grant(line: AccessReviewLine, actor: User) -> None:
    from django.apps import apps

    label, _, raw = line.grant_ref.rpartition(":")
    model = apps.get_model(label)
    pk = parse_id(raw)
    if pk is not None:
        model.objects.filter(pk=pk, requester_id=line.subject_id, status="approved").update(
            status="revoked", decided_by=actor, decided_at=timezone.now()
        )


register_review_revoker(ReviewLineKind.ROLE, _revoke_role_or_duty)
register_review_revoker(ReviewLineKind.DUTY, _revoke_role_or_duty)
register_review_revoker(ReviewLineKind.OBJECT_PERMISSION, _revoke_object_permission)
register_review_revoker(ReviewLineKind.TEMPORARY_GRANT, _revoke_temporary_grant)


class ReviewError(ValueError):
    """A review decision that cannot be taken; the message says why."""


@transaction.atomic
def decide_review_line(actor: User, line_id: int, decision: str, note: str = "") -> AccessReviewLine:
    """The reviewer confirms or revokes one line; a revoke takes the grant away at once."""
    line = AccessReviewLine.objects.select_for_update().select_related("review", "subject").filter(pk=line_id).first()
    if line is None or not policy.may_decide_review(actor, line.review):
        raise ReviewError("No such line in a review of yours.")
    if decision not in (ReviewDecision.CONFIRMED, ReviewDecision.REVOKED):
        raise ReviewError("Choose confirmed or revoked.")
    if line.decision != ReviewDecision.PENDING:
        raise ReviewError(f"This line is already {line.decision}.")
    if decision == ReviewDecision.REVOKED:
        revoke = _REVIEW_REVOKERS.get(line.kind)
        if revoke is None:
            raise ReviewError(f"Lines of kind {line.kind!r} cannot be revoked here.")
        revoke(line, actor)
        record(
            AuditAction.ACCESS_REVOKED,
            actor=actor,
            resource=f"access_review:{line.kind}",
            object_ids=[line.subject_id],
            reason=f"{line.review.period} review: {line.description}"[:500],
            extra={"review_id": line.review_id, "line_id": line.pk, "grant": line.grant_ref},
        )
    line.decision = decision
    line.decided_by = actor
    line.decided_at = timezone.now()
    line.note = (note or "")[:500]
    line.save(update_fields=["decision", "decided_by", "decided_at", "note"])
    record(
        AuditAction.ACCESS_REVIEWED,
        actor=actor,
        resource="access_review_line",
        object_ids=[line.pk],
        reason=f"{decision}: {line.description}"[:500],
        extra={"review_id": line.review_id, "subject_id": line.subject_id},
    )
    review = line.review
    if review.completed_at is None and not review.lines.filter(decision=ReviewDecision.PENDING).exists():
        review.completed_at = timezone.now()
        review.save(update_fields=["completed_at"])
        record(
            AuditAction.ACCESS_REVIEWED,
            actor=actor,
            resource="access_review",
            object_ids=[review.pk],
            reason=f"{review.period} review completed",
            extra={"overdue": review.completed_at.date() > review.due_on},
        )
    return line


CSV_COLUMNS = [
    "review_id",
    "period",
    "reviewer",
    "due_on",
    "completed_at",
    "subject",
    "subject_department",
    "kind",
    "grant",
    "description",
    "decision",
    "decided_by",
    "decided_at",
    "note",
]


def _csv_cell(value) -> str:
    text = "" if value is None else str(value)
    # A cell that a spreadsheet would run as a formula is kept as text.
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def review_csv(review: AccessReview, *, actor) -> str:
    """The review as CSV evidence (one row per line); the export itself is audited."""
    lines = review.lines.select_related("subject__department", "decided_by").order_by("subject__email", "kind")
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    count = 0
    for line in lines:
        count += 1
        writer.writerow(
            _csv_cell(v)
            for v in [
                review.pk,
                review.period,
                review.reviewer.email,
                review.due_on.isoformat(),
                review.completed_at.isoformat() if review.completed_at else "",
                line.subject.email,
                line.subject.department.name if line.subject.department else "",
                line.kind,
                line.grant_ref,
                line.description,
                line.decision,
                line.decided_by.email if line.decided_by else "",
                line.decided_at.isoformat() if line.decided_at else "",
                line.note,
            ]
        )
    record(
        AuditAction.EXPORT_DATA,
        actor=actor,
        resource="access_review",
        object_ids=[review.pk],
        rows=count,
        reason="access review evidence (CSV)",
    )
    return out.getvalue()
