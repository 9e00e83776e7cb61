"""Request middleware: request ids, the per-request security context, no-store caching."""

import contextvars
import logging
import re
import uuid
from contextlib import contextmanager

from portal.security_context import scoped

_request_id = contextvars.ContextVar("request_id", default="-")
_client = contextvars.ContextVar("client", default=("", ""))
_VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9-]{8,64}$")


def current_request_id() -> str:
    return _request_id.get()


@contextmanager
def bound_request_id(request_id: str):
    """Carry a request id into work done for that request elsewhere (a Celery task)."""
    token = _request_id.set(request_id if request_id and _VALID_REQUEST_ID.match(request_id) else "-")
    try:
        yield
    finally:
        _request_id.reset(token)


def current_client() -> tuple[str, str]:
    """(ip address, user agent) of the request being served, or empty strings outside one."""
    return _client.get()


def client_ip(request) -> str:
    # REMOTE_ADDR is the peer; behind a trusted proxy gunicorn's forwarded_allow_ips sets it.
    return request.META.get("REMOTE_ADDR", "")


class RequestIdMiddleware:
    """Give each request an id (a client's X-Request-ID is kept when well-formed)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        incoming = request.headers.get("X-Request-ID", "")
        request_id = incoming if _VALID_REQUEST_ID.match(incoming) else uuid.uuid4().hex
        request.request_id = request_id
        token = _request_id.set(request_id)
        client_token = _client.set((client_ip(request), request.headers.get("User-Agent", "")[:256]))
        try:
            response = self.get_response(request)
        finally:
            _request_id.reset(token)
            _client.reset(client_token)
        response["X-Request-ID"] = request_id
        return response


class RequestIdLogFilter(logging.Filter):
    def filter(self, record):
        record.request_id = _request_id.get()
        return True


class SecurityContextMiddleware:
    """Run each request in one transaction under the session user's database scope.

    API token authentication re-applies the scope for the token's user inside the same
    transaction (``portal.api_auth``).  Anonymous requests run with no scope: no protected row.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        with scoped(request.user):
            return self.get_response(request)


class NoStoreMiddleware:
    """Personal data must not sit in browser or proxy caches: every dynamic response is no-store.
    Also sets the Permissions-Policy header (Django has no setting for it)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        from django.conf import settings

        response = self.get_response(request)
        if not request.path.startswith("/static/"):
            response["Cache-Control"] = "no-store"
            response["Pragma"] = "no-cache"
        response.setdefault("Permissions-Policy", settings.PERMISSIONS_POLICY)
        return response
