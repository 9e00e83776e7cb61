"""Exports: start (Celery), status with progress, and the requester-only expiring download."""

from django.http import Http404, HttpResponse
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response

from accounts import policy
from accounts.permissions import MfaSatisfied
from datasets import exports
from datasets.api.permissions import PolicyAllows
from datasets.api.serializers import ExportSerializer
from datasets.models import Export
from datasets.tasks import run_export
from portal.task_queue import enqueue, ensure_available


class ExportViewSet(mixins.CreateModelMixin, mixins.RetrieveModelMixin, mixins.ListModelMixin, viewsets.GenericViewSet):
    serializer_class = ExportSerializer
    permission_classes = [IsAuthenticated, PolicyAllows, MfaSatisfied]
    policy_action = policy.Action.EXPORT

    lookup_value_regex = r"[0-9a-f-]{36}"

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # schema generation has no user
            return Export.objects.none()
        # An export is its requester's alone.
        return Export.objects.filter(requested_by=self.request.user)

    @extend_schema(request=exports.ExportRequestSerializer, responses={202: ExportSerializer})
    def create(self, request, *args, **kwargs):
        form = exports.ExportRequestSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        ensure_available()
        export = exports.start(request.user, form.validated_data)
        enqueue(run_export, str(export.pk), acting_user_id=request.user.pk)
        return Response(ExportSerializer(export, context={"request": request}).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(
        parameters=[OpenApiParameter("token", str, required=True)], responses={(200, "application/octet-stream"): bytes}
    )
    @action(detail=True, methods=["get"], url_path="download", url_name="download")
    def download(self, request, pk=None):
        export = self.get_queryset().filter(pk=pk, status="done").first()
        if export is None or not exports.check_download_token(
            export, request.user, request.query_params.get("token", "")
        ):
            raise Http404
        content = exports.read_file(export)
        response = HttpResponse(content, content_type="text/csv" if export.format == "csv" else "application/json")
        response["Content-Disposition"] = f'attachment; filename="export-{export.pk}.{export.format}"'
        return response
