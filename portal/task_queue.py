"""Queueing Celery work from requests: refuse clearly (503) when the broker is down, and never
queue work for rows that were not committed."""

import logging

from django.db import transaction
from rest_framework.exceptions import APIException

from portal.celery import app

logger = logging.getLogger("portal.tasks")


class QueueUnavailable(APIException):
    status_code = 503
    default_detail = "The task queue is unavailable; nothing was started. Try again in a minute."
    default_code = "queue_unavailable"


def ensure_available(timeout: float = 1.0) -> None:
    """Raise 503 before any write if the broker cannot be reached."""
    try:
        with app.connection_for_write() as connection:
            connection.ensure_connection(max_retries=1, timeout=timeout)
    except Exception as exc:  # kombu raises several transport-specific errors
        logger.warning("task queue unavailable: %s", type(exc).__name__)
        raise QueueUnavailable() from None


def enqueue(task, *args, **kwargs) -> None:
    """Send the task once the current transaction commits.  If sending fails then, the row stays
    queued and the periodic ``requeue`` task sends it again: nothing is lost."""

    def send():
        try:
            # No result is read from a request; ignoring it also keeps the result backend out of
            # the send: with Redis gone, its subscription retried for ~20 s inside the request.
            task.apply_async(args=args, kwargs=kwargs, retry=False, ignore_result=True)
        except Exception as exc:
            logger.error("could not queue %s: %s", task.name, type(exc).__name__)

    transaction.on_commit(send)
