"""Admin for orders, page views, reports, temporary grants and the export log, under the policy."""

from django.contrib import admin, messages
from rest_framework.exceptions import APIException

from accounts import policy
from datasets import services
from datasets.models import AccessGrant, Export, Order, PageView, Report
from datasets.selectors import grants_visible_to
from portal.admin_policy import RestrictedReadOnlyAdmin


@admin.register(Order)
class OrderAdmin(RestrictedReadOnlyAdmin):
    list_display = ["id", "customer_id", "team", "amount", "currency", "status", "created_at"]
    list_filter = ["status", "currency", "team"]
    date_hierarchy = "created_at"
    show_full_result_count = False
    fields = list_display
    readonly_fields = list_display


@admin.register(PageView)
class PageViewAdmin(RestrictedReadOnlyAdmin):
    list_display = ["id", "customer_id", "team", "page", "city", "device", "timestamp"]
    list_filter = ["device", "team"]
    show_full_result_count = False
    fields = list_display
    readonly_fields = list_display


@admin.register(Report)
class ReportAdmin(RestrictedReadOnlyAdmin):
    """Reports are edited through the API (allow-listed definitions); here: view and delete."""

    list_display = ["title", "owner", "team", "department", "updated_at"]
    list_filter = ["department", "team"]
    search_fields = ["title"]
    fields = ["title", "description", "owner", "team", "department", "definition", "created_at", "updated_at"]
    readonly_fields = fields

    def has_delete_permission(self, request, obj=None):
        if obj is None:
            return policy.access(request.user, policy.Action.DELETE).scope != policy.Scope.NONE
        return Report.objects.restrict(request.user, policy.Action.DELETE).filter(pk=obj.pk).exists()

    def delete_queryset(self, request, queryset):
        # Bulk delete keeps to the rows the policy lets this user delete.
        queryset.filter(pk__in=Report.objects.restrict(request.user, policy.Action.DELETE).values("pk")).delete()


@admin.register(AccessGrant)
class AccessGrantAdmin(admin.ModelAdmin):
    """Deciders (managers for their department, admins) approve or refuse pending requests."""

    list_display = ["id", "requester", "kind", "team", "customer_id", "status", "requested_at", "expires_at"]
    list_filter = ["status", "kind"]
    fields = [*list_display, "reason", "duration_hours", "decided_by", "decided_at", "decision_note"]
    readonly_fields = fields
    actions = ["approve", "refuse"]

    def get_queryset(self, request):
        return grants_visible_to(request.user)

    def has_module_permission(self, request):
        return policy.may_decide_grant(request.user, request.user.department_id)

    def has_view_permission(self, request, obj=None):
        return self.has_module_permission(request)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def _decide(self, request, queryset, approve):
        done = 0
        for grant in queryset:
            try:
                services.decide_grant(request.user, grant.pk, approve=approve, note="decided in the admin")
                done += 1
            except APIException as exc:
                self.message_user(request, f"#{grant.pk}: {exc.detail}", messages.WARNING)
        self.message_user(request, f"{done} request(s) {'approved' if approve else 'refused'}.")

    @admin.action(description="Approve selected requests")
    def approve(self, request, queryset):
        self._decide(request, queryset, True)

    @admin.action(description="Refuse selected requests")
    def refuse(self, request, queryset):
        self._decide(request, queryset, False)

    def get_actions(self, request):
        # The action checkboxes need a change-like right; deciding is this admin's only write.
        actions = super().get_actions(request)
        return actions if self.has_module_permission(request) else {}


@admin.register(Export)
class ExportAdmin(RestrictedReadOnlyAdmin):
    """The export log (who, what, rows, SHA-256, purpose) for those who may export everything."""

    policy_action = policy.Action.EXPORT
    list_display = ["id", "requested_by", "dataset", "format", "status", "row_count", "purpose", "created_at"]
    list_filter = ["status", "dataset", "format"]
    fields = [*list_display, "filters", "sha256", "finished_at", "error"]
    readonly_fields = fields

    def get_queryset(self, request):
        if policy.access(request.user, policy.Action.EXPORT).scope == policy.Scope.ALL:
            return Export.objects.all()
        return Export.objects.filter(requested_by=request.user)
