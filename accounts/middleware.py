"""Session middleware: the absolute session lifetime, and MFA before the admin site.

Both sit after ``django_otp.middleware.OTPMiddleware`` (which tells whether the session passed
a second factor) and before ``portal.middleware.SecurityContextMiddleware`` (so that a session
ended here runs its request with no scope).
"""

import time
from urllib.parse import urlencode

from django.conf import settings
from django.contrib.auth import logout
from django.http import HttpResponseRedirect
from django.urls import reverse

from accounts import policy, selectors
from accounts.signals import SESSION_STARTED_KEY


class SessionLifetimeMiddleware:
    """End a login ``SESSION_ABSOLUTE_SECONDS`` after it began, however active it has been.

    (The idle timeout is the session's own expiry: ``SESSION_COOKIE_AGE``, renewed by every
    request.)  A session without a start stamp is ended too: it was not made by a login."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        session = getattr(request, "session", None)
        if session is not None and request.user.is_authenticated:
            started = session.get(SESSION_STARTED_KEY)
            if not isinstance(started, int) or time.time() - started > settings.SESSION_ABSOLUTE_SECONDS:
                logout(request)
        return self.get_response(request)


class MfaRequiredMiddleware:
    """Users whose role needs MFA reach ``MFA_REQUIRED_PATHS`` (the admin site) only from a
    session verified with a second factor; the others are sent to verify, or to enrol when they
    have no authenticator yet.  The admin site checks the same rule itself (``PortalAdminSite``)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if self._guarded(request.path) and request.user.is_authenticated:
            user = request.user
            if policy.requires_mfa(user) and not selectors.session_is_verified(user):
                step = "accounts:mfa-verify" if selectors.has_authenticator(user) else "accounts:mfa-enrol"
                query = urlencode({"next": request.get_full_path()})
                return HttpResponseRedirect(f"{reverse(step)}?{query}")
        return self.get_response(request)

    @staticmethod
    def _guarded(path: str) -> bool:
        exempt = (reverse("admin:login"), reverse("admin:logout"))
        return path.startswith(tuple(settings.MFA_REQUIRED_PATHS)) and path not in exempt
