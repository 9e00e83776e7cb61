"""Customer admin: rows through restrict(), values masked per role, search via the blind index."""

from django.contrib import admin

from accounts import policy
from audit import services as audit
from audit.choices import AuditAction
from datasets import masking
from datasets.models import Customer
from portal.admin_policy import RestrictedReadOnlyAdmin

_MASKED_COLUMNS = [("name", "name"), ("email", "email"), ("phone", "phone"), ("card_last4", "card")]


def masked_columns(request, action) -> list:
    """One display callable per personal field, bound to this request's masking row.

    Built per request because the admin instance is shared between threads."""
    masks = policy.masking_for(policy.access(request.user, action).role) or {}

    def column(field, label):
        def show(obj):
            return masking.apply(masks.get(field, policy.Mask.NULL), getattr(obj, field))

        show.__name__ = f"masked_{field}"
        show.short_description = label
        return show

    return [column(field, label) for field, label in _MASKED_COLUMNS]


@admin.register(Customer)
class CustomerAdmin(RestrictedReadOnlyAdmin):
    list_filter = ["team"]
    search_fields = ["email"]  # served by the blind index, see get_search_results
    search_help_text = "Exact email address"
    list_select_related = ["team"]
    show_full_result_count = False

    def get_list_display(self, request):
        return ["id", "team", *masked_columns(request, self.policy_action), "created_at"]

    # One audit event per page or detail shown, with the ids read (never one per row).
    def changelist_view(self, request, extra_context=None):
        response = super().changelist_view(request, extra_context)
        changelist = (getattr(response, "context_data", None) or {}).get("cl")
        if changelist is not None:
            ids = [obj.pk for obj in changelist.result_list]
            action = AuditAction.SEARCH if changelist.query else AuditAction.VIEW
            audit.record(action, actor=request.user, resource="customer", object_ids=ids, rows=len(ids))
        return response

    def change_view(self, request, object_id, form_url="", extra_context=None):
        response = super().change_view(request, object_id, form_url, extra_context)
        if response.status_code == 200:
            audit.record(AuditAction.VIEW, actor=request.user, resource="customer", object_ids=[object_id], rows=1)
        return response

    def get_fields(self, request, obj=None):
        # Only masked renderings: the raw model fields would show clear values in view mode.
        return self.get_readonly_fields(request, obj)

    def get_readonly_fields(self, request, obj=None):
        return ["team", *masked_columns(request, self.policy_action), "created_at"]

    def get_search_results(self, request, queryset, search_term):
        # Encrypted columns cannot be searched with LIKE: exact email through the blind index.
        if not search_term:
            return queryset, False
        return queryset.by_email(search_term), False


from datasets import admin_activity  # noqa: E402, F401  (registers the other dataset admins)
