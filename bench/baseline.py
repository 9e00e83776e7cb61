"""The unsecured baselines for ``bench/customer_api.py`` and ``bench/orders_rls.py``: bench-only,
never routed by the portal.

It lists the same customer rows as ``/api/v1/customers/`` with every security layer removed:
no authentication, no policy, no row-level security (it reads through the ``owner`` alias, the
superuser that owns the table), no decryption and no masking (the ciphertext columns go out
base64-encoded).  It keeps what is not security: the same middleware stack, DRF view,
serializer and pagination class (so the same COUNT(*) plus LIMIT/OFFSET query), and the same
``WHERE team_id = ... ORDER BY id`` shape.  ``ROOT_URLCONF`` points here only inside the
benchmark's ``override_settings``.  The orders baseline is the same idea for ``/api/v1/orders/``:
the portal's ``OrderSerializer`` and pagination over the owner alias with an explicit team filter.
"""

from base64 import b64encode

from django.db.models import BinaryField
from django.db.models.functions import Cast
from django.urls import path
from rest_framework import generics, serializers
from rest_framework.exceptions import ValidationError
from rest_framework.permissions import AllowAny

from datasets.api.serializers import OrderSerializer
from datasets.models import Customer, Order
from portal.pagination import StrictPageNumberPagination
from portal.urls import urlpatterns as portal_urlpatterns

BASELINE_PATH = "/bench/unsecured-customers/"
BASELINE_ORDERS_PATH = "/bench/unsecured-orders/"


def raw_customer_rows(team_id: int):
    """The team's rows as the table owner sees them: no row-level security, ciphertext as stored."""
    # Cast to bytea so that the encrypted field's from_db_value (the decryption) never runs.
    return (
        Customer.objects.using("owner")
        .filter(team_id=team_id)
        .order_by("id")
        .values(
            "id",
            "team_id",
            "card_last4",
            "created_at",
            name_ct=Cast("name", BinaryField()),
            email_ct=Cast("email", BinaryField()),
            phone_ct=Cast("phone", BinaryField()),
        )
    )


class CiphertextField(serializers.Field):
    """Raw stored bytes, base64-encoded: nothing is decrypted."""

    def to_representation(self, value):
        return b64encode(bytes(value)).decode("ascii") if value is not None else None


class RawCustomerSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    team = serializers.IntegerField(source="team_id")
    name = CiphertextField(source="name_ct")
    email = CiphertextField(source="email_ct")
    phone = CiphertextField(source="phone_ct")
    card = serializers.CharField(source="card_last4")
    created_at = serializers.DateTimeField()


class UnsecuredCustomerList(generics.ListAPIView):
    authentication_classes = ()
    permission_classes = (AllowAny,)
    serializer_class = RawCustomerSerializer
    pagination_class = StrictPageNumberPagination

    def get_queryset(self):
        team = self.request.query_params.get("team", "")
        if not team.isdigit():
            raise ValidationError({"team": ["A team id is required."]})
        return raw_customer_rows(int(team))


def owner_orders(team_ids: list[int]):
    """The teams' orders as the table owner sees them (no row-level security), in id order."""
    return Order.objects.using("owner").filter(team_id__in=team_ids).order_by("id")


class UnsecuredOrderList(generics.ListAPIView):
    authentication_classes = ()
    permission_classes = (AllowAny,)
    serializer_class = OrderSerializer
    pagination_class = StrictPageNumberPagination

    def get_queryset(self):
        raw = self.request.query_params.get("teams", "")
        teams = raw.split(",") if raw else []
        if not teams or not all(team.isdigit() for team in teams):
            raise ValidationError({"teams": ["Comma-separated team ids are required."]})
        return owner_orders([int(team) for team in teams])


urlpatterns = [
    *portal_urlpatterns,
    path(BASELINE_PATH.lstrip("/"), UnsecuredCustomerList.as_view(), name="bench-unsecured-customers"),
    path(BASELINE_ORDERS_PATH.lstrip("/"), UnsecuredOrderList.as_view(), name="bench-unsecured-orders"),
]
