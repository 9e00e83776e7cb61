"""Authentication events from Django's signals: LOGIN, LOGIN_FAILED, LOGOUT.

A failed attempt never stores the password (Django cleanses it anyway) nor the attempted name:
the name is kept as a keyed hash, enough to count attempts against one account without
writing down whatever someone typed (often a password in the wrong box)."""

import hashlib
import hmac

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed

from audit import services
from audit.choices import AuditAction


def username_hash(username: str) -> str:
    """HMAC-SHA256 of the normalised attempted name (domain-separated from the blind indexes)."""
    normalized = (username or "").strip().lower()
    message = f"audit-login-v1:{normalized}".encode()
    return hmac.new(settings.BLIND_INDEX_KEY.encode(), message, hashlib.sha256).hexdigest()


def login_failed(credentials: dict, *, resource: str = "session", reason: str = "bad credentials") -> None:
    """Record one failed login; the actor is the existing account that was tried, if any."""
    User = get_user_model()
    username = str(credentials.get(User.USERNAME_FIELD) or credentials.get("username") or "")
    account = User.objects.filter(email=username.strip().lower()).first() if username else None
    services.record(
        AuditAction.LOGIN_FAILED,
        actor=account,
        resource=resource,
        success=False,
        reason=reason,
        extra={"username_hash": username_hash(username)},
    )


def _on_login(sender, request, user, **kwargs):
    services.record(AuditAction.LOGIN, actor=user, resource="session")


def _on_login_failed(sender, credentials, request=None, **kwargs):
    login_failed(credentials, resource="api_token" if _is_token_request(request) else "session")


def _on_logout(sender, request, user, **kwargs):
    services.record(AuditAction.LOGOUT, actor=user, resource="session")


def _is_token_request(request) -> bool:
    match = getattr(request, "resolver_match", None)
    return bool(match and match.url_name == "api-token")


def connect() -> None:
    user_logged_in.connect(_on_login, dispatch_uid="audit_login")
    user_login_failed.connect(_on_login_failed, dispatch_uid="audit_login_failed")
    user_logged_out.connect(_on_logout, dispatch_uid="audit_logout")
