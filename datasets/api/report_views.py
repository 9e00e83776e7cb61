"""Reports: CRUD under the roles table, run (aggregates under the runner's scope), share."""

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response

from accounts import policy
from accounts.permissions import MfaSatisfied
from audit import services as audit
from audit.choices import AuditAction
from datasets import report_definitions, services
from datasets.api.permissions import PolicyAllows
from datasets.api.serializers import ReportSerializer, ReportShareSerializer, ReportWriteSerializer
from datasets.models import Report


def _shape_checked(data) -> dict:
    """Reject non-object bodies and unknown/unwritable fields before any write."""
    if not isinstance(data, dict):
        raise ValidationError({"non_field_errors": ["Send a JSON object."]})
    services.refuse_unwritable_fields(data, services.REPORT_WRITABLE)
    form = ReportWriteSerializer(data=data)
    form.is_valid(raise_exception=True)
    return {key: data[key] for key in form.validated_data}


class ReportViewSet(viewsets.ModelViewSet):
    serializer_class = ReportSerializer
    permission_classes = [IsAuthenticated, PolicyAllows, MfaSatisfied]
    mfa_read_actions = ("run",)  # running a report reads; creating, editing, sharing write
    policy_action = policy.Action.VIEW
    lookup_value_regex = r"[0-9]{1,18}"

    def get_queryset(self):
        return Report.objects.restrict(self.request.user, policy.Action.VIEW).select_related(None)

    @extend_schema(request=ReportWriteSerializer, responses={201: ReportSerializer})
    def create(self, request, *args, **kwargs):
        report = services.create_report(request.user, _shape_checked(request.data))
        return Response(ReportSerializer(report).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=ReportWriteSerializer, responses={200: ReportSerializer})
    def update(self, request, *args, **kwargs):
        report = services.update_report(request.user, kwargs["pk"], _shape_checked(request.data))
        return Response(ReportSerializer(report).data)

    def destroy(self, request, *args, **kwargs):
        services.delete_report(request.user, kwargs["pk"])
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(
        request=None,
        responses={
            200: inline_serializer("ReportRun", {"report": serializers.IntegerField(), "rows": serializers.ListField()})
        },
    )
    @action(detail=True, methods=["post"])
    def run(self, request, pk=None):
        report = self.get_object()  # 404 outside the view scope (shares included)
        rows = report_definitions.run(request.user, report.definition)
        audit.record(
            AuditAction.REPORT_RUN, actor=request.user, resource="report", object_ids=[report.pk], rows=len(rows)
        )
        return Response({"report": report.pk, "rows": rows})

    @extend_schema(request=ReportShareSerializer, responses={200: ReportSerializer})
    @action(detail=True, methods=["post"])
    def share(self, request, pk=None):
        form = ReportShareSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        data = form.validated_data
        report = services.share_report(
            request.user, pk, user_id=data.get("user"), team_id=data.get("team"), revoke=data["revoke"]
        )
        return Response(ReportSerializer(report).data)
