"""Exports: start (Celery), status with progress, and the requester-only expiring download."""

import hashlib

from cryptography.fernet import InvalidToken
from django.http import Http404, HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
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
from portal.api_schema import ErrorSerializer
from portal.task_queue import enqueue, ensure_available


class ExportViewSet(mixins.CreateModelMixin, mixins.RetrieveModelMixin, mixins.ListModelMixin, viewsets.GenericViewSet):
    serializer_class = ExportSerializer
    permission_classes = [IsAuthenticated, PolicyAllows, MfaSatisfied]
    policy_action = policy.Action.EXPORT

    # A canonical UUID only: any 36 hex digits and dashes would reach the database as a bad UUID (500).
    lookup_value_regex = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # schema generation has no user
            return Export.objects.none()
        # An export is its requester's alone.
        return Export.objects.filter(requested_by=self.request.user)

    @extend_schema(
        request=exports.ExportRequestSerializer,
        responses={
            202: ExportSerializer,
            503: OpenApiResponse(ErrorSerializer, description="The task queue is unavailable; nothing was started."),
        },
    )
    def create(self, request, *args, **kwargs):
        form = exports.ExportRequestSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        ensure_available()
        export = exports.start(request.user, form.validated_data)
        enqueue(run_export, str(export.pk), acting_user_id=request.user.pk)
        return Response(ExportSerializer(export, context={"request": request}).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(
        parameters=[OpenApiParameter("token", str, required=True)],
        # The file in the export's own format (a CSV table, or a JSON array of rows of strings).
        responses={
            (200, "text/csv"): OpenApiTypes.STR,
            (200, "application/json"): {
                "type": "array",
                "items": {"type": "object", "additionalProperties": {"type": "string"}},
            },
        },
    )
    @action(detail=True, methods=["get"], url_path="download", url_name="download")
    def download(self, request, pk=None):
        export = self.get_queryset().filter(pk=pk, status="done").first()
        if export is None or not exports.check_download_token(
            export, request.user, request.query_params.get("token", "")
        ):
            raise Http404
        try:
            content = exports.read_file(export)
        except (OSError, InvalidToken):
            raise Http404 from None  # the file is gone or is not one this portal wrote
        if hashlib.sha256(content).hexdigest() != export.sha256:
            raise Http404  # not the file this export wrote (another export's, or altered)
        response = HttpResponse(content, content_type="text/csv" if export.format == "csv" else "application/json")
        response["Content-Disposition"] = f'attachment; filename="export-{export.pk}.{export.format}"'
        return response
