"""Exports from the pages: start (purpose asked, roles table enforced here whatever the page
showed), a status page whose progress bar polls a JSON view, and the expiring download link."""

from django.conf import settings
from django.http import Http404, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST
from rest_framework import serializers

from accounts import policy
from dashboards.access import export_page
from dashboards.forms import ExportForm
from datasets import exports
from datasets.choices import ExportStatus
from datasets.models import Export, Report
from datasets.tasks import run_export
from portal.task_queue import QueueUnavailable, enqueue, ensure_available

RECENT_EXPORTS = 20


def _own_export(user, pk) -> Export:
    export = Export.objects.filter(pk=pk, requested_by=user).first()
    if export is None:
        raise Http404  # an export is its requester's alone
    return export


def _refuse(request, form, message: str = "", status: int = 400):
    return render(request, "dashboards/export_refused.html", {"form": form, "message": message}, status=status)


@require_POST
@export_page
def export_start(request):
    user = request.user
    form = ExportForm(request.POST)
    if not form.is_valid():
        return _refuse(request, form)
    data = form.cleaned_data
    payload = {
        "format": data["format"],
        "purpose": data["purpose"],
        "date_from": data["date_from"],
        "date_to": data["date_to"],
        "dataset": data["dataset"],
        "filters": {},
    }
    if data["report"]:
        # A report's rows are its saved definition, read here, never sent by the page.
        report = Report.objects.restrict(user, policy.Action.VIEW).filter(pk=data["report"]).first()
        if report is None or not isinstance(report.definition, dict):
            raise Http404
        definition = report.definition
        payload["dataset"] = definition.get("dataset", "")
        payload["filters"] = definition.get("filters") or {}
        payload["date_from"] = data["date_from"] or definition.get("date_from")
        payload["date_to"] = data["date_to"] or definition.get("date_to")
    elif data["team"]:
        payload["filters"] = {"team": data["team"]}
    request_form = exports.ExportRequestSerializer(data=payload)
    if not request_form.is_valid():
        return _refuse(request, form, _first_error(request_form.errors))
    try:
        ensure_available()
    except QueueUnavailable as exc:
        return _refuse(request, form, str(exc.detail), status=503)
    try:
        export = exports.start(user, request_form.validated_data)
    except serializers.ValidationError as exc:
        return _refuse(request, form, _first_error(exc.detail))
    enqueue(run_export, str(export.pk), acting_user_id=user.pk)
    return redirect("dashboards:export", pk=export.pk)


def _first_error(detail) -> str:
    if isinstance(detail, dict):
        for key, value in detail.items():
            return f"{key}: {_first_error(value)}"
    if isinstance(detail, list) and detail:
        return _first_error(detail[0])
    return str(detail)


@require_GET
@export_page
def export_list(request):
    mine = Export.objects.filter(requested_by=request.user).order_by("-created_at")[:RECENT_EXPORTS]
    return render(request, "dashboards/exports.html", {"exports": mine})


@require_GET
@export_page
def export_status(request, pk):
    export = _own_export(request.user, pk)
    return render(
        request,
        "dashboards/export_status.html",
        {"export": export, "status_url": reverse("dashboards:export-status", kwargs={"pk": export.pk})},
    )


@require_GET
@export_page
def export_status_json(request, pk):
    export = _own_export(request.user, pk)
    body = {"status": export.status, "row_count": export.row_count, **exports.progress(export)}
    if export.status == ExportStatus.DONE:
        path = reverse("export-download", kwargs={"pk": export.pk})
        body["download_url"] = f"{path}?token={exports.download_token(export)}"
        body["link_expires_seconds"] = settings.EXPORT_LINK_SECONDS
    elif export.status == ExportStatus.FAILED:
        body["error"] = "The export failed; start it again or ask an administrator."
    return JsonResponse(body)
