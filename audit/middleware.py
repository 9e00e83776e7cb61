"""One audit unit of work per request, wrapped around the request's transaction."""

from django.http import HttpResponseForbidden

from audit import incidents, services
from audit.choices import AuditAction
from portal.middleware import client_ip


class AuditUnitMiddleware:
    """Buffer the request's events and append them after its transaction has ended.

    Must sit *before* ``portal.middleware.SecurityContextMiddleware`` (outside its atomic block):
    DRF rolls the request transaction back on every refusal, and the refusal is exactly what the
    trail must keep.  A refused request (403) that recorded no PERMISSION_DENIED itself gets one
    here, so every denial anywhere (admin, API, views) leaves exactly one event."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        with services.unit_of_work():
            response = self.get_response(request)
            if response.status_code == 403:
                self._denied(request)
        return response

    @staticmethod
    def _denied(request):
        user = getattr(request, "user", None)
        if user is None or not user.is_authenticated:
            return
        if any(e.action == AuditAction.PERMISSION_DENIED for e in services.pending_events()):
            return
        match = getattr(request, "resolver_match", None)
        services.record(
            AuditAction.PERMISSION_DENIED,
            actor=user,
            resource=(match.view_name if match else "")[:100],
            success=False,
            reason=f"{request.method} refused",
        )


class BlockedIPMiddleware:
    """403 for addresses blocked by incident response (``audit.models.BlockedIP``).

    One cache read per request (the set is cached for 30 seconds; the database is read when the
    cache fails).  Sits right after the request id, before sessions: a blocked client costs no
    session or user lookup, and is not written to the trail per request."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if incidents.is_blocked(client_ip(request)):
            return HttpResponseForbidden("Forbidden", content_type="text/plain")
        return self.get_response(request)
