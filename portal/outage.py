"""A database outage (PostgreSQL restarting, unreachable) answers 503 with a short message: JSON
under /api/, plain text elsewhere; never a stack trace, a debug page, or the driver's message
(which may hold SQL or values).  The portal reconnects by itself once the database is back
(``CONN_HEALTH_CHECKS``), so nothing needs restarting.

Used by the API's exception handler (errors inside a view) and as ``handler500`` (errors anywhere
else, e.g. the request transaction opened by ``portal.middleware.SecurityContextMiddleware``)."""

import logging
import sys

from django.db import InterfaceError, OperationalError
from django.http import HttpResponse, JsonResponse
from django.views.defaults import server_error as default_server_error

from portal.middleware import current_request_id

logger = logging.getLogger("portal.outage")
OUTAGE_ERRORS = (OperationalError, InterfaceError)
MESSAGE = "The service is temporarily unavailable. Try again in a minute."
RETRY_AFTER_SECONDS = "30"


def is_outage(exc: BaseException | None) -> bool:
    return isinstance(exc, OUTAGE_ERRORS)


def outage_response(request, exc: BaseException) -> HttpResponse:
    logger.error("database unavailable: %s", type(exc).__name__)
    if request.path.startswith("/api/"):
        response = JsonResponse({"detail": MESSAGE, "request_id": current_request_id()}, status=503)
    else:
        response = HttpResponse(f"{MESSAGE}\n", content_type="text/plain; charset=utf-8", status=503)
    response["Retry-After"] = RETRY_AFTER_SECONDS
    return response


def server_error(request):
    """``handler500``: Django calls it while handling the exception, so ``sys.exc_info()`` holds it."""
    exc = sys.exc_info()[1]
    if is_outage(exc):
        return outage_response(request, exc)
    return default_server_error(request)
