"""``restrict(user, action)``: the policy applied to a queryset.  Every protected read starts here."""

from django.db import models
from django.db.models import Q

from accounts import policy
from accounts.policy import Scope


class TeamOwnedQuerySet(models.QuerySet):
    """Rows owned through a team (``team_field``), with an optional owner (``owner_field``)."""

    team_field = "team_id"
    owner_field: str | None = None

    def restrict(self, user, action: policy.Action | str = policy.Action.VIEW):
        return self.filter(self.scope_filter(user, action))

    def scope_filter(self, user, action) -> Q:
        grant = policy.access(user, action)
        if grant.scope == Scope.ALL:
            return Q()
        if grant.scope in policy.TEAM_LIST_SCOPES:
            return Q(**{f"{self.team_field}__in": sorted(grant.team_ids)})
        if grant.scope == Scope.OWN and self.owner_field:
            return Q(**{self.owner_field: grant.user_id})
        # none, dashboards, and "own" on rows without an owner: nothing.
        return Q(pk__in=[])


class CustomerQuerySet(TeamOwnedQuerySet):
    """Customers: exact look-ups go through the blind indexes, never through decryption."""

    def by_email(self, value: str):
        from datasets import blind_index

        return self.filter(email_index__in=blind_index.email_candidates(value))

    def by_phone(self, value: str):
        from datasets import blind_index

        return self.filter(phone_index__in=blind_index.phone_candidates(value))


class ReportQuerySet(TeamOwnedQuerySet):
    """Reports: the table's scopes, plus (for viewing) reports shared with the user or their teams."""

    owner_field = "owner_id"

    def scope_filter(self, user, action) -> Q:
        scope = super().scope_filter(user, action)
        # Q() | X is X in Django, so "all" must return before shares are OR-ed in.
        if policy.access(user, action).scope == Scope.ALL:
            return scope
        if policy.Action(action) != policy.Action.VIEW or not policy.may_receive_shares(user):
            return scope
        from guardian.shortcuts import get_objects_for_user

        shared = get_objects_for_user(
            user, "datasets.view_report", klass=self.model, with_superuser=False, accept_global_perms=False
        )
        return scope | Q(pk__in=shared.values("pk"))
