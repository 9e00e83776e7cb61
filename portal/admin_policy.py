"""Admin base classes whose permissions come from the access policy, not from Django model perms."""

from django.contrib import admin

from accounts import policy


class RestrictedReadOnlyAdmin(admin.ModelAdmin):
    """A read-only admin over a protected model: rows come from ``restrict(user, "view")``."""

    policy_action = policy.Action.VIEW

    def get_queryset(self, request):
        return self.model.objects.restrict(request.user, self.policy_action)

    def has_module_permission(self, request):
        return policy.can(request.user, self.policy_action)

    def has_view_permission(self, request, obj=None):
        return policy.can(request.user, self.policy_action)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class AccountAdminMixin:
    """Accounts are managed by the roles the policy names (Admin), not by Django model perms."""

    def has_module_permission(self, request):
        return policy.may_manage_accounts(request.user)

    def has_view_permission(self, request, obj=None):
        return policy.may_manage_accounts(request.user)

    def has_add_permission(self, request):
        return policy.may_manage_accounts(request.user)

    def has_change_permission(self, request, obj=None):
        return policy.may_manage_accounts(request.user)

    def has_delete_permission(self, request, obj=None):
        return False  # accounts are disabled, never deleted: the audit trail points at them


class PolicyTableAdminMixin:
    """Admin permissions from the policy's admin tables (``policy.admin_site_actions``), never from
    Django model permissions.  ``PortalAdminSite`` puts it in front of every library admin; this
    project's account-security admins use it directly."""

    def _policy_actions(self, request) -> frozenset:
        cache = request.__dict__.setdefault("_portal_admin_actions", {})
        label = self.opts.label_lower
        if label not in cache:
            cache[label] = policy.admin_site_actions(request.user, label)
        return cache[label]

    def has_module_permission(self, request):
        return bool(self._policy_actions(request))

    def has_view_permission(self, request, obj=None):
        actions = self._policy_actions(request)
        return policy.AdminAction.VIEW in actions or policy.AdminAction.CHANGE in actions

    def has_add_permission(self, request, *args, **kwargs):
        return policy.AdminAction.ADD in self._policy_actions(request)

    def has_change_permission(self, request, obj=None):
        return policy.AdminAction.CHANGE in self._policy_actions(request)

    def has_delete_permission(self, request, obj=None):
        return policy.AdminAction.DELETE in self._policy_actions(request)
