"""Report pages: the reports the user may view, and one report run (aggregates under the
runner's own scope, whoever shared it) as a chart with its table."""

from django.http import Http404
from django.shortcuts import render
from django.views.decorators.http import require_GET
from rest_framework import serializers

from accounts import policy
from accounts.models import Team
from audit import services as audit
from audit.choices import AuditAction
from dashboards import presentation
from dashboards.access import row_page
from dashboards.forms import ExportForm, ReportFilterForm
from datasets import report_definitions
from datasets.models import Report


@require_GET
@row_page
def report_list(request):
    reports = Report.objects.restrict(request.user, policy.Action.VIEW).select_related("team").order_by("title", "id")
    return render(request, "dashboards/reports.html", {"reports": reports})


def _group_label(group_by: str, value, team_names: dict) -> str:
    if value is None:
        return "All"
    if group_by == "team":
        return team_names.get(value, f"Team {value}")
    if group_by == "month":
        return str(value)[:7]
    return str(value)


@require_GET
@row_page
def report_detail(request, pk):
    user = request.user
    report = Report.objects.restrict(user, policy.Action.VIEW).select_related("team").filter(pk=pk).first()
    if report is None:
        raise Http404
    form = ReportFilterForm(request.GET or None)
    context = {"report": report, "form": form, "may_export": policy.may_export(user)}
    if form.is_bound and not form.is_valid():
        return render(request, "dashboards/report_detail.html", context, status=400)
    definition = dict(report.definition) if isinstance(report.definition, dict) else {}
    data = form.cleaned_data if form.is_bound else {}
    for key in ("date_from", "date_to"):
        if data.get(key):
            definition[key] = data[key].isoformat()
    try:
        rows = report_definitions.run(user, definition)
    except serializers.ValidationError:
        context["run_error"] = "This report's definition is not valid any more; ask its owner to fix it."
        return render(request, "dashboards/report_detail.html", context, status=400)
    audit.record(AuditAction.REPORT_RUN, actor=user, resource="report", object_ids=[report.pk], rows=len(rows))
    group_by = definition.get("group_by") or ""
    team_names = dict(Team.objects.values_list("pk", "name")) if group_by == "team" else {}
    labels = [_group_label(group_by, row["group"], team_names) for row in rows]
    values = [row["value"] for row in rows]
    aggregate = definition.get("aggregate", "count")
    panel = presentation.Panel(
        "report",
        report.title,
        {
            "type": "line" if group_by == "month" else "bar",
            "labels": labels,
            "datasets": [{"label": aggregate, "data": [float(v) if v is not None else None for v in values]}],
        },
        [group_by.title() or "Group", aggregate],
        [[label, "–" if v is None else str(v)] for label, v in zip(labels, values, strict=True)],
        note="" if rows else "No rows in your scope for this report.",
    )
    context.update(
        panel=panel,
        definition=definition,
        export_form=ExportForm(
            initial={
                "dataset": definition["dataset"],
                "report": report.pk,
                "date_from": data.get("date_from"),
                "date_to": data.get("date_to"),
            }
        ),
        export_scope=policy.access(user, policy.Action.EXPORT).scope.value,
    )
    return render(request, "dashboards/report_detail.html", context)
