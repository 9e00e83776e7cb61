"""Accounts admin: users, departments, teams (account admins), API tokens and second-factor
devices (admins: view and revoke), and access reviews (managers decide their own; admins read all).

Every permission here comes from ``accounts.policy``; none from Django model permissions."""

from django import forms
from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.db.models import Count, Exists, OuterRef, Q
from django.http import Http404, HttpResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html
from django_otp.plugins.otp_static.models import StaticDevice
from django_otp.plugins.otp_totp.models import TOTPDevice
from knox.models import AuthToken

from accounts import policy, selectors, services
from accounts.choices import ReviewDecision
from accounts.models import AccessReview, AccessReviewLine, Department, Team, User
from portal.admin_policy import AccountAdminMixin, PolicyTableAdminMixin


@admin.register(User)
class UserAdmin(AccountAdminMixin, DjangoUserAdmin):
    ordering = ["email"]
    list_display = ["email", "full_name", "department", "is_active", "is_staff", "mfa_enrolled", "last_login"]
    list_filter = ["is_active", "is_staff", "groups", "department"]
    search_fields = ["email", "full_name"]
    fieldsets = [
        (None, {"fields": ["email", "password"]}),
        ("Profile", {"fields": ["full_name", "department"]}),
        ("Access", {"fields": ["is_active", "is_staff", "groups"]}),
        ("Dates", {"fields": ["last_login", "date_joined"]}),
    ]
    add_fieldsets = [(None, {"classes": ["wide"], "fields": ["email", "password1", "password2"]})]
    readonly_fields = ["last_login", "date_joined", "is_staff"]
    filter_horizontal = ["groups"]
    actions = ["disable_accounts", "end_sessions_and_tokens", "reset_second_factor", "unlock_sign_in"]

    def get_queryset(self, request):
        enrolled = TOTPDevice.objects.filter(user=OuterRef("pk"), confirmed=True)
        return super().get_queryset(request).select_related("department").annotate(mfa=Exists(enrolled))

    @admin.display(boolean=True, description="MFA", ordering="mfa")
    def mfa_enrolled(self, obj):
        return getattr(obj, "mfa", None)

    def save_model(self, request, obj, form, change):
        obj._portal_actor = request.user  # the audit names who disabled or re-passworded
        super().save_model(request, obj, form, change)

    def save_related(self, request, form, formsets, change):
        form.instance._portal_actor = request.user
        super().save_related(request, form, formsets, change)

    @admin.action(description="Disable selected accounts (ends their sessions and tokens)")
    def disable_accounts(self, request, queryset):
        count = 0
        for user in queryset.filter(is_active=True).exclude(pk=request.user.pk):
            services.deactivate(user, actor=request.user, reason="disabled by an administrator")
            count += 1
        self.message_user(request, f"{count} account(s) disabled.", messages.SUCCESS)

    @admin.action(description="End all sessions and revoke API tokens of selected accounts")
    def end_sessions_and_tokens(self, request, queryset):
        for user in queryset:
            services.end_sessions_and_tokens(user, actor=request.user, reason="ended by an administrator")
        self.message_user(request, "Sessions and tokens ended.", messages.SUCCESS)

    @admin.action(description="Unlock sign-in of selected accounts (clear failed attempts)")
    def unlock_sign_in(self, request, queryset):
        for user in queryset:
            services.unlock_sign_in(user, actor=request.user)
        self.message_user(request, "Sign-in unlocked.", messages.SUCCESS)

    @admin.action(description="Reset the second factor of selected accounts (they enrol again)")
    def reset_second_factor(self, request, queryset):
        for user in queryset:
            services.reset_mfa(user, actor=request.user)
        self.message_user(request, "Second factor reset.", messages.SUCCESS)


@admin.register(Department)
class DepartmentAdmin(AccountAdminMixin, admin.ModelAdmin):
    search_fields = ["name"]


@admin.register(Team)
class TeamAdmin(AccountAdminMixin, admin.ModelAdmin):
    list_display = ["name", "department", "manager"]
    list_filter = ["department"]
    search_fields = ["name"]
    filter_horizontal = ["members"]
    autocomplete_fields = ["manager", "department"]


class _RevokeOnlyAdmin(PolicyTableAdminMixin, admin.ModelAdmin):
    """Listed and revoked (deleted) through a service, never added or edited here."""

    list_select_related = ["user"]
    search_fields = ["user__email"]

    def get_fields(self, request, obj=None):
        return self.get_readonly_fields(request, obj)

    def get_readonly_fields(self, request, obj=None):
        return [f for f in self.list_display if f != "__str__"]

    def delete_queryset(self, request, queryset):
        for obj in queryset:
            self.delete_model(request, obj)


for _model in (AuthToken, TOTPDevice, StaticDevice):
    if admin.site.is_registered(_model):
        admin.site.unregister(_model)


@admin.register(AuthToken)
class ApiTokenAdmin(_RevokeOnlyAdmin):
    """Everyone's API tokens (the token itself is never stored: only its digest)."""

    list_display = ["token_id", "user", "created", "expiry", "last_used", "mfa"]
    list_filter = ["created"]

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("portal_info", "user")

    @admin.display(description="id")
    def token_id(self, obj):
        return selectors.token_public_id(obj)

    @admin.display(description="last used")
    def last_used(self, obj):
        info = getattr(obj, "portal_info", None) if hasattr(obj, "portal_info") else None
        return info.last_used_at if info else None

    @admin.display(boolean=True, description="MFA")
    def mfa(self, obj):
        return bool(hasattr(obj, "portal_info") and obj.portal_info.mfa_verified)

    def delete_model(self, request, obj):
        services.revoke_token(obj, actor=request.user, reason="revoked by an administrator")


class _DeviceAdmin(_RevokeOnlyAdmin):
    """Second-factor devices: who enrolled when; the secret key and backup codes are never shown.
    Deleting one resets the user's second factor (they enrol again)."""

    list_display = ["user", "name", "confirmed", "created_at", "last_used_at"]
    list_filter = ["confirmed"]

    def delete_model(self, request, obj):
        services.reset_mfa(obj.user, actor=request.user)


admin.site.register(TOTPDevice, _DeviceAdmin)
admin.site.register(StaticDevice, _DeviceAdmin)


# --- Access reviews -------------------------------------------------------------------------


class OverdueFilter(admin.SimpleListFilter):
    title = "overdue"
    parameter_name = "overdue"

    def lookups(self, request, model_admin):
        return [("yes", "Overdue"), ("no", "Not overdue")]

    def queryset(self, request, queryset):
        overdue = queryset.overdue()
        if self.value() == "yes":
            return overdue
        if self.value() == "no":
            return queryset.exclude(pk__in=overdue.values("pk"))
        return queryset


class ReviewLineForm(forms.ModelForm):
    decision = forms.ChoiceField(choices=ReviewDecision.choices)

    class Meta:
        model = AccessReviewLine
        fields = ["decision", "note"]

    def clean_decision(self):
        decision = self.cleaned_data["decision"]
        if self.instance.pk and self.instance.decision != ReviewDecision.PENDING and decision != self.instance.decision:
            raise forms.ValidationError(f"Already {self.instance.decision}: a decision is final.")
        return decision


class AccessReviewLineInline(admin.TabularInline):
    model = AccessReviewLine
    form = ReviewLineForm
    extra = 0
    can_delete = False
    fields = ["subject", "kind", "description", "decision", "note", "decided_by", "decided_at"]
    readonly_fields = ["subject", "kind", "description", "decided_by", "decided_at"]

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("subject", "decided_by").order_by("subject__email", "kind")

    def get_readonly_fields(self, request, obj=None):
        if obj is not None and policy.may_decide_review(request.user, obj):
            return self.readonly_fields
        return [*self.readonly_fields, "decision", "note"]

    def has_add_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def has_view_permission(self, request, obj=None):
        return True  # the review itself is already limited to those who may see it

    def has_change_permission(self, request, obj=None):
        return obj is not None and policy.may_decide_review(request.user, obj)


@admin.register(AccessReview)
class AccessReviewAdmin(PolicyTableAdminMixin, admin.ModelAdmin):
    """A manager sees and decides their own reviews; admins read every review. CSV = evidence."""

    list_display = ["period", "reviewer", "due_on", "progress", "overdue", "completed_at", "csv_link"]
    list_filter = ["period", OverdueFilter]
    search_fields = ["reviewer__email"]
    fields = ["period", "reviewer", "period_start", "due_on", "created_at", "completed_at", "overdue"]
    readonly_fields = fields
    inlines = [AccessReviewLineInline]

    def get_queryset(self, request):
        pending = Count("lines", filter=Q(lines__decision=ReviewDecision.PENDING))
        return selectors.reviews_visible_to(request.user).annotate(line_count=Count("lines"), pending=pending)

    def has_change_permission(self, request, obj=None):
        allowed = super().has_change_permission(request, obj)
        return allowed and (obj is None or policy.may_decide_review(request.user, obj))

    @admin.display(description="decided")
    def progress(self, obj):
        total = getattr(obj, "line_count", None)
        if total is None:
            return ""
        return f"{total - obj.pending}/{total}"

    @admin.display(boolean=True, description="overdue")
    def overdue(self, obj):
        return obj.is_overdue

    @admin.display(description="evidence")
    def csv_link(self, obj):
        return format_html('<a href="{}">CSV</a>', reverse("admin:accounts_accessreview_csv", args=[obj.pk]))

    def get_urls(self):
        csv_view = self.admin_site.admin_view(self.csv_view)
        return [path("<int:object_id>/csv/", csv_view, name="accounts_accessreview_csv"), *super().get_urls()]

    def csv_view(self, request, object_id):
        if not self.has_view_permission(request):
            raise Http404
        review = self.get_queryset(request).filter(pk=object_id).first()
        if review is None:
            raise Http404
        body = services.review_csv(review, actor=request.user)
        response = HttpResponse(body, content_type="text/csv; charset=utf-8")
        name = f"access-review-{review.period}-{review.pk}-{timezone.now():%Y%m%d}.csv"
        response["Content-Disposition"] = f'attachment; filename="{name}"'
        return response

    def save_model(self, request, obj, form, change):
        pass  # the review's own fields are read-only; only line decisions are taken (below)

    def save_formset(self, request, form, formset, change):
        # Decisions go through the service (revocation, audit, completion), never a bare save.
        errors = []
        for line_form in formset.forms:
            line = line_form.instance
            decision = line_form.cleaned_data.get("decision") if line_form.has_changed() else None
            if not line.pk or decision in (None, ReviewDecision.PENDING):
                continue
            try:
                services.decide_review_line(request.user, line.pk, decision, line_form.cleaned_data.get("note", ""))
            except services.ReviewError as exc:
                errors.append(f"{line.subject}: {exc}")
        for error in errors:
            self.message_user(request, error, messages.ERROR)
        # The admin's change message reads what a formset save would have set.
        formset.new_objects, formset.changed_objects, formset.deleted_objects = [], [], []
