"""API errors: DRF's answers for known errors; anything else a generic 500 that echoes nothing."""

import logging

from django.db import connections
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

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
    # Never echo the exception text: it may hold personal data or SQL.
    logger.error("unhandled API error: %s", type(exc).__name__)
    return Response({"detail": "Internal error.", "request_id": current_request_id()}, status=500)
