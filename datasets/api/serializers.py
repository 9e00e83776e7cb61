"""Dataset serialization, masked per role by the policy's masking table."""

from rest_framework import serializers

from datasets import masking
from datasets.models import AccessGrant, Customer, Export, Order, PageView, Report


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


class OrderSerializer(serializers.ModelSerializer):
    customer = serializers.IntegerField(source="customer_id", read_only=True)
    team = serializers.IntegerField(source="team_id", read_only=True)

    class Meta:
        model = Order
        fields = ["id", "customer", "team", "amount", "currency", "status", "created_at"]
        read_only_fields = fields


class PageViewSerializer(serializers.ModelSerializer):
    customer = serializers.IntegerField(source="customer_id", read_only=True, allow_null=True)
    team = serializers.IntegerField(source="team_id", read_only=True)

    class Meta:
        model = PageView
        fields = ["id", "customer", "session_id", "team", "page", "referrer", "city", "device", "timestamp"]
        read_only_fields = fields


class DateRangeSerializer(serializers.Serializer):
    """Query parameters shared by order and page-view lists."""

    date_from = serializers.DateField(required=False)
    date_to = serializers.DateField(required=False)

    def validate(self, attrs):
        if attrs.get("date_from") and attrs.get("date_to") and attrs["date_from"] > attrs["date_to"]:
            raise serializers.ValidationError({"date_to": ["Must not be before date_from."]})
        return attrs


class ReportSerializer(serializers.ModelSerializer):
    owner = serializers.IntegerField(source="owner_id", read_only=True)
    team = serializers.IntegerField(source="team_id")
    department = serializers.IntegerField(source="department_id", read_only=True)

    class Meta:
        model = Report
        fields = ["id", "owner", "team", "department", "title", "description", "definition", "created_at", "updated_at"]
        read_only_fields = ["id", "owner", "department", "created_at", "updated_at"]


class ReportWriteSerializer(serializers.Serializer):
    """Shape checks only; scope and field rights are the service's."""

    title = serializers.CharField(max_length=200, required=False)
    description = serializers.CharField(max_length=2000, required=False, allow_blank=True)
    definition = serializers.JSONField(required=False)
    team = serializers.IntegerField(min_value=1, required=False)


class ReportShareSerializer(serializers.Serializer):
    user = serializers.IntegerField(min_value=1, required=False)
    team = serializers.IntegerField(min_value=1, required=False)
    revoke = serializers.BooleanField(default=False)


class AccessGrantSerializer(serializers.ModelSerializer):
    class Meta:
        model = AccessGrant
        fields = [
            "id",
            "requester",
            "kind",
            "team",
            "customer",
            "reason",
            "duration_hours",
            "status",
            "requested_at",
            "decided_by",
            "decided_at",
            "decision_note",
            "expires_at",
        ]
        read_only_fields = fields


class AccessGrantRequestSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=AccessGrant._meta.get_field("kind").choices)
    reason = serializers.CharField(max_length=1000)
    team = serializers.IntegerField(min_value=1, required=False)
    customer = serializers.IntegerField(min_value=1, required=False)
    duration_hours = serializers.IntegerField(min_value=1, default=8)


class GrantDecisionSerializer(serializers.Serializer):
    note = serializers.CharField(max_length=500, required=False, allow_blank=True, default="")


class RevealSerializer(serializers.Serializer):
    field = serializers.CharField(max_length=20)
    reason = serializers.CharField(max_length=500)


class ExportSerializer(serializers.ModelSerializer):
    progress = serializers.SerializerMethodField()
    download_url = serializers.SerializerMethodField()

    class Meta:
        model = Export
        fields = [
            "id",
            "dataset",
            "filters",
            "format",
            "purpose",
            "status",
            "progress",
            "row_count",
            "sha256",
            "created_at",
            "finished_at",
            "download_url",
        ]
        read_only_fields = fields

    def get_progress(self, export) -> dict:
        from datasets import exports

        return exports.progress(export)

    def get_download_url(self, export) -> str | None:
        from django.urls import reverse

        from datasets import exports

        if export.status != "done":
            return None
        path = reverse("export-download", kwargs={"pk": export.pk})
        return self.context["request"].build_absolute_uri(f"{path}?token={exports.download_token(export)}")
