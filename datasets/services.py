"""Writes on datasets: reports (with sharing), temporary access grants, reveal-with-reason.

Every write re-checks the saved object against ``restrict(user, "edit")`` inside the
transaction, so a change that would move an object out of the writer's scope is refused."""

from datetime import timedelta

from django.contrib.auth.models import Group
from django.db import transaction
from django.utils import timezone
from guardian.shortcuts import assign_perm, remove_perm
from rest_framework.exceptions import NotFound, PermissionDenied, ValidationError

from accounts import policy
from accounts.models import Team, User
from audit import services as audit
from audit.choices import AuditAction
from datasets import report_definitions, selectors
from datasets.choices import GrantKind, GrantStatus
from datasets.models import AccessGrant, Customer, Report
from portal.ids import parse_id

REPORT_WRITABLE = {"title", "description", "definition", "team"}
REVEALABLE_FIELDS = ("name", "email", "phone")


def refuse_unwritable_fields(data: dict, writable: set[str]) -> None:
    """A field the caller may not write is an error, not something silently dropped."""
    extra = sorted(set(data) - writable)
    if extra:
        raise ValidationError({name: ["This field cannot be written."] for name in extra})


def _team_in_edit_scope(user, team_id) -> Team:
    pk = parse_id(team_id)
    team = Team.objects.filter(pk=pk).first() if pk is not None else None
    writable = policy.writable_team_ids(user)
    if team is None or (writable is not None and team.pk not in writable):
        raise ValidationError({"team": ["Choose a team within your scope."]})
    return team


def _recheck(user, report: Report) -> None:
    if not Report.objects.restrict(user, policy.Action.EDIT).filter(pk=report.pk).exists():
        raise ValidationError({"team": ["The report would leave your scope."]})


@transaction.atomic
def create_report(user, data: dict) -> Report:
    if policy.access(user, policy.Action.EDIT).scope == policy.Scope.NONE:
        raise PermissionDenied("Your role cannot create reports.")
    refuse_unwritable_fields(data, REPORT_WRITABLE)
    team = _team_in_edit_scope(user, data.get("team"))
    report = Report(
        owner=user,
        team=team,
        title=data.get("title", ""),
        description=data.get("description", ""),
        definition=report_definitions.validate(data.get("definition")),
    )
    report.full_clean(exclude=["owner", "team", "department", "definition"])
    report.save()
    _recheck(user, report)
    return report


def editable_report(user, pk) -> Report:
    """The report if the user may edit it; 404 when out of view scope, 403 when only viewable."""
    report = Report.objects.restrict(user, policy.Action.VIEW).filter(pk=pk).first()
    if report is None:
        raise NotFound()
    locked = Report.objects.restrict(user, policy.Action.EDIT).select_for_update().filter(pk=pk).first()
    if locked is None:
        raise PermissionDenied("Your role cannot edit this report.")
    return locked


@transaction.atomic
def update_report(user, pk, data: dict) -> Report:
    refuse_unwritable_fields(data, REPORT_WRITABLE)
    report = editable_report(user, pk)
    if "team" in data:
        report.team = _team_in_edit_scope(user, data["team"])
    for field in ("title", "description"):
        if field in data:
            setattr(report, field, data[field])
    if "definition" in data:
        report.definition = report_definitions.validate(data["definition"])
    report.full_clean(exclude=["owner", "team", "department", "definition"])
    report.save()
    _recheck(user, report)
    return report


@transaction.atomic
def delete_report(user, pk) -> None:
    if not Report.objects.restrict(user, policy.Action.VIEW).filter(pk=pk).exists():
        raise NotFound()
    deletable = Report.objects.restrict(user, policy.Action.DELETE).filter(pk=pk)
    if not deletable.exists():
        raise PermissionDenied("Your role cannot delete this report.")
    deletable.delete()


def team_group(team: Team) -> Group:
    """The guardian group standing for a team (members kept in sync by datasets.signals)."""
    group, created = Group.objects.get_or_create(name=f"team:{team.pk}")
    if created:
        group.user_set.add(*team.members.all())
    return group


@transaction.atomic
def share_report(user, pk, *, user_id=None, team_id=None, revoke=False) -> Report:
    """Give (or take back) view access to one user or one team; the viewer's own scope still
    bounds what a run returns."""
    report = Report.objects.restrict(user, policy.Action.VIEW).filter(pk=pk).first()
    if report is None:
        raise NotFound()
    if not policy.may_share(user, report):
        raise PermissionDenied("Only those who may edit a report may share it.")
    if (user_id is None) == (team_id is None):
        raise ValidationError({"non_field_errors": ["Give exactly one of user or team."]})
    if user_id is not None:
        target = User.objects.filter(pk=user_id, is_active=True).first()
        if target is None:
            raise ValidationError({"user": ["Unknown user."]})
    else:
        team = Team.objects.filter(pk=team_id).first()
        if team is None:
            raise ValidationError({"team": ["Unknown team."]})
        target = team_group(team)
    (remove_perm if revoke else assign_perm)("datasets.view_report", target, report)
    audit.record(
        AuditAction.REPORT_SHARED,
        actor=user,
        resource="report",
        object_ids=[report.pk],
        reason=("revoked " if revoke else "shared with ") + (f"user {user_id}" if user_id else f"team {team_id}"),
    )
    return report


# --- Temporary access grants ----------------------------------------------------------------


@transaction.atomic
def request_grant(user, *, kind, reason, team_id=None, customer_id=None, duration_hours=8) -> AccessGrant:
    if not policy.may_request_grant(user):
        raise PermissionDenied("Your role cannot ask for temporary access.")
    if not reason or len(reason.strip()) < 10:
        raise ValidationError({"reason": ["Give a reason of at least 10 characters."]})
    if not 1 <= int(duration_hours) <= policy.GRANT_MAX_HOURS:
        raise ValidationError({"duration_hours": [f"Between 1 and {policy.GRANT_MAX_HOURS} hours."]})
    grant = AccessGrant(requester=user, kind=kind, reason=reason.strip(), duration_hours=duration_hours)
    if kind == GrantKind.TEAM_ACCESS:
        grant.team = Team.objects.filter(pk=team_id).first()
        if grant.team is None:
            raise ValidationError({"team": ["Unknown team."]})
    elif kind == GrantKind.UNMASK_CUSTOMER:
        # The customer must be one the requester can already see (masked): 404 otherwise.
        customer = Customer.objects.restrict(user, policy.Action.VIEW).filter(pk=customer_id).first()
        if customer is None:
            raise ValidationError({"customer": ["Unknown customer."]})
        grant.customer = customer
    else:
        raise ValidationError({"kind": ["Unknown kind."]})
    grant.save()
    return grant


def grant_department_id(grant: AccessGrant) -> int | None:
    if grant.team_id:
        return grant.team.department_id
    if grant.customer_id:
        # Read under the system scope: the approver may not see the row itself.
        from portal.security_context import scoped

        with scoped(system=True):
            return Customer.objects.filter(pk=grant.customer_id).values_list("team__department_id", flat=True).first()
    return None


@transaction.atomic
def decide_grant(user, pk, *, approve: bool, note: str = "") -> AccessGrant:
    grant = AccessGrant.objects.select_for_update().filter(pk=pk).first()
    if grant is None or not policy.may_decide_grant(user, grant_department_id(grant)):
        raise NotFound()
    if grant.requester_id == user.pk:
        raise PermissionDenied("Nobody approves their own request.")
    if grant.status != GrantStatus.PENDING:
        raise ValidationError({"status": [f"The request is already {grant.status}."]})
    grant.decided_by = user
    grant.decided_at = timezone.now()
    grant.decision_note = note[:500]
    if approve:
        grant.status = GrantStatus.APPROVED
        grant.expires_at = grant.decided_at + timedelta(hours=grant.duration_hours)
    else:
        grant.status = GrantStatus.REFUSED
    grant.save()
    audit.record(
        AuditAction.ACCESS_GRANTED if approve else AuditAction.ACCESS_REVOKED,
        actor=user,
        resource=f"grant:{grant.kind}",
        object_ids=[grant.pk],
        reason=grant.reason if approve else f"refused: {note}"[:500],
        extra={"requester_id": grant.requester_id, "expires_at": grant.expires_at.isoformat() if approve else None},
    )
    return grant


def expire_grants(now=None) -> int:
    """Mark approved grants past their expiry as expired (the check on use does not wait for this)."""
    now = now or timezone.now()
    return AccessGrant.objects.filter(status=GrantStatus.APPROVED, expires_at__lte=now).update(
        status=GrantStatus.EXPIRED
    )


def reveal_field(user, customer_pk, field: str, reason: str) -> str:
    """Unmask one field of one customer, with a reason; audited as UNMASK whether or not allowed."""
    if field not in REVEALABLE_FIELDS:
        raise ValidationError({"field": [f"Choose one of: {', '.join(REVEALABLE_FIELDS)}."]})
    if not reason or len(reason.strip()) < 10:
        raise ValidationError({"reason": ["Give a reason of at least 10 characters."]})
    customer = Customer.objects.restrict(user, policy.Action.VIEW).filter(pk=customer_pk).first()
    if customer is None:
        raise NotFound()
    role = policy.access(user, policy.Action.VIEW).role
    allowed = policy.field_is_clear(role, field) or selectors.has_unmask_grant(user, customer.pk)
    audit.record(
        AuditAction.UNMASK,
        actor=user,
        resource=f"customer.{field}",
        object_ids=[customer.pk],
        success=allowed,
        reason=reason.strip(),
    )
    if not allowed:
        raise PermissionDenied("No active grant lets you reveal this field.")
    return getattr(customer, field)
