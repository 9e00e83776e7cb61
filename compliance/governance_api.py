"""``GET /api/v1/pseudonymised-extract/orders/``: the analysts' pseudonymised extract as CSV.

The roles in ``policy.PSEUDONYMISED_EXTRACT_ROLES`` receive the rows of their view scope with
keyed pseudonyms, tenure buckets, coarse cities and month-level dates (``compliance.pseudonymise``).
It is an export: roles that need a second factor must have passed it, and each extract is
audited with its row count.
"""

import json

from django.http import HttpResponse
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework.permissions import BasePermission, IsAuthenticated
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.views import APIView

from accounts import policy
from accounts.permissions import MfaSatisfied
from audit import services as audit
from audit.choices import AuditAction
from compliance import pseudonymise

RESOURCE = "pseudonymised_orders"


class MayExtract(BasePermission):
    message = "Your role does not receive pseudonymised extracts."

    def has_permission(self, request, view):
        if policy.may_extract_pseudonymised(request.user):
            return True
        audit.record(
            AuditAction.PERMISSION_DENIED,
            actor=request.user,
            resource=RESOURCE,
            success=False,
            reason="policy refuses the pseudonymised extract",
        )
        return False


class CSVRenderer(BaseRenderer):
    """Lets a client ask for ``text/csv``; errors still go out as a JSON body."""

    media_type = "text/csv"
    format = "csv"
    charset = "utf-8"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        return data if isinstance(data, bytes) else json.dumps(data).encode()


class PseudonymisedOrdersView(APIView):
    renderer_classes = [JSONRenderer, CSVRenderer]
    permission_classes = [IsAuthenticated, MayExtract, MfaSatisfied]
    policy_action = policy.Action.EXPORT  # for MfaSatisfied: an extract is an export

    @extend_schema(responses={(200, "text/csv"): OpenApiTypes.STR}, summary="Pseudonymised orders (CSV)")
    def get(self, request):
        content, count = pseudonymise.as_csv(request.user)
        audit.record(
            AuditAction.EXPORT_DATA,
            actor=request.user,
            resource=RESOURCE,
            rows=count,
            reason="pseudonymised extract (keyed pseudonyms, buckets)",
        )
        response = HttpResponse(content, content_type="text/csv; charset=utf-8")
        stamp = timezone.now().strftime("%Y%m%d")
        response["Content-Disposition"] = f'attachment; filename="pseudonymised-orders-{stamp}.csv"'
        return response
