"""API permission that asks the policy; no role rule is restated here."""

from rest_framework.permissions import BasePermission

from accounts import policy
from audit import services as audit
from audit.choices import AuditAction


class PolicyAllows(BasePermission):
    """The view's ``policy_action`` must reach rows for the user (Executive: dashboards only, 403)."""

    message = "Your role does not give access to rows of this dataset."

    def has_permission(self, request, view):
        action = getattr(view, "policy_action_for", lambda: view.policy_action)()
        if not (request.user and request.user.is_authenticated):
            return False
        if policy.can(request.user, action):
            return True
        audit.record(
            AuditAction.PERMISSION_DENIED,
            actor=request.user,
            resource=getattr(view, "basename", "") or type(view).__name__,
            success=False,
            reason=f"policy refuses {action}",
        )
        return False
