"""``POST /api/v1/privacy-requests/`` (intake) and ``GET /api/v1/privacy-requests/{id}/`` (status).

Rights come from the policy (``accounts.policy.PRIVACY_RIGHTS_BY_*``): the DPO and Admins file
and read; integration accounts holding the PrivacyIntake duty file only.  Writes by users whose
role or duty needs MFA need an MFA-verified token (``accounts.permissions.MfaSatisfied``)."""

from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.exceptions import ValidationError
from rest_framework.permissions import BasePermission, IsAuthenticated
from rest_framework.response import Response

from accounts import policy
from accounts.permissions import MfaSatisfied
from compliance import requests
from compliance.api.serializers import PrivacyRequestCreateSerializer, PrivacyRequestSerializer
from compliance.models import SubjectRequest


class PrivacyRightAllows(BasePermission):
    """POST needs the intake right, reads the read right (refusals are audited by the middleware)."""

    message = "Your account may not do this with privacy requests."

    def has_permission(self, request, view):
        if not (request.user and request.user.is_authenticated):
            return False
        right = policy.PrivacyRight.INTAKE if request.method == "POST" else policy.PrivacyRight.READ
        return policy.may_privacy(request.user, right)


class PrivacyRequestViewSet(mixins.CreateModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    serializer_class = PrivacyRequestSerializer
    permission_classes = [IsAuthenticated, PrivacyRightAllows, MfaSatisfied]

    def get_queryset(self):
        return SubjectRequest.objects.visible_to(self.request.user)

    @extend_schema(request=PrivacyRequestCreateSerializer, responses={201: PrivacyRequestSerializer})
    def create(self, request, *args, **kwargs):
        form = PrivacyRequestCreateSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        try:
            subject_request = requests.intake(request.user, form.validated_data["intake"])
        except requests.RequestError as exc:
            raise ValidationError(exc.as_dict()) from None
        return Response(PrivacyRequestSerializer(subject_request).data, status=status.HTTP_201_CREATED)
