"""API authentication that sets the token user's database scope for the request's transaction."""

from knox.auth import TokenAuthentication

from portal.security_context import apply_user_scope


class ScopedTokenAuthentication(TokenAuthentication):
    """Knox tokens (hashed, expiring); on success the transaction switches to the user's scope."""

    def authenticate(self, request):
        result = super().authenticate(request)
        if result is not None:
            apply_user_scope(result[0])
        return result
