"""The audit viewer: read-only events and change history, alerts, chain checks, investigations.

Who sees what comes from ``accounts.policy`` (Admin: everything; DPO duty: GDPR events).  Every
list, filter and search is an index range: no LIKE, no date hierarchy, no DISTINCT over the
table, and result counts are bounded so that a page never counts a million rows."""

import csv
import io
import json
from datetime import UTC, datetime, time, timedelta

from auditlog.models import LogEntry
from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import Max
from django.http import Http404, HttpResponseBadRequest, HttpResponseNotAllowed, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import path
from django.utils import timezone as dj_timezone
from django.utils.dateparse import parse_date, parse_datetime
from django.utils.functional import cached_property

from accounts import policy
from audit import incidents, selectors
from audit import services as audit
from audit.chain import HASHED_FIELDS
from audit.choices import INCIDENT_STAGE_ORDER, AuditAction, ContainmentAction, IncidentStageName
from audit.models import (
    AuditChainCheck,
    AuditEvent,
    BlockedIP,
    EvidenceSnapshot,
    Incident,
    IncidentStage,
    SecurityAlert,
)
from portal.ids import parse_id

COUNT_CAP = 10_000
EXPORT_BATCH = 2000


class BoundedCountPaginator(Paginator):
    """Counts at most COUNT_CAP + 1 rows: pages past the cap still work, the total reads "10000+"."""

    @cached_property
    def count(self):
        return self.object_list[: COUNT_CAP + 1].count()


def parse_moment(value: str, *, end: bool = False) -> datetime | None:
    """An ISO datetime (UTC if no zone) or a date (its start; with ``end``, the next day's start)."""
    value = (value or "").strip()
    if not value:
        return None
    moment = parse_datetime(value)
    if moment is None:
        day = parse_date(value)
        if day is None:
            raise ValueError(f"not a date or time: {value[:40]!r}")
        moment = datetime.combine(day + timedelta(days=1) if end else day, time.min)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class ExactValueFilter(admin.SimpleListFilter):
    """A filter on one column's exact value: a few common values listed, any value accepted."""

    field = ""
    common: tuple = ()

    def lookups(self, request, model_admin):
        return [(value, value) for value in self.common]

    def queryset(self, request, queryset):
        value = self.value()
        return queryset.filter(**{self.field: value}) if value else queryset


class ResourceFilter(ExactValueFilter):
    title = "resource"
    parameter_name = "resource"
    field = "resource"
    common = ("customer", "session", "api_token", "user", "report", "security_alert", "audit_event")


class ActorFilter(admin.SimpleListFilter):
    title = "actor (exact id or email)"
    parameter_name = "actor"

    def lookups(self, request, model_admin):
        return [(str(request.user.pk), "me")]

    def queryset(self, request, queryset):
        return selectors.by_actor(queryset, self.value()) if self.value() else queryset


class _MomentFilter(admin.SimpleListFilter):
    end = False

    def lookups(self, request, model_admin):
        now = datetime.now(UTC).replace(microsecond=0)
        return [((now - delta).isoformat(), label) for delta, label in self.presets]

    def queryset(self, request, queryset):
        try:
            moment = parse_moment(self.value() or "", end=self.end)
        except ValueError:
            return queryset.none()
        if moment is None:
            return queryset
        return queryset.filter(timestamp__lt=moment) if self.end else queryset.filter(timestamp__gte=moment)


class SinceFilter(_MomentFilter):
    title = "from (ISO date or time)"
    parameter_name = "from"
    presets = [
        (timedelta(hours=1), "last hour"),
        (timedelta(days=1), "last 24 hours"),
        (timedelta(days=7), "last 7 days"),
    ]


class UntilFilter(_MomentFilter):
    title = "until (ISO date or time)"
    parameter_name = "to"
    end = True
    presets = [(timedelta(0), "now"), (timedelta(days=1), "24 hours ago")]


class ReadOnlyAuditAdmin(admin.ModelAdmin):
    """No add, change or delete, whoever asks; reading is the policy's answer."""

    actions = None
    paginator = BoundedCountPaginator
    show_full_result_count = False
    list_per_page = 100

    def may_read(self, request) -> bool:
        return policy.may_read_change_history(request.user)

    def has_module_permission(self, request):
        return self.may_read(request)

    def has_view_permission(self, request, obj=None):
        return self.may_read(request)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAuditAdmin):
    list_display = ["id", "timestamp", "action", "actor_email", "resource", "rows", "success", "ip_address"]
    list_filter = ["action", "success", ResourceFilter, ActorFilter, SinceFilter, UntilFilter]
    search_fields = ["actor_email"]  # exact, see get_search_results
    search_help_text = "Exact actor id or email; or a request id"
    readonly_fields = [f.name for f in AuditEvent._meta.fields]
    change_list_template = "admin/audit/auditevent/change_list.html"

    def may_read(self, request) -> bool:
        return policy.audit_view(request.user) != policy.AuditView.NONE

    def get_queryset(self, request):
        return selectors.visible_events(request.user)

    def get_search_results(self, request, queryset, search_term):
        term = (search_term or "").strip()
        if not term:
            return queryset, False
        if len(term) == 32 and all(c in "0123456789abcdef" for c in term):
            return queryset.filter(request_id=term), False
        return selectors.by_actor(queryset, term), False

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path("investigate/user/", view(self.user_activity_view), name="audit_user_activity"),
            path("investigate/customer/", view(self.customer_view), name="audit_customer_touches"),
            path("export/", view(self.export_view), name="audit_export"),
            *super().get_urls(),
        ]

    def _guard(self, request):
        if not self.may_read(request):
            raise PermissionDenied

    def _render(self, request, title, events, **extra):
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": title,
            "events": events,
            "limit": COUNT_CAP,
            **extra,
        }
        return TemplateResponse(request, "admin/audit/investigation.html", context)

    def user_activity_view(self, request):
        """Everything one user did between two times."""
        self._guard(request)
        actor = request.GET.get("actor", "")
        try:
            start = parse_moment(request.GET.get("from", ""))
            end = parse_moment(request.GET.get("to", ""), end=True)
        except ValueError as exc:
            return HttpResponseBadRequest(str(exc))
        events = list(selectors.user_activity(request.user, actor, start, end)[:COUNT_CAP]) if actor else []
        if actor:
            audit.record(
                AuditAction.SEARCH, actor=request.user, resource="audit_event", rows=len(events), reason="user activity"
            )
        return self._render(request, "Everything one user did", events, form="user", actor=actor, start=start, end=end)

    def customer_view(self, request):
        """Everyone who touched one customer, and the customer's change history."""
        self._guard(request)
        raw = request.GET.get("customer", "").strip()
        customer_id = parse_id(raw)
        if raw and customer_id is None:
            return HttpResponseBadRequest("customer must be an id")
        events = list(selectors.customer_touches(request.user, customer_id)[:COUNT_CAP]) if raw else []
        changes = list(selectors.customer_changes(request.user, customer_id)[:COUNT_CAP]) if raw else []
        if raw:
            audit.record(
                AuditAction.SEARCH,
                actor=request.user,
                resource="audit_event",
                object_ids=[raw],
                rows=len(events),
                reason="customer touches",
            )
        people = sorted({(e.actor_id, e.actor_email) for e in events if e.actor_id is not None})
        return self._render(
            request,
            "Everyone who touched one customer",
            events,
            form="customer",
            customer=raw,
            people=people,
            changes=changes,
        )

    def export_view(self, request):
        """A period as CSV or JSON Lines (for a SIEM), streamed in id order, bounded in size."""
        self._guard(request)
        fmt = request.GET.get("format", "jsonl")
        if fmt not in ("csv", "jsonl"):
            return HttpResponseBadRequest("format is csv or jsonl")
        try:
            start = parse_moment(request.GET.get("from", ""))
            end = parse_moment(request.GET.get("to", ""), end=True)
        except ValueError as exc:
            return HttpResponseBadRequest(str(exc))
        if start is None or end is None:
            return HttpResponseBadRequest("from and to are required")
        events = selectors.between(selectors.visible_events(request.user), start, end)
        if request.GET.get("actor"):
            events = selectors.by_actor(events, request.GET["actor"])
        # Fixed before streaming: the rows counted (and audited) are the rows sent.
        rows = events.count()
        limit = settings.AUDIT_EXPORT_MAX_ROWS
        if rows > limit:
            return HttpResponseBadRequest(f"{rows} events in that period; export at most {limit} at a time")
        last_id = events.aggregate(last=Max("id"))["last"] or 0
        audit.record(
            AuditAction.EXPORT_DATA,
            actor=request.user,
            resource="audit_event",
            rows=rows,
            extra={"format": fmt, "from": start.isoformat(), "to": end.isoformat()},
        )
        stream = _stream(events.filter(id__lte=last_id), fmt)
        content_type = "text/csv" if fmt == "csv" else "application/x-ndjson"
        response = StreamingHttpResponse(stream, content_type=f"{content_type}; charset=utf-8")
        stamp = f"{start:%Y%m%dT%H%M%S}-{end:%Y%m%dT%H%M%S}"
        response["Content-Disposition"] = f'attachment; filename="audit-{stamp}.{fmt}"'
        return response


# Everything the hash covers, with the id and the hash itself: an export can be re-verified.
EXPORT_COLUMNS = ["id", *HASHED_FIELDS, "hash"]


def _batches(events):
    """Keyset pages in id order: each a short query of its own (the response outlives the
    request's transaction, so no cursor is held open across it)."""
    last = 0
    while True:
        batch = list(events.filter(id__gt=last).order_by("id")[:EXPORT_BATCH])
        if not batch:
            return
        yield batch
        last = batch[-1].pk


def _csv_line(values) -> str:
    buffer = io.StringIO()
    csv.writer(buffer).writerow(values)
    return buffer.getvalue()


def _csv_value(value):
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True)
    if isinstance(value, datetime):
        return value.isoformat()
    text = "" if value is None else str(value)
    # A cell starting with = + - @ is a formula to a spreadsheet: keep it text.
    return "'" + text if text[:1] in ("=", "+", "-", "@") else text


def _stream(events, fmt):
    if fmt == "csv":
        yield _csv_line(EXPORT_COLUMNS)
    for batch in _batches(events):
        for event in batch:
            if fmt == "csv":
                yield _csv_line([_csv_value(getattr(event, column)) for column in EXPORT_COLUMNS])
            else:
                yield json.dumps(event.as_export(), sort_keys=True, default=str) + "\n"


# --- Change history (django-auditlog): read-only for the change-history readers -------------
if admin.site.is_registered(LogEntry):
    admin.site.unregister(LogEntry)


@admin.register(LogEntry)
class ChangeHistoryAdmin(ReadOnlyAuditAdmin):
    list_display = ["id", "timestamp", "content_type", "object_pk", "action", "actor_email", "remote_addr"]
    list_filter = ["action", ActorFilter, SinceFilter, UntilFilter]
    list_select_related = ["content_type"]
    search_fields = ["object_pk"]  # exact, see get_search_results
    search_help_text = "Exact object id"
    readonly_fields = [
        "timestamp",
        "content_type",
        "object_pk",
        "object_repr",
        "action",
        "changes",
        "actor",
        "actor_email",
        "remote_addr",
        "cid",
        "additional_data",
    ]
    fields = readonly_fields

    def get_search_results(self, request, queryset, search_term):
        term = (search_term or "").strip()
        return (queryset.filter(object_pk=term), False) if term else (queryset, False)


# ActorFilter on LogEntry: the actor column there is a foreign key plus the email at the time.
class _LogEntryActorFilter(ActorFilter):
    def queryset(self, request, queryset):
        term = (self.value() or "").strip()
        if not term:
            return queryset
        actor_id = parse_id(term)
        if actor_id is not None:
            return queryset.filter(actor_id=actor_id)
        return queryset.filter(actor_email=term.lower())


ChangeHistoryAdmin.list_filter = ["action", _LogEntryActorFilter, SinceFilter, UntilFilter]


@admin.register(SecurityAlert)
class SecurityAlertAdmin(admin.ModelAdmin):
    """Alerts are raised by the rules; people acknowledge, assign and resolve them."""

    list_display = ["id", "rule", "severity", "subject", "count", "status", "assignee", "first_seen", "last_seen"]
    list_filter = ["status", "severity", "rule"]
    list_select_related = ["assignee"]
    fields = ["rule", "severity", "subject", "count", "first_seen", "last_seen", "detail", "status", "assignee"]
    readonly_fields = ["rule", "severity", "subject", "count", "first_seen", "last_seen", "detail"]
    actions = None

    def has_module_permission(self, request):
        return policy.may_manage_alerts(request.user)

    def has_view_permission(self, request, obj=None):
        return policy.may_manage_alerts(request.user)

    def has_change_permission(self, request, obj=None):
        return policy.may_manage_alerts(request.user)

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "assignee":
            from accounts.models import User

            kwargs["queryset"] = User.objects.filter(is_active=True, is_staff=True)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)


@admin.register(AuditChainCheck)
class AuditChainCheckAdmin(ReadOnlyAuditAdmin):
    list_display = ["id", "checked_at", "ok", "events", "head_id", "first_bad_id", "alerts_open", "alerts_raised_24h"]
    list_filter = ["ok"]
    readonly_fields = [f.name for f in AuditChainCheck._meta.fields]


# --- Incident response -----------------------------------------------------------------------


class IncidentForm(forms.ModelForm):
    stage_notes = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="Notes for the stage entered now (when the stage changes, or on creation)",
    )

    class Meta:
        model = Incident
        fields = [
            "title",
            "summary",
            "owner",
            "alerts",
            "stage",
            "is_breach",
            "breach_detected_at",
            "data_categories",
            "affected_subjects",
            "authority_notified_at",
            "subjects_notified_at",
        ]

    def clean_stage(self):
        stage = self.cleaned_data.get("stage")
        current = self.instance.stage if self.instance.pk else IncidentStageName.DETECT
        if not self.instance.pk and stage != IncidentStageName.DETECT:
            raise forms.ValidationError("a new incident starts in the detect stage")
        if INCIDENT_STAGE_ORDER.index(stage) < INCIDENT_STAGE_ORDER.index(current):
            raise forms.ValidationError("an incident moves forward only")
        return stage


class IncidentStageInline(admin.TabularInline):
    model = IncidentStage
    extra = 0
    fields = ["stage", "at", "by", "notes"]
    readonly_fields = ["stage", "at", "by"]
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False

    def has_view_permission(self, request, obj=None):
        return policy.may_see_incidents(request.user)

    def has_change_permission(self, request, obj=None):
        return policy.may_incident(request.user, policy.IncidentRight.MANAGE)

    def has_delete_permission(self, request, obj=None):
        return False


class EvidenceSnapshotInline(admin.TabularInline):
    model = EvidenceSnapshot
    extra = 0
    fields = ["created_at", "actor_id", "period_start", "period_end", "events", "sha256"]
    readonly_fields = fields
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False

    def has_view_permission(self, request, obj=None):
        return policy.may_see_incidents(request.user)

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Incident)
class IncidentAdmin(admin.ModelAdmin):
    """Incidents through the five stages, the breach clock, and the containment buttons.

    Admin role: everything; DPO duty: the breach fields (``accounts.policy.INCIDENT_RULES``)."""

    form = IncidentForm
    list_display = ["id", "title", "stage", "owner", "is_breach", "deadline", "authority_notified_at", "opened_at"]
    list_filter = ["stage", "is_breach"]
    list_select_related = ["owner"]
    raw_id_fields = ["alerts"]
    inlines = [IncidentStageInline, EvidenceSnapshotInline]
    actions = None
    change_form_template = "admin/audit/incident/change_form.html"
    fieldsets = [
        (None, {"fields": ["title", "summary", "owner", "alerts", "opened_at"]}),
        ("Stage", {"fields": ["stage", "stage_notes"]}),
        (
            "Breach (GDPR Art. 33/34)",
            {
                "fields": [
                    "is_breach",
                    "breach_detected_at",
                    "deadline",
                    "data_categories",
                    "affected_subjects",
                    "authority_notified_at",
                    "subjects_notified_at",
                ]
            },
        ),
    ]
    MANAGE_FIELDS = ["title", "summary", "owner", "alerts", "stage", "stage_notes"]
    BREACH_FIELDS = [
        "is_breach",
        "breach_detected_at",
        "data_categories",
        "affected_subjects",
        "authority_notified_at",
        "subjects_notified_at",
    ]

    def _may(self, request, right) -> bool:
        cache = request.__dict__.setdefault("_portal_incident_rights", {})
        if right not in cache:
            cache[right] = policy.may_incident(request.user, right)
        return cache[right]

    def has_module_permission(self, request):
        return policy.may_see_incidents(request.user)

    def has_view_permission(self, request, obj=None):
        return policy.may_see_incidents(request.user)

    def has_change_permission(self, request, obj=None):
        return policy.may_see_incidents(request.user)

    def has_add_permission(self, request):
        return self._may(request, policy.IncidentRight.MANAGE)

    def has_delete_permission(self, request, obj=None):
        return False

    def get_readonly_fields(self, request, obj=None):
        readonly = ["opened_at", "deadline"]
        if not self._may(request, policy.IncidentRight.MANAGE):
            readonly += [f for f in self.MANAGE_FIELDS if f != "stage_notes"]
        if not self._may(request, policy.IncidentRight.BREACH):
            readonly += self.BREACH_FIELDS
        return readonly

    def get_fieldsets(self, request, obj=None):
        if self._may(request, policy.IncidentRight.MANAGE):
            return self.fieldsets
        return [(name, {"fields": [f for f in opts["fields"] if f != "stage_notes"]}) for name, opts in self.fieldsets]

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "owner":
            from accounts.models import User

            kwargs["queryset"] = User.objects.filter(is_active=True, is_staff=True)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    @admin.display(description="notify the authority by")
    def deadline(self, obj):
        deadline = obj.breach_deadline if obj else None
        if deadline is None:
            return "-"
        if obj.authority_notified_at:
            return f"{deadline:%Y-%m-%d %H:%M} UTC (notified {obj.authority_notified_at:%Y-%m-%d %H:%M})"
        left = deadline - dj_timezone.now()
        hours = int(left.total_seconds() // 3600)
        state = f"{hours} h left" if hours >= 0 else f"OVERDUE by {-hours} h"
        return f"{deadline:%Y-%m-%d %H:%M} UTC ({state})"

    def save_model(self, request, obj, form, change):
        notes = form.cleaned_data.get("stage_notes", "")
        if not change:
            obj.save()
            incidents.start_incident(obj, actor=request.user, notes=notes)
            return
        before = Incident.objects.filter(pk=obj.pk).values(*incidents.BREACH_FIELDS, "stage").first() or {}
        target = obj.stage
        obj.stage = before.get("stage", target)
        obj.save()
        if target != obj.stage:
            incidents.move_to_stage(obj, target, actor=request.user, notes=notes)
        incidents.breach_fields_changed(obj, before, actor=request.user)

    # Containment: POST-only buttons on the change page.
    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path("<int:object_id>/contain/<str:action>/", view(self.contain_view), name="audit_incident_contain"),
            *super().get_urls(),
        ]

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra_context = dict(extra_context or {})
        incident_id = parse_id(object_id)
        incident = Incident.objects.filter(pk=incident_id).first() if incident_id is not None else None
        if incident is not None and self._may(request, policy.IncidentRight.MANAGE):
            from accounts.models import User

            actor_ids, ips = incidents.alert_subjects(incident)
            extra_context["containment"] = {
                "users": User.objects.filter(pk__in=actor_ids).order_by("pk"),
                "ips": ips,
                "blocked": set(BlockedIP.objects.filter(ip_address__in=ips).values_list("ip_address", flat=True)),
            }
        return super().change_view(request, object_id, form_url, extra_context)

    def contain_view(self, request, object_id, action):
        from accounts.models import User

        if not self._may(request, policy.IncidentRight.MANAGE):
            raise PermissionDenied
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        incident = get_object_or_404(Incident, pk=object_id)
        back = redirect("admin:audit_incident_change", incident.pk)
        try:
            if action in (ContainmentAction.DISABLE_ACCOUNT, ContainmentAction.REVOKE_SESSIONS):
                user_id = parse_id(request.POST.get("user_id", "").strip())
                if user_id is None:
                    return HttpResponseBadRequest("user_id must be an id")
                user = get_object_or_404(User, pk=user_id)
                if action == ContainmentAction.DISABLE_ACCOUNT:
                    incidents.disable_account(incident, user, actor=request.user)
                    messages.success(request, f"Account #{user.pk} disabled; its sessions and tokens ended.")
                else:
                    sessions, tokens = incidents.revoke_sessions(incident, user, actor=request.user)
                    messages.success(request, f"Account #{user.pk}: {sessions} sessions and {tokens} tokens ended.")
            elif action == ContainmentAction.BLOCK_IP:
                blocked = incidents.block_ip(
                    incident, request.POST.get("ip", ""), actor=request.user, reason=request.POST.get("reason", "")
                )
                messages.success(request, f"{blocked.ip_address} blocked.")
            elif action == ContainmentAction.PRESERVE_EVIDENCE:
                start = parse_moment(request.POST.get("from", ""))
                end = parse_moment(request.POST.get("to", ""), end=True)
                snapshot = incidents.preserve_evidence(incident, actor=request.user, start=start, end=end)
                messages.success(
                    request, f"Evidence #{snapshot.pk}: {snapshot.events} events, SHA-256 {snapshot.sha256}."
                )
            else:
                raise Http404
        except (incidents.IncidentError, ValueError) as exc:
            return HttpResponseBadRequest(str(exc))
        return back


@admin.register(BlockedIP)
class BlockedIPAdmin(admin.ModelAdmin):
    """Blocked addresses: blocked from an incident's page, unblocked here (delete)."""

    list_display = ["ip_address", "incident", "reason", "created_at", "created_by"]
    readonly_fields = ["ip_address", "incident", "reason", "created_at", "created_by"]
    actions = None

    def _manages(self, request):
        return policy.may_incident(request.user, policy.IncidentRight.MANAGE)

    def has_module_permission(self, request):
        return self._manages(request)

    def has_view_permission(self, request, obj=None):
        return self._manages(request)

    def has_delete_permission(self, request, obj=None):
        return self._manages(request)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def delete_model(self, request, obj):
        incidents.unblock_ip(obj, actor=request.user)
