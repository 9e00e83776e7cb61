"""Privacy-request API: intake (create) and status (read).  No value of the subject is echoed
back in clear: the subject is shown masked."""

from rest_framework import serializers

from compliance import requests
from compliance.models import SubjectRequest
from compliance.requests_choices import Channel, ConsentPurpose, RequestKind
from datasets import masking


class PrivacyRequestCreateSerializer(serializers.Serializer):
    type = serializers.ChoiceField(choices=RequestKind.choices)
    email = serializers.EmailField(required=False, allow_blank=True, max_length=254)
    phone = serializers.CharField(required=False, allow_blank=True, max_length=32)
    channel = serializers.ChoiceField(choices=Channel.choices, default=Channel.API)
    details = serializers.CharField(required=False, allow_blank=True, max_length=2000, default="")
    purpose = serializers.ChoiceField(
        choices=ConsentPurpose.choices,
        required=False,
        allow_blank=True,
        default="",
        help_text="Objection only: the purpose the subject objects to (default analytics).",
    )

    def validate(self, attrs):
        intake = requests.Intake(
            kind=attrs["type"],
            channel=attrs["channel"],
            email=attrs.get("email") or "",
            phone=attrs.get("phone") or "",
            details=attrs.get("details") or "",
            purpose=attrs.get("purpose") or "",
        )
        try:
            return {"intake": requests.validate_intake(intake)}
        except requests.RequestError as exc:
            raise serializers.ValidationError(exc.as_dict()) from None


class PrivacyRequestSerializer(serializers.ModelSerializer):
    type = serializers.CharField(source="kind", read_only=True)
    # Blank unless the request is an objection; a generated read-only field would drop the blank.
    purpose = serializers.ChoiceField(choices=ConsentPurpose.choices, allow_blank=True, read_only=True)
    subject = serializers.SerializerMethodField()
    extended = serializers.SerializerMethodField()
    progress = serializers.SerializerMethodField()

    class Meta:
        model = SubjectRequest
        fields = [
            "id",
            "type",
            "status",
            "channel",
            "subject",
            "purpose",
            "received_at",
            "due_at",
            "extended",
            "completed_at",
            "rejection_reason",
            "error_step",
            "progress",
        ]
        read_only_fields = fields

    def get_subject(self, obj) -> dict:
        return {
            "email": masking.mask_email(obj.subject_email) if obj.subject_email else "",
            "phone": masking.mask_phone(obj.subject_phone) if obj.subject_phone else "",
            "erased": bool(obj.subject_hash),
        }

    def get_extended(self, obj) -> bool:
        return obj.extended_months > 0

    def get_progress(self, obj) -> dict:
        return requests.progress(obj)
