"""API authentication that sets the token user's database scope for the request's transaction."""

from django.utils import timezone
from drf_spectacular.contrib.knox_auth_token import KnoxTokenScheme
from knox.auth import TokenAuthentication
from rest_framework import exceptions

from portal.security_context import apply_user_scope


class ScopedTokenAuthentication(TokenAuthentication):
    """Knox tokens (hashed, expiring); on success the transaction switches to the user's scope."""

    def authenticate(self, request):
        result = super().authenticate(request)
        if result is not None:
            from accounts.services import record_token_use

            record_token_use(result[1])  # one statement; writes at most once a minute per token
            apply_user_scope(result[0])
        return result

    def authenticate_credentials(self, token):
        # A header that is not ASCII can never be a token: 401, not a decoding error.
        try:
            token.decode("ascii")
        except UnicodeDecodeError:
            raise exceptions.AuthenticationFailed("Invalid token.") from None
        return super().authenticate_credentials(token)

    def _cleanup_token(self, auth_token) -> bool:
        # Knox would also load and prune every other token of the user on each request; expired
        # tokens of others are pruned by a scheduled task instead.  This token: refused if expired.
        if auth_token.expiry is not None and auth_token.expiry < timezone.now():
            auth_token.delete()
            return True
        return False


class ScopedTokenScheme(KnoxTokenScheme):
    """Documents the token header in the OpenAPI schema."""

    target_class = "portal.api_auth.ScopedTokenAuthentication"
