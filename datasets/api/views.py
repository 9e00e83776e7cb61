"""Customer API: list (paginated, masked, exact email search) and detail, through restrict()."""

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import viewsets
from rest_framework.permissions import IsAuthenticated

from accounts import policy
from audit import services as audit
from audit.choices import AuditAction
from datasets.api.permissions import PolicyAllows
from datasets.api.serializers import CustomerSearchSerializer, CustomerSerializer
from datasets.models import Customer


@extend_schema_view(
    list=extend_schema(
        parameters=[OpenApiParameter("email", OpenApiTypes.EMAIL, description="exact match via the blind index")]
    ),
)
class CustomerViewSet(viewsets.ReadOnlyModelViewSet):
    serializer_class = CustomerSerializer
    permission_classes = [IsAuthenticated, PolicyAllows]
    policy_action = policy.Action.VIEW
    # Ids out of range would overflow bigint: refuse them in the URL (404) instead of at the database.
    lookup_value_regex = r"[0-9]{1,18}"

    def get_queryset(self):
        queryset = Customer.objects.restrict(self.request.user, self.policy_action)
        if self.action == "list":
            search = CustomerSearchSerializer(data=self.request.query_params)
            search.is_valid(raise_exception=True)
            email = search.validated_data.get("email")
            if email:
                queryset = queryset.by_email(email)
        return queryset

    def get_serializer_context(self):
        context = super().get_serializer_context()
        context["masking"] = policy.masking_for(policy.access(self.request.user, self.policy_action).role)
        return context

    # One audit event per request, with the row count and the ids read (never one per row).
    def list(self, request, *args, **kwargs):
        response = super().list(request, *args, **kwargs)
        rows = response.data.get("results", []) if isinstance(response.data, dict) else response.data
        ids = [row["id"] for row in rows]
        searched = bool(request.query_params.get("email"))
        audit.record(
            AuditAction.SEARCH if searched else AuditAction.VIEW,
            actor=request.user,
            resource="customer",
            object_ids=ids,
            rows=len(ids),
        )
        return response

    def retrieve(self, request, *args, **kwargs):
        response = super().retrieve(request, *args, **kwargs)
        audit.record(
            AuditAction.VIEW, actor=request.user, resource="customer", object_ids=[response.data["id"]], rows=1
        )
        return response
