"""Governance in the admin: retention policies (preview, enable, legal hold, run now), runs and
their proofs, the order archive, vendors and assessments, attestations, scans, backup
verifications, the live monthly checklist with snapshots and the evidence pack, and the record
of processing (Art. 30) with its CSV.

Who may do what comes from ``accounts.policy`` (``Governance`` capabilities,
``ARCHIVE_READER_ROLES``), never from Django model permissions.  Evidence (runs, proofs,
assessments, attestations, snapshots, verifications) is never edited or deleted here.
"""

import hashlib
import json
from datetime import timedelta

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import FileResponse, Http404, HttpResponse, HttpResponseNotAllowed, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from accounts import policy
from accounts.policy import Governance
from compliance import checklist, evidence, record_of_processing, retention
from compliance.governance_choices import ChecklistItem, ItemStatus, SnapshotTrigger
from compliance.governance_models import (
    ArchivedOrder,
    Attestation,
    BackupVerification,
    ChecklistSnapshot,
    MonthlyChecklist,
    RecordOfProcessing,
    RetentionPolicy,
    RetentionProof,
    RetentionRun,
    Vendor,
    VendorAssessment,
    VulnerabilityScan,
)
from portal.task_queue import QueueUnavailable, enqueue, ensure_available


def _may(request, capability) -> bool:
    return policy.may_govern(request.user, capability)


class GovernanceAdmin(admin.ModelAdmin):
    """Rights from the policy's governance capabilities; evidence is read-only by default."""

    view_capability = Governance.VIEW
    add_capability: Governance | None = None
    change_capability: Governance | None = None

    def has_module_permission(self, request):
        return _may(request, self.view_capability)

    def has_view_permission(self, request, obj=None):
        return _may(request, self.view_capability)

    def has_add_permission(self, request):
        return self.add_capability is not None and _may(request, self.add_capability)

    def has_change_permission(self, request, obj=None):
        return self.change_capability is not None and _may(request, self.change_capability)

    def has_delete_permission(self, request, obj=None):
        return False

    def _require(self, request, capability):
        if not _may(request, capability):
            raise PermissionDenied


def _post_only(request):
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    return None


# --- Retention ---------------------------------------------------------------------------------


@admin.register(RetentionPolicy)
class RetentionPolicyAdmin(GovernanceAdmin):
    add_capability = Governance.RETENTION
    change_capability = Governance.RETENTION
    list_display = ["dataset", "action", "max_age_days", "age_field", "enabled", "legal_hold", "preview", "last_run"]
    fields = [
        "dataset",
        "age_field",
        "max_age_days",
        "action",
        "basis",
        "legal_hold",
        "legal_hold_reason",
        "enabled",
        "legal_hold_since",
        "preview",
        "last_run",
    ]
    readonly_fields = ["enabled", "legal_hold_since", "preview", "last_run"]
    change_form_template = "admin/compliance/retentionpolicy/change_form.html"

    @admin.display(description="last preview")
    def preview(self, obj):
        if obj.previewed_at is None:
            return "never"
        stale = " (rule changed since)" if obj.preview_rule != obj.rule() else ""
        oldest = (
            f", oldest #{obj.preview_oldest_id} of {obj.preview_oldest_at:%Y-%m-%d}" if obj.preview_oldest_id else ""
        )
        return f"{obj.preview_rows} row(s){oldest}, {obj.previewed_at:%Y-%m-%d %H:%M}{stale}"

    @admin.display(description="last run")
    def last_run(self, obj):
        run = obj.runs.order_by("-started_at", "-id").first() if obj.pk else None
        if run is None:
            return "never"
        url = reverse("admin:compliance_retentionrun_change", args=[run.pk])
        return format_html('<a href="{}">#{} {}</a> {}', url, run.pk, run.status, f"{run.started_at:%Y-%m-%d %H:%M}")

    def save_model(self, request, obj, form, change):
        if retention.save_policy(obj, set(form.changed_data)):
            self.message_user(
                request, "The rule changed: the policy is disabled until it is previewed again.", messages.WARNING
            )

    def get_urls(self):
        own = [
            path(
                "<int:pk>/preview/", self.admin_site.admin_view(self.preview_view), name="compliance_retention_preview"
            ),
            path("<int:pk>/enable/", self.admin_site.admin_view(self.enable_view), name="compliance_retention_enable"),
            path(
                "<int:pk>/disable/", self.admin_site.admin_view(self.disable_view), name="compliance_retention_disable"
            ),
            path("<int:pk>/run/", self.admin_site.admin_view(self.run_view), name="compliance_retention_run"),
        ]
        return own + super().get_urls()

    def _policy(self, request, pk) -> RetentionPolicy:
        self._require(request, Governance.RETENTION)
        found = RetentionPolicy.objects.filter(pk=pk).first()
        if found is None:
            raise Http404
        return found

    def _back(self, pk):
        return HttpResponseRedirect(reverse("admin:compliance_retentionpolicy_change", args=[pk]))

    def preview_view(self, request, pk):
        rule = self._policy(request, pk)
        result = retention.preview(rule, actor=request.user)
        context = {
            **self.admin_site.each_context(request),
            "title": f"Preview: {rule}",
            "opts": self.model._meta,
            "original": rule,
            "preview": result,
            "valid_hours": settings.RETENTION_PREVIEW_VALID_HOURS,
        }
        return TemplateResponse(request, "admin/compliance/retentionpolicy/preview.html", context)

    def enable_view(self, request, pk):
        refused = _post_only(request)
        if refused:
            return refused
        rule = self._policy(request, pk)
        try:
            retention.enable(rule, actor=request.user)
        except retention.RetentionError as exc:
            self.message_user(request, str(exc), messages.ERROR)
        else:
            self.message_user(request, f"Enabled: {rule}. It runs nightly.")
        return self._back(pk)

    def disable_view(self, request, pk):
        refused = _post_only(request)
        if refused:
            return refused
        rule = self._policy(request, pk)
        retention.disable(rule, actor=request.user)
        self.message_user(request, f"Disabled: {rule}.")
        return self._back(pk)

    def run_view(self, request, pk):
        refused = _post_only(request)
        if refused:
            return refused
        rule = self._policy(request, pk)
        if not rule.enabled or rule.legal_hold:
            self.message_user(request, "Only an enabled policy without a legal hold runs.", messages.ERROR)
            return self._back(pk)
        from compliance.governance_tasks import apply_retention

        try:
            ensure_available()
        except QueueUnavailable as exc:
            self.message_user(request, str(exc.detail), messages.ERROR)
            return self._back(pk)
        enqueue(apply_retention, policy_id=rule.pk, acting_user_id=request.user.pk)
        self.message_user(request, "Queued: the run's progress and proof appear under retention runs.")
        return self._back(pk)


@admin.register(RetentionRun)
class RetentionRunAdmin(GovernanceAdmin):
    list_display = [
        "id",
        "dataset",
        "status",
        "trigger",
        "cutoff",
        "rows_deleted",
        "rows_archived",
        "rows_anonymised",
        "batches",
        "resumed",
        "longest_batch_ms",
        "started_at",
        "finished_at",
    ]
    list_filter = ["status", "trigger"]
    fields = [
        *list_display,
        "rule",
        "requested_by",
        "largest_batch_rows",
        "passes",
        "cursor_block",
        "window_blocks",
        "digest",
        "heartbeat_at",
        "error",
        "proof_link",
    ]
    readonly_fields = fields

    @admin.display(description="dataset")
    def dataset(self, obj):
        return obj.rule.get("dataset", "")

    @admin.display(description="proof of deletion")
    def proof_link(self, obj):
        proof = RetentionProof.objects.filter(run=obj).first()
        if proof is None:
            return "none yet (the run is not finished)"
        url = reverse("admin:compliance_retentionproof_change", args=[proof.pk])
        return format_html('<a href="{}">{}</a>', url, proof.sha256)


def proof_state(proof: RetentionProof) -> str:
    """Whether a proof still matches its hash and its audit event (for the admin and tests)."""
    from audit.models import AuditEvent

    document_hash = hashlib.sha256(retention._canonical(proof.document)).hexdigest()
    if document_hash != proof.sha256:
        return "ALTERED: the document no longer matches its SHA-256"
    if proof.audit_event_id is None:
        return "intact (no audit event linked)"
    event = AuditEvent.objects.filter(pk=proof.audit_event_id).first()
    if event is None or event.hash != proof.audit_event_hash:
        return "BROKEN: the linked audit event is missing or different"
    if (event.extra or {}).get("proof_sha256") != proof.sha256:
        return "BROKEN: the audit event vouches for another proof"
    return f"intact: matches its SHA-256 and audit event #{event.pk}"


@admin.register(RetentionProof)
class RetentionProofAdmin(GovernanceAdmin):
    list_display = ["id", "run", "created_at", "sha256", "audit_event_id"]
    fields = ["run", "created_at", "state", "sha256", "audit_event_id", "audit_event_hash", "document_json"]
    readonly_fields = fields

    @admin.display(description="verification")
    def state(self, obj):
        return proof_state(obj)

    @admin.display(description="document")
    def document_json(self, obj):
        return format_html("<pre>{}</pre>", json.dumps(obj.document, indent=2, sort_keys=True))


@admin.register(ArchivedOrder)
class ArchivedOrderAdmin(GovernanceAdmin):
    """Orders in legal retention: read by the archive readers, under row-level security."""

    list_display = ["id", "customer_id", "team_id", "amount", "currency", "status", "created_at", "archived_at"]
    list_filter = ["currency", "status"]
    fields = [*list_display, "run_id"]
    readonly_fields = fields
    show_full_result_count = False

    def _reader(self, request):
        return policy.may_read_archive(request.user)

    def has_module_permission(self, request):
        return self._reader(request)

    def has_view_permission(self, request, obj=None):
        return self._reader(request)


# --- Vendors -----------------------------------------------------------------------------------


class AssessmentInline(admin.TabularInline):
    model = VendorAssessment
    fields = ["assessed_on", "assessed_by", "result", "summary", "evidence"]
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_view_permission(self, request, obj=None):
        return _may(request, Governance.VIEW)


@admin.register(Vendor)
class VendorAdmin(GovernanceAdmin):
    add_capability = Governance.VENDORS
    change_capability = Governance.VENDORS
    list_display = ["name", "service", "dpa_signed_on", "baa_signed_on", "last_assessed_on", "active", "status"]
    list_filter = ["active", "handles_health_data", "transfers_outside_eea"]
    search_fields = ["name"]
    readonly_fields = ["last_assessed_on", "status"]
    inlines = [AssessmentInline]

    @admin.display(description="monthly check")
    def status(self, obj):
        problems = obj.problems() if obj.pk else []
        return "ok" if not problems else "; ".join(problems)


class VendorAssessmentForm(forms.ModelForm):
    class Meta:
        model = VendorAssessment
        fields = ["vendor", "assessed_on", "result", "summary", "evidence"]

    def clean_assessed_on(self):
        day = self.cleaned_data["assessed_on"]
        if day > timezone.localdate():
            raise ValidationError("An assessment cannot be dated in the future.")
        return day


@admin.register(VendorAssessment)
class VendorAssessmentAdmin(GovernanceAdmin):
    add_capability = Governance.ATTEST
    form = VendorAssessmentForm
    list_display = ["vendor", "assessed_on", "assessed_by", "result"]
    list_filter = ["result"]
    fields = ["vendor", "assessed_on", "result", "summary", "evidence"]

    def get_readonly_fields(self, request, obj=None):
        return [*self.fields, "assessed_by"] if obj is not None else []

    def save_model(self, request, obj, form, change):
        if change:
            raise PermissionDenied
        obj.assessed_by = request.user
        obj.save()
        latest = obj.vendor.assessments.order_by("-assessed_on").values_list("assessed_on", flat=True).first()
        Vendor.objects.filter(pk=obj.vendor_id).update(last_assessed_on=latest)


# --- Checklist evidence ------------------------------------------------------------------------


class AttestationForm(forms.ModelForm):
    valid_days = forms.IntegerField(min_value=1, required=False, help_text="Default: the item's usual validity")

    class Meta:
        model = Attestation
        fields = ["item", "statement", "evidence"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["item"].choices = [(k, ChecklistItem(k).label) for k in checklist.ATTESTABLE]

    def clean(self):
        data = super().clean()
        item, days = data.get("item"), data.get("valid_days")
        if item in checklist.ATTESTABLE and days and days > checklist.ATTESTABLE[item]:
            self.add_error("valid_days", f"At most {checklist.ATTESTABLE[item]} days for this item.")
        return data


@admin.register(Attestation)
class AttestationAdmin(GovernanceAdmin):
    add_capability = Governance.ATTEST
    list_display = ["item", "attested_by", "attested_at", "valid_until", "evidence"]
    list_filter = ["item"]

    def get_form(self, request, obj=None, change=False, **kwargs):
        if obj is None:
            kwargs["form"] = AttestationForm
        return super().get_form(request, obj, change, **kwargs)

    def get_fields(self, request, obj=None):
        if obj is None:
            return ["item", "statement", "evidence", "valid_days"]
        return ["item", "attested_by", "attested_at", "statement", "evidence", "valid_until"]

    def get_readonly_fields(self, request, obj=None):
        return self.get_fields(request, obj) if obj is not None else []

    def save_model(self, request, obj, form, change):
        if change:
            raise PermissionDenied
        days = form.cleaned_data.get("valid_days") or checklist.ATTESTABLE[obj.item]
        obj.attested_by = request.user
        obj.attested_at = timezone.now()
        obj.valid_until = timezone.localdate() + timedelta(days=days)
        obj.save()


@admin.register(VulnerabilityScan)
class VulnerabilityScanAdmin(GovernanceAdmin):
    list_display = ["ran_at", "tool", "result", "packages", "findings"]
    list_filter = ["result", "tool"]
    fields = [*list_display, "detail"]
    readonly_fields = fields


@admin.register(BackupVerification)
class BackupVerificationAdmin(GovernanceAdmin):
    list_display = ["started_at", "ok", "tables", "rows", "sampled_values", "sample_mismatches", "detail"]
    list_filter = ["ok"]
    fields = [
        *list_display,
        "finished_at",
        "server_version",
        "tool_version",
        "mismatches",
        "dump_bytes",
        "dump_sha256",
        "requested_by",
    ]
    readonly_fields = fields
    change_list_template = "admin/compliance/backupverification/change_list.html"

    def get_urls(self):
        own = [path("run/", self.admin_site.admin_view(self.run_view), name="compliance_verify_backup")]
        return own + super().get_urls()

    def changelist_view(self, request, extra_context=None):
        extra = {**(extra_context or {}), "may_run": _may(request, Governance.ATTEST)}
        return super().changelist_view(request, extra)

    def run_view(self, request):
        refused = _post_only(request)
        if refused:
            return refused
        self._require(request, Governance.ATTEST)
        from compliance.governance_tasks import verify_backup

        try:
            ensure_available()
        except QueueUnavailable as exc:
            self.message_user(request, str(exc.detail), messages.ERROR)
        else:
            enqueue(verify_backup, acting_user_id=request.user.pk)
            self.message_user(request, "Queued: the result appears here when the restore test has finished.")
        return HttpResponseRedirect(reverse("admin:compliance_backupverification_changelist"))


@admin.register(ChecklistSnapshot)
class ChecklistSnapshotAdmin(GovernanceAdmin):
    list_display = ["period", "taken_at", "trigger", "taken_by", "passed", "failed", "attention", "sha256"]
    list_filter = ["trigger"]
    fields = ["period", "taken_at", "trigger", "taken_by", "passed", "failed", "attention", "sha256", "item_table"]
    readonly_fields = fields

    @admin.display(description="items")
    def item_table(self, obj):
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
            ((i["label"], i["status"], i["summary"]) for i in obj.items),
        )
        return format_html("<table>{}</table>", rows) if obj.items else "-"


class EvidencePackForm(forms.Form):
    start = forms.DateField(label="From", widget=forms.DateInput(attrs={"type": "date"}))
    end = forms.DateField(label="To (inclusive)", widget=forms.DateInput(attrs={"type": "date"}))


@admin.register(MonthlyChecklist)
class MonthlyChecklistAdmin(GovernanceAdmin):
    """The live checklist: computed on every view; snapshots and the evidence pack from here."""

    def get_urls(self):
        return [
            path("", self.admin_site.admin_view(self.changelist_view), name="compliance_monthlychecklist_changelist"),
            path("snapshot/", self.admin_site.admin_view(self.snapshot_view), name="compliance_checklist_snapshot"),
            path("evidence-pack/", self.admin_site.admin_view(self.evidence_view), name="compliance_evidence_pack"),
        ]

    def changelist_view(self, request, extra_context=None):
        if not self.has_view_permission(request):
            raise PermissionDenied
        items = checklist.evaluate()
        today = timezone.localdate()
        context = {
            **self.admin_site.each_context(request),
            "title": "Monthly compliance checklist",
            "opts": self.model._meta,
            "items": items,
            "passed": sum(1 for i in items if i.status == ItemStatus.PASS),
            "latest": ChecklistSnapshot.objects.order_by("-taken_at", "-id").first(),
            "may_attest": _may(request, Governance.ATTEST),
            "may_evidence": _may(request, Governance.EVIDENCE),
            "pack_form": EvidencePackForm(initial={"start": today.replace(day=1) - timedelta(days=90), "end": today}),
        }
        return TemplateResponse(request, "admin/compliance/monthlychecklist/checklist.html", context)

    def snapshot_view(self, request):
        refused = _post_only(request)
        if refused:
            return refused
        self._require(request, Governance.ATTEST)
        snapshot = checklist.take_snapshot(trigger=SnapshotTrigger.MANUAL, actor=request.user)
        self.message_user(request, f"Snapshot stored: {snapshot.passed} of {len(snapshot.items)} items pass.")
        return HttpResponseRedirect(reverse("admin:compliance_checklistsnapshot_change", args=[snapshot.pk]))

    def evidence_view(self, request):
        refused = _post_only(request)
        if refused:
            return refused
        self._require(request, Governance.EVIDENCE)
        form = EvidencePackForm(request.POST)
        if not form.is_valid():
            self.message_user(request, "Give a valid date range for the evidence pack.", messages.ERROR)
            return HttpResponseRedirect(reverse("admin:compliance_monthlychecklist_changelist"))
        start, end = form.cleaned_data["start"], form.cleaned_data["end"]
        try:
            handle = evidence.build_to_tempfile(request.user, start, end)
        except evidence.EvidenceError as exc:
            self.message_user(request, str(exc), messages.ERROR)
            return HttpResponseRedirect(reverse("admin:compliance_monthlychecklist_changelist"))
        name = f"evidence-pack-{start.isoformat()}-{end.isoformat()}.zip"
        return FileResponse(handle, as_attachment=True, filename=name, content_type="application/zip")


@admin.register(RecordOfProcessing)
class RecordOfProcessingAdmin(GovernanceAdmin):
    """The record of processing, generated from the models on every view; CSV at ``csv/``."""

    def get_urls(self):
        return [
            path("", self.admin_site.admin_view(self.changelist_view), name="compliance_recordofprocessing_changelist"),
            path("csv/", self.admin_site.admin_view(self.csv_view), name="compliance_record_of_processing_csv"),
        ]

    def changelist_view(self, request, extra_context=None):
        if not self.has_view_permission(request):
            raise PermissionDenied
        rows = record_of_processing.rows()
        context = {
            **self.admin_site.each_context(request),
            "title": "Record of processing activities (GDPR Art. 30)",
            "opts": self.model._meta,
            "rows": [r.as_dict() for r in rows],
            "columns": record_of_processing.COLUMNS,
            "summary": record_of_processing.encryption_summary(rows),
        }
        return TemplateResponse(request, "admin/compliance/recordofprocessing/record.html", context)

    def csv_view(self, request):
        if not self.has_view_permission(request):
            raise PermissionDenied
        response = HttpResponse(record_of_processing.as_csv(), content_type="text/csv; charset=utf-8")
        stamp = timezone.now().strftime("%Y%m%d")
        response["Content-Disposition"] = f'attachment; filename="record-of-processing-{stamp}.csv"'
        return response
