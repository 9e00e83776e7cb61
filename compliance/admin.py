"""The DPO's workspace in the admin: the subject-request queue, its actions, rectification,
package review and download, consent history and the erased-subject register.

Rights come from the policy (``accounts.policy.privacy_rights``), never from Django model
permissions.  Every state change goes through ``compliance.requests`` (checked, audited); an
illegal step is an error message and changes nothing.  Pages that show customer data read it
under the system scope, explicitly, and record the read.
"""

import hashlib

from cryptography.fernet import InvalidToken
from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponse, HttpResponseNotAllowed, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html

from accounts import policy
from audit import services as audit
from audit.choices import AuditAction
from compliance import requests, requests_rectification, subject_export
from compliance.models import AccessPackage, ConsentRecord, ErasedSubject, SubjectRequest
from compliance.requests_choices import Channel, ConsentPurpose, RequestKind, RequestStatus
from datasets import blind_index, masking
from portal.security_context import scoped
from portal.task_queue import QueueUnavailable, ensure_available

Right = policy.PrivacyRight


def _may(request, right) -> bool:
    return policy.may_privacy(request.user, right)


# --- Forms ----------------------------------------------------------------------------------


class IntakeForm(forms.Form):
    kind = forms.ChoiceField(label="Request type", choices=RequestKind.choices)
    channel = forms.ChoiceField(choices=Channel.choices, initial=Channel.EMAIL)
    email = forms.EmailField(label="Subject's email", required=False, max_length=254)
    phone = forms.CharField(label="Subject's phone", required=False, max_length=32)
    details = forms.CharField(label="What the subject asks", required=False, max_length=2000, widget=forms.Textarea)
    purpose = forms.ChoiceField(
        label="Purpose objected to", choices=[("", "---"), *ConsentPurpose.choices], required=False
    )


class ReasonForm(forms.Form):
    reason = forms.CharField(required=False, max_length=500)
    months = forms.TypedChoiceField(choices=[(1, "1"), (2, "2")], coerce=int, required=False, empty_value=2)


class RectifyForm(forms.Form):
    name = forms.CharField(label="Corrected name", required=False, max_length=200)
    email = forms.CharField(label="Corrected email", required=False, max_length=254)
    phone = forms.CharField(label="Corrected phone", required=False, max_length=32)
    reason = forms.CharField(max_length=500, widget=forms.Textarea(attrs={"rows": 2}))
    customers = forms.MultipleChoiceField(label="Rows to correct", required=False)


# --- Subject requests -----------------------------------------------------------------------


@admin.register(SubjectRequest)
class SubjectRequestAdmin(admin.ModelAdmin):
    list_display = ["id", "kind", "status", "channel", "subject", "received_at", "deadline", "progress_bar"]
    list_filter = ["status", "kind", "channel"]
    ordering = ["due_at", "id"]
    list_per_page = 50
    search_fields = ["email_index"]  # served through the blind indexes, see get_search_results
    search_help_text = "Exact email address or phone number of the subject"
    show_full_result_count = False
    actions = ["verify_selected", "approve_selected", "run_selected", "retry_selected"]
    readonly_fields = [
        "kind",
        "status",
        "channel",
        "subject",
        "request_details",
        "purpose",
        "received_at",
        "due_at",
        "extended_months",
        "extension_reason",
        "created_by",
        "verified_by",
        "verified_at",
        "approved_by",
        "approved_at",
        "run_by",
        "run_started_at",
        "completed_at",
        "rejection_reason",
        "error_step",
        "error_detail",
        "attempts",
        "result",
        "subject_hash",
    ]
    fields = readonly_fields

    # -- rights from the policy --
    def has_module_permission(self, request):
        return _may(request, Right.READ)

    def has_view_permission(self, request, obj=None):
        return _may(request, Right.READ)

    def has_add_permission(self, request):
        return _may(request, Right.INTAKE)

    def has_change_permission(self, request, obj=None):
        return False  # the record changes only through the workflow's actions

    def has_delete_permission(self, request, obj=None):
        return False  # a request is evidence; an erasure scrubs it instead

    def has_work_permission(self, request):
        return _may(request, Right.WORK)

    def get_queryset(self, request):
        return SubjectRequest.objects.visible_to(request.user).select_related(
            "created_by", "verified_by", "approved_by", "run_by"
        )

    def get_search_results(self, request, queryset, search_term):
        term = search_term.strip()
        if not term:
            return queryset, False
        indexes = [*blind_index.email_candidates(term), *blind_index.phone_candidates(term)]
        return queryset.filter(email_index__in=indexes) | queryset.filter(phone_index__in=indexes), False

    # -- columns --
    @admin.display(description="Subject")
    def subject(self, obj):
        if obj.subject_hash:
            return "erased"
        parts = [masking.mask_email(obj.subject_email) if obj.subject_email else ""]
        parts.append(masking.mask_phone(obj.subject_phone) if obj.subject_phone else "")
        return " / ".join(p for p in parts if p)

    @admin.display(description="Details")
    def request_details(self, obj):
        return obj.details if obj.details else "-"

    @admin.display(description="Due", ordering="due_at")
    def deadline(self, obj):
        if not obj.is_open:
            return obj.due_at.date().isoformat()
        left = obj.due_at - timezone.now()
        if left.total_seconds() < 0:
            return format_html('<strong class="errornote">{} (overdue)</strong>', obj.due_at.date().isoformat())
        if left.days < self._due_soon_days():
            return format_html("<strong>{} ({} days left)</strong>", obj.due_at.date().isoformat(), left.days)
        return obj.due_at.date().isoformat()

    @staticmethod
    def _due_soon_days() -> int:
        from django.conf import settings

        return settings.GDPR_DUE_SOON_DAYS

    @admin.display(description="Progress")
    def progress_bar(self, obj):
        figures = requests.progress(obj)
        return format_html(
            '<progress max="100" value="{}"></progress> {}% ({} / {} rows)',
            figures["percent"],
            figures["percent"],
            figures["rows_done"],
            figures["rows_total"],
        )

    # -- bulk actions over the queue --
    def _bulk(self, request, queryset, action: str) -> None:
        if action in ("run", "retry"):
            try:
                ensure_available()
            except QueueUnavailable as exc:
                self.message_user(request, str(exc.detail), messages.ERROR)
                return
        done, refused = 0, []
        for pk in queryset.order_by("due_at").values_list("pk", flat=True):
            try:
                requests.transition(pk, request.user, action)
                done += 1
            except requests.RequestError as exc:
                refused.append(f"#{pk}: {exc.message}")
        if done:
            self.message_user(request, f"{done} request(s): {action} done.", messages.SUCCESS)
        for line in refused:
            self.message_user(request, line, messages.ERROR)

    @admin.action(description="Verify identity of the selected requests", permissions=["work"])
    def verify_selected(self, request, queryset):
        self._bulk(request, queryset, "verify")

    @admin.action(description="Approve the selected requests", permissions=["work"])
    def approve_selected(self, request, queryset):
        self._bulk(request, queryset, "approve")

    @admin.action(description="Run the selected requests", permissions=["work"])
    def run_selected(self, request, queryset):
        self._bulk(request, queryset, "run")

    @admin.action(description="Retry the selected requests (error)", permissions=["work"])
    def retry_selected(self, request, queryset):
        self._bulk(request, queryset, "retry")

    # -- pages --
    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [
            path("<int:object_id>/act/<str:action>/", wrap(self.act_view), name="compliance_subjectrequest_act"),
            path("<int:object_id>/rectify/", wrap(self.rectify_view), name="compliance_subjectrequest_rectify"),
            path(
                "<int:object_id>/packages/<uuid:package_id>/download/",
                wrap(self.download_view),
                name="compliance_subjectrequest_download",
            ),
            *super().get_urls(),
        ]

    def _object(self, request, object_id) -> SubjectRequest:
        obj = self.get_queryset(request).filter(pk=object_id).first()
        if obj is None:
            raise Http404
        return obj

    def _back(self, object_id):
        return HttpResponseRedirect(reverse("admin:compliance_subjectrequest_change", args=[object_id]))

    def change_view(self, request, object_id, form_url="", extra_context=None):
        obj = self._object(request, object_id)
        context = {
            "progress": requests.progress(obj),
            "refresh": obj.status == RequestStatus.IN_PROGRESS,
            "may_work": _may(request, Right.WORK),
            "actions_allowed": requests.allowed_actions(obj) if _may(request, Right.WORK) else [],
            "packages": self._packages(request, obj),
            "may_redact": _may(request, Right.WORK) and obj.status == RequestStatus.AWAITING_REVIEW,
            **(extra_context or {}),
        }
        return super().change_view(request, object_id, form_url, context)

    def _packages(self, request, obj) -> list[dict]:
        rows = []
        for package in obj.packages.order_by("-created_at"):
            link = ""
            if _may(request, Right.DOWNLOAD) and not obj.subject_hash:
                token = subject_export.download_token(package, request.user)
                link = reverse("admin:compliance_subjectrequest_download", args=[obj.pk, package.pk])
                link = f"{link}?token={token}"
            rows.append({"package": package, "link": link})
        return rows

    def add_view(self, request, form_url="", extra_context=None):
        if not self.has_add_permission(request):
            raise PermissionDenied
        form = IntakeForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            data = requests.Intake(
                kind=form.cleaned_data["kind"],
                channel=form.cleaned_data["channel"],
                email=form.cleaned_data["email"],
                phone=form.cleaned_data["phone"],
                details=form.cleaned_data["details"],
                purpose=form.cleaned_data["purpose"],
            )
            try:
                created = requests.intake(request.user, data)
            except requests.RequestError as exc:
                form.add_error(exc.field if exc.field in form.fields else None, exc.message)
            else:
                self.message_user(request, f"Request #{created.pk} received; due {created.due_at:%Y-%m-%d}.")
                return self._back(created.pk)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": "New subject request",
            "form": form,
        }
        return TemplateResponse(request, "admin/compliance/subjectrequest/intake_form.html", context)

    def act_view(self, request, object_id, action):
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if not _may(request, Right.WORK):
            raise PermissionDenied
        obj = self._object(request, object_id)
        form = ReasonForm(request.POST)
        form.is_valid()
        reason = form.cleaned_data.get("reason") or ""
        try:
            if action == "extend":
                months = form.cleaned_data.get("months") or requests.MAX_EXTENSION_MONTHS
                requests.extend(obj.pk, request.user, reason=reason, months=months)
            elif action == "redact":
                package = subject_export.latest_package(obj)
                if package is None or obj.status != RequestStatus.AWAITING_REVIEW:
                    raise requests.RequestError("Only a package awaiting review can be redacted.", "status")
                subject_export.rebuild_redacted(package, request.user)
            elif action in requests.TRANSITIONS:
                if action in ("run", "retry"):
                    ensure_available()
                requests.transition(obj.pk, request.user, action, reason=reason)
            else:
                raise Http404
        except requests.RequestError as exc:
            self.message_user(request, exc.message, messages.ERROR)
        except QueueUnavailable as exc:
            self.message_user(request, str(exc.detail), messages.ERROR)
        else:
            self.message_user(request, f"Request #{obj.pk}: {action} done.", messages.SUCCESS)
        return self._back(obj.pk)

    def rectify_view(self, request, object_id):
        if not _may(request, Right.WORK):
            raise PermissionDenied
        obj = self._object(request, object_id)
        if obj.kind != RequestKind.RECTIFICATION:
            raise Http404
        rows = requests_rectification.subject_rows(obj, request.user)
        form = RectifyForm(request.POST or None)
        form.fields["customers"].choices = [(str(c.pk), f"#{c.pk} ({c.team.name})") for c in rows]
        if request.method == "POST" and form.is_valid():
            try:
                requests_rectification.rectify(
                    obj.pk,
                    request.user,
                    changes={k: form.cleaned_data[k] for k in requests_rectification.RECTIFIABLE_FIELDS},
                    reason=form.cleaned_data["reason"],
                    customer_ids=form.cleaned_data["customers"] or None,
                )
            except requests.RequestError as exc:
                target = exc.field if exc.field in form.fields else None
                form.add_error(target, exc.message)
            else:
                self.message_user(request, f"Request #{obj.pk}: the correction was applied.", messages.SUCCESS)
                return self._back(obj.pk)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "original": obj,
            "title": f"Rectify the subject of request #{obj.pk}",
            "form": form,
            "rows": rows,
        }
        return TemplateResponse(request, "admin/compliance/subjectrequest/rectify_form.html", context)

    def download_view(self, request, object_id, package_id):
        obj = self._object(request, object_id)
        package = AccessPackage.objects.filter(pk=package_id, request=obj).first()
        token = request.GET.get("token", "")
        if package is None or obj.subject_hash or not subject_export.check_download_token(package, request.user, token):
            raise Http404
        try:
            content = subject_export.read_package(package)
        except (OSError, InvalidToken):
            raise Http404 from None  # the file is gone or is not one this portal wrote
        if hashlib.sha256(content).hexdigest() != package.sha256:
            raise Http404  # not the file that was reviewed
        subject_export.record_download(package, request.user)
        response = HttpResponse(content, content_type="application/zip")
        response["Content-Disposition"] = f'attachment; filename="subject-request-{obj.pk}.zip"'
        return response


# --- Consent history and the erased-subject register ----------------------------------------


class _SystemScopeReadAdmin(admin.ModelAdmin):
    """A read-only admin over rows about customers of every team, for the DPO: pages are
    rendered under the system scope (entered explicitly) and each page read is recorded."""

    right = Right.WORK
    audit_resource = ""

    def has_module_permission(self, request):
        return _may(request, self.right)

    def has_view_permission(self, request, obj=None):
        return _may(request, self.right)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def _rendered(self, request, view, *args):
        with scoped(system=True):
            response = view(request, *args)
            if hasattr(response, "render"):
                response.render()
        if response.status_code == 200:
            audit.record(
                AuditAction.VIEW,
                actor=request.user,
                resource=self.audit_resource,
                object_ids=[a for a in args[:1] if isinstance(a, str)],
                extra={"scope": "system"},
            )
        return response

    def changelist_view(self, request, extra_context=None):
        return self._rendered(request, super().changelist_view, extra_context)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        return self._rendered(request, super().change_view, object_id, form_url, extra_context)


@admin.register(ConsentRecord)
class ConsentRecordAdmin(_SystemScopeReadAdmin):
    audit_resource = "consent_record"
    list_display = ["id", "customer_id", "purpose", "lawful_basis", "granted_at", "withdrawn_at", "current", "source"]
    list_filter = ["purpose", "current", "lawful_basis", "source"]
    search_fields = ["=customer__id"]
    search_help_text = "Customer id"
    fields = [
        "customer_id",
        "purpose",
        "lawful_basis",
        "granted_at",
        "withdrawn_at",
        "source",
        "notice_version",
        "current",
        "recorded_by",
        "request",
        "created_at",
    ]
    readonly_fields = fields
    show_full_result_count = False


@admin.register(ErasedSubject)
class ErasedSubjectAdmin(_SystemScopeReadAdmin):
    right = Right.READ
    audit_resource = "erased_subject"
    list_display = ["subject_hash", "erased_at", "request", "reapplied_at", "reapplied_count"]
    fields = ["subject_hash", "erased_at", "request", "counts", "reapplied_at", "reapplied_count"]
    readonly_fields = fields


from compliance import admin_governance  # noqa: E402, F401  (retention, checklist, vendors, record)
