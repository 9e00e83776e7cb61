"""Temporary access grants (ask, approve, refuse) and reveal-with-reason on one customer field."""

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts import policy
from accounts.permissions import MfaSatisfied
from datasets import services
from datasets.api.permissions import PolicyAllows
from datasets.api.serializers import (
    AccessGrantRequestSerializer,
    AccessGrantSerializer,
    GrantDecisionSerializer,
    RevealSerializer,
)
from datasets.selectors import grants_visible_to


class AccessGrantViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Own requests, plus the requests the caller may decide."""

    serializer_class = AccessGrantSerializer
    permission_classes = [IsAuthenticated, MfaSatisfied]
    lookup_value_regex = r"[0-9]{1,18}"

    def get_queryset(self):
        return grants_visible_to(self.request.user)

    @extend_schema(request=AccessGrantRequestSerializer, responses={201: AccessGrantSerializer})
    def create(self, request):
        form = AccessGrantRequestSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        data = form.validated_data
        grant = services.request_grant(
            request.user,
            kind=data["kind"],
            reason=data["reason"],
            team_id=data.get("team"),
            customer_id=data.get("customer"),
            duration_hours=data["duration_hours"],
        )
        return Response(AccessGrantSerializer(grant).data, status=status.HTTP_201_CREATED)

    def _decide(self, request, pk, approve):
        form = GrantDecisionSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        grant = services.decide_grant(request.user, pk, approve=approve, note=form.validated_data["note"])
        return Response(AccessGrantSerializer(grant).data)

    @extend_schema(request=GrantDecisionSerializer, responses={200: AccessGrantSerializer})
    @action(detail=True, methods=["post"])
    def approve(self, request, pk=None):
        return self._decide(request, pk, True)

    @extend_schema(request=GrantDecisionSerializer, responses={200: AccessGrantSerializer})
    @action(detail=True, methods=["post"])
    def refuse(self, request, pk=None):
        return self._decide(request, pk, False)


class RevealView(APIView):
    """POST /api/v1/customers/{id}/reveal/ {field, reason}: one clear value, audited."""

    permission_classes = [IsAuthenticated, PolicyAllows, MfaSatisfied]
    policy_action = policy.Action.VIEW

    @extend_schema(
        request=RevealSerializer,
        responses={
            200: inline_serializer("Revealed", {"field": serializers.CharField(), "value": serializers.CharField()})
        },
    )
    def post(self, request, pk):
        form = RevealSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        value = services.reveal_field(request.user, pk, form.validated_data["field"], form.validated_data["reason"])
        return Response({"field": form.validated_data["field"], "value": value})
