"""API tokens: issue (``POST /api/v1/auth/token/``), list and revoke (``/api/v1/auth/tokens/``).

Issuing goes through django-axes (5 failures per email and address lock for 15 minutes) and,
for users whose role needs MFA, a one-time code (``otp``): such a token is marked verified and
is the only kind that writes or exports (``accounts.permissions.MfaSatisfied``).  A token is
never shown again after it is issued: listings give its id (a digest prefix), dates and last use.
"""

from axes.handlers.proxy import AxesProxyHandler
from django.contrib.auth import authenticate
from django.contrib.auth.models import update_last_login
from django.contrib.auth.signals import user_login_failed
from django.db.models import Q
from django.http import Http404
from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, inline_serializer
from knox.settings import knox_settings
from rest_framework import generics, serializers, status
from rest_framework.exceptions import PermissionDenied, ValidationError
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts import lockout, policy, selectors, services
from accounts.permissions import MfaSatisfied
from audit import services as audit
from audit.choices import AuditAction
from portal.api_schema import ErrorSerializer
from portal.middleware import client_ip

GENERIC_REFUSAL = {"non_field_errors": ["Unable to log in with the credentials given."]}


class TokenRequestSerializer(serializers.Serializer):
    email = serializers.EmailField()
    password = serializers.CharField(trim_whitespace=False, write_only=True, max_length=512)
    otp = serializers.CharField(
        required=False,
        allow_blank=True,
        max_length=16,
        write_only=True,
        help_text="One-time code from the authenticator (or a backup code): required for Admin, Manager and DPO.",
    )


class TokenView(APIView):
    """Issue a token.  The answer is the same whether the account exists or not."""

    authentication_classes: list = []
    permission_classes = [AllowAny]

    @extend_schema(
        request=TokenRequestSerializer,
        responses={
            200: inline_serializer(
                "TokenResponse", {"token": serializers.CharField(), "expiry": serializers.DateTimeField()}
            ),
            403: OpenApiResponse(ErrorSerializer, description="The user holds the most live tokens allowed."),
            429: OpenApiResponse(ErrorSerializer, description="Locked out after too many failed attempts."),
        },
    )
    def post(self, request):
        form = TokenRequestSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        # django-axes keeps its marks on Django's request, not on DRF's wrapper.
        http_request = request._request
        email = form.validated_data["email"].lower()
        user = authenticate(http_request, email=email, password=form.validated_data["password"])
        if getattr(http_request, "axes_locked_out", False):
            return lockout.lockout_response(http_request)
        if user is None or not user.is_active:
            return Response(GENERIC_REFUSAL, status=status.HTTP_400_BAD_REQUEST)
        mfa_verified = False
        if policy.requires_mfa(user):
            refusal = self._second_factor(http_request, user, form.validated_data.get("otp", ""))
            if refusal is not None:
                return refusal
            mfa_verified = True
        # knox enforces TOKEN_LIMIT_PER_USER only in its own LoginView; this view must do it itself.
        limit = knox_settings.TOKEN_LIMIT_PER_USER
        if limit is not None:
            live = user.auth_token_set.filter(Q(expiry__gt=timezone.now()) | Q(expiry__isnull=True))
            if live.count() >= limit:
                return Response(
                    {"detail": "Maximum number of API tokens for this user reached."},
                    status=status.HTTP_403_FORBIDDEN,
                )
        instance, token = services.issue_token(user, mfa_verified=mfa_verified, ip=client_ip(http_request))
        update_last_login(None, user)  # a password login: it keeps the account from going inactive
        # django-axes: log the access and reset this client's failure count, as a page login does.
        AxesProxyHandler.user_logged_in(sender=type(self), request=http_request, user=user)
        audit.record(AuditAction.LOGIN, actor=user, resource="api_token")
        return Response({"token": token, "expiry": instance.expiry})

    @staticmethod
    def _second_factor(http_request, user, code: str):
        """None when the code is good; otherwise the refusal (the password was right, so naming
        the missing factor tells an attacker nothing new)."""
        if not selectors.has_authenticator(user):
            return Response(
                {"otp": ["This account must enrol an authenticator first: sign in to the portal to do so."]},
                status=status.HTTP_400_BAD_REQUEST,
            )
        if not code:
            return Response(
                {"otp": ["This account needs a one-time code from its authenticator (or a backup code)."]},
                status=status.HTTP_400_BAD_REQUEST,
            )
        if services.verify_second_factor(user, code) is None:
            # Counted by django-axes like a wrong password: guessing codes locks out too.
            user_login_failed.send(sender=__name__, credentials={"email": user.email}, request=http_request)
            if getattr(http_request, "axes_locked_out", False):
                return lockout.lockout_response(http_request)
            return Response({"otp": ["The one-time code is not valid."]}, status=status.HTTP_400_BAD_REQUEST)
        return None


class TokenInfoSerializer(serializers.Serializer):
    id = serializers.SerializerMethodField()
    user = serializers.IntegerField(source="user_id")
    created = serializers.DateTimeField()
    expiry = serializers.DateTimeField()
    last_used = serializers.SerializerMethodField()
    mfa = serializers.SerializerMethodField()
    current = serializers.SerializerMethodField()

    def get_id(self, token) -> str:
        return selectors.token_public_id(token)

    def _info(self, token):
        return getattr(token, "portal_info", None) if hasattr(token, "portal_info") else None

    def get_last_used(self, token) -> str | None:
        info = self._info(token)
        return serializers.DateTimeField().to_representation(info.last_used_at) if info and info.last_used_at else None

    def get_mfa(self, token) -> bool:
        info = self._info(token)
        return bool(info and info.mfa_verified)

    def get_current(self, token) -> bool:
        auth = self.context["request"].auth
        return getattr(auth, "digest", None) == token.digest


class TokenListQuerySerializer(serializers.Serializer):
    user = serializers.IntegerField(required=False, min_value=1, max_value=2**63 - 1)


@extend_schema(
    parameters=[OpenApiParameter("user", int, description="another user's tokens (admins only)")],
)
class TokenListView(generics.ListAPIView):
    """Your live API tokens; admins may ask for another user's with ``?user=ID``."""

    serializer_class = TokenInfoSerializer
    permission_classes = [IsAuthenticated]

    def get_queryset(self):
        query = TokenListQuerySerializer(data=self.request.query_params)
        if not query.is_valid():
            raise ValidationError(query.errors)
        user_id = query.validated_data.get("user", self.request.user.pk)
        if user_id != self.request.user.pk and not policy.may_manage_any_token(self.request.user):
            raise PermissionDenied("Only admins list other users' tokens.")
        return selectors.live_tokens().filter(user_id=user_id)


class TokenDetailView(generics.RetrieveDestroyAPIView):
    """One token: details, or revoke it (``DELETE``).  Yours always; anyone's for admins, after MFA."""

    serializer_class = TokenInfoSerializer
    permission_classes = [IsAuthenticated]

    def get_object(self):
        user = self.request.user
        token = selectors.token_by_public_id(self.kwargs["token_id"], user)
        if token is not None:
            return token
        # Someone else's token: not found, unless an admin acts (who must have passed MFA).
        if not policy.may_manage_any_token(user):
            raise Http404
        token = selectors.token_by_public_id(self.kwargs["token_id"])
        if token is None:
            raise Http404
        if not MfaSatisfied().has_permission(self.request, self):
            raise PermissionDenied(MfaSatisfied.message)
        return token

    def perform_destroy(self, instance):
        own = instance.user_id == self.request.user.pk
        services.revoke_token(
            instance,
            actor=self.request.user,
            reason="revoked by its owner" if own else "revoked by an administrator",
        )
