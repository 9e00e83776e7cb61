"""Customer serialization, masked per role by the policy's masking table."""

from rest_framework import serializers

from datasets import masking
from datasets.models import Customer


class CustomerSerializer(serializers.ModelSerializer):
    """The masking row comes from the view's context (one policy read per request)."""

    card = serializers.CharField(source="card_last4", read_only=True)
    team = serializers.IntegerField(source="team_id", read_only=True)

    class Meta:
        model = Customer
        fields = ["id", "team", "name", "email", "phone", "card", "created_at"]
        read_only_fields = fields

    def to_representation(self, instance):
        data = super().to_representation(instance)
        masks = self.context["masking"]
        data["name"] = masking.apply(masks["name"], data["name"])
        data["email"] = masking.apply(masks["email"], data["email"])
        data["phone"] = masking.apply(masks["phone"], data["phone"])
        data["card"] = masking.apply(masks["card_last4"], data["card"])
        return data


class CustomerSearchSerializer(serializers.Serializer):
    """Query parameters of the customer list."""

    email = serializers.EmailField(required=False, max_length=254)
