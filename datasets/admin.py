"""Customer admin: rows through restrict(), values masked per role, search via the blind index."""

from django.contrib import admin

from accounts import policy
from datasets import blind_index, masking
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

    def get_fields(self, request, obj=None):
        # Only masked renderings: the raw model fields would show clear values in view mode.
        return self.get_readonly_fields(request, obj)

    def get_readonly_fields(self, request, obj=None):
        return ["team", *masked_columns(request, self.policy_action), "created_at"]

    def get_search_results(self, request, queryset, search_term):
        # Encrypted columns cannot be searched with LIKE: exact email through the blind index.
        if not search_term:
            return queryset, False
        return queryset.filter(email_index=blind_index.email_index(search_term)), False
