"""``POST /api/v1/auth/token/``: email + password -> a hashed, expiring API token."""

from django.contrib.auth import authenticate
from drf_spectacular.utils import extend_schema, inline_serializer
from knox.models import AuthToken
from rest_framework import serializers, status
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView


class TokenRequestSerializer(serializers.Serializer):
    email = serializers.EmailField()
    password = serializers.CharField(trim_whitespace=False, write_only=True, max_length=512)


class TokenView(APIView):
    """Issue a token.  The answer is the same whether the account exists or not."""

    authentication_classes: list = []
    permission_classes = [AllowAny]

    @extend_schema(
        request=TokenRequestSerializer,
        responses={
            200: inline_serializer(
                "TokenResponse", {"token": serializers.CharField(), "expiry": serializers.DateTimeField()}
            )
        },
    )
    def post(self, request):
        form = TokenRequestSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        user = authenticate(
            request, email=form.validated_data["email"].lower(), password=form.validated_data["password"]
        )
        if user is None or not user.is_active:
            return Response(
                {"non_field_errors": ["Unable to log in with the credentials given."]},
                status=status.HTTP_400_BAD_REQUEST,
            )
        instance, token = AuthToken.objects.create(user)
        return Response({"token": token, "expiry": instance.expiry})
