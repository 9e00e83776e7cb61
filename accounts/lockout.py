"""django-axes glue: which name an attempt is counted against, and the answer to a locked-out client.

Attempts are counted per (normalised email, client address); the lockout answer is the same
whether the account exists or not, and for the API it is JSON.
"""

import hashlib
import hmac

from django.conf import settings
from django.http import JsonResponse
from django.template.response import TemplateResponse


def attempted_name(request, credentials: dict | None) -> str:
    """The attempted email, lower-cased, from the credentials or the posted form.

    The admin and portal login forms post ``username``; the token endpoint authenticates with
    ``email``; both count against the same name."""
    credentials = credentials or {}
    name = credentials.get("email") or credentials.get("username")
    if not name and request is not None and request.method == "POST":
        name = request.POST.get("email") or request.POST.get("username")
    return str(name or "").strip().lower()[:254]


def attempt_key(name: str) -> str:
    """What django-axes stores and counts instead of the typed name: a keyed hash.  Whatever was
    typed (an unknown address, often a password in the wrong box) never reaches its tables."""
    message = f"axes-lockout-v1:{(name or '').strip().lower()}".encode()
    return hmac.new(settings.BLIND_INDEX_KEY.encode(), message, hashlib.sha256).hexdigest()


def username_of(request, credentials: dict | None) -> str | None:
    """``AXES_USERNAME_CALLABLE``: the key attempts are counted against."""
    name = attempted_name(request, credentials)
    return attempt_key(name) if name else None


def unlock(user) -> int:
    """Clear the failed attempts against one account (every client address)."""
    from axes.models import AccessAttempt

    count, _ = AccessAttempt.objects.filter(username=attempt_key(user.email)).delete()
    return count


def lockout_minutes() -> int:
    return int(settings.AXES_COOLOFF_TIME.total_seconds() // 60)


LOCKOUT_MESSAGE = "Too many failed attempts. Try again in {minutes} minutes."


def lockout_response(request, original_response=None, credentials=None):
    message = LOCKOUT_MESSAGE.format(minutes=lockout_minutes())
    status = settings.AXES_HTTP_RESPONSE_CODE
    retry_after = str(int(settings.AXES_COOLOFF_TIME.total_seconds()))
    if request.path.startswith("/api/"):
        response = JsonResponse({"detail": message}, status=status)
    else:
        response = TemplateResponse(request, "accounts/locked_out.html", {"message": message}, status=status)
        response.render()
    response["Retry-After"] = retry_after
    return response
