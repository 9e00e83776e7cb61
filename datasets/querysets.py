"""``restrict(user, action)``: the policy applied to a queryset.  Every protected read starts here."""

from django.db import models

from accounts import policy
from accounts.policy import Scope


class TeamOwnedQuerySet(models.QuerySet):
    """Rows owned through a team (``team_field``); scoped by the roles table."""

    team_field = "team_id"

    def restrict(self, user, action: policy.Action | str = policy.Action.VIEW):
        grant = policy.access(user, action)
        if grant.scope == Scope.ALL:
            return self.all()
        if grant.scope in policy.TEAM_LIST_SCOPES:
            return self.filter(**{f"{self.team_field}__in": sorted(grant.team_ids)})
        # none, own (rows here have no owner) and dashboards: no rows.
        return self.none()
