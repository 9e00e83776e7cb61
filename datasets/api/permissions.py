"""API permission that asks the policy; no role rule is restated here."""

from rest_framework.permissions import BasePermission

from accounts import policy


class PolicyAllows(BasePermission):
    """The view's ``policy_action`` must reach rows for the user (Executive: dashboards only, 403)."""

    message = "Your role does not give access to rows of this dataset."

    def has_permission(self, request, view):
        action = getattr(view, "policy_action_for", lambda: view.policy_action)()
        return bool(request.user and request.user.is_authenticated) and policy.can(request.user, action)
