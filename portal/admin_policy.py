"""Admin base classes whose permissions come from the access policy, not from Django model perms."""

from django.contrib import admin
from django.http import Http404

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

    def _get_obj_does_not_exist_redirect(self, request, opts, object_id):
        # Out of scope and missing look the same: 404, never a hint that the row exists.
        raise Http404

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
