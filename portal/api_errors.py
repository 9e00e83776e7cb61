"""API errors: DRF's answers for known errors; anything else a generic 500 that echoes nothing."""

import logging

from django.db import connections
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from portal import outage
from portal.middleware import current_request_id

logger = logging.getLogger("portal.api")


def exception_handler(exc, context):
    response = drf_exception_handler(exc, context)
    if response is not None:
        return response
    # Whatever the view wrote before failing is undone with the request's transaction.
    for connection in connections.all(initialized_only=True):
        if connection.in_atomic_block:
            connection.set_rollback(True)
    if outage.is_outage(exc):  # the database is restarting or unreachable: 503, not 500
        return outage.outage_response(context["request"], exc)
    # Never echo the exception text: it may hold personal data or SQL.
    logger.error("unhandled API error: %s", type(exc).__name__)
    return Response({"detail": "Internal error.", "request_id": current_request_id()}, status=500)


def not_found(request, exception=None):
    """``handler404``: a URL under /api/ that matches no route (an id that is no id, say) gets
    DRF's JSON body, as the API's own 404s do; other paths keep Django's page."""
    from django.http import JsonResponse
    from django.views.defaults import page_not_found

    if request.path.startswith("/api/"):
        return JsonResponse({"detail": "Not found."}, status=404)
    return page_not_found(request, exception)
