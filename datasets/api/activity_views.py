"""Order and page-view lists: read-only, through restrict(), with a validated date range."""

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import viewsets
from rest_framework.permissions import IsAuthenticated

from accounts import policy
from datasets.api.permissions import PolicyAllows
from datasets.api.serializers import DateRangeSerializer, OrderSerializer, PageViewSerializer
from datasets.models import Order, PageView

_DATE_PARAMS = [OpenApiParameter("date_from", OpenApiTypes.DATE), OpenApiParameter("date_to", OpenApiTypes.DATE)]


class _ScopedListViewSet(viewsets.ReadOnlyModelViewSet):
    permission_classes = [IsAuthenticated, PolicyAllows]
    policy_action = policy.Action.VIEW
    lookup_value_regex = r"[0-9]{1,18}"
    model = None
    date_field = ""

    def get_queryset(self):
        queryset = self.model.objects.restrict(self.request.user, self.policy_action)
        if self.action == "list":
            dates = DateRangeSerializer(data=self.request.query_params)
            dates.is_valid(raise_exception=True)
            if dates.validated_data.get("date_from"):
                queryset = queryset.filter(**{f"{self.date_field}__date__gte": dates.validated_data["date_from"]})
            if dates.validated_data.get("date_to"):
                queryset = queryset.filter(**{f"{self.date_field}__date__lte": dates.validated_data["date_to"]})
        return queryset


@extend_schema_view(list=extend_schema(parameters=_DATE_PARAMS))
class OrderViewSet(_ScopedListViewSet):
    serializer_class = OrderSerializer
    model = Order
    date_field = "created_at"


@extend_schema_view(list=extend_schema(parameters=_DATE_PARAMS))
class PageViewViewSet(_ScopedListViewSet):
    serializer_class = PageViewSerializer
    model = PageView
    date_field = "timestamp"
