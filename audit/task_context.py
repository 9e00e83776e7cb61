"""What a Celery message carries for the trail: the request id, and never personal data.

At publish time the current request id goes into the message headers (the worker's events and
log lines then carry the request that queued the work), and every argument is checked: task
arguments are ids, so a value that the log redactor would change (an email, phone, card number,
credential) is refused before it reaches the broker."""

import re

from celery.signals import before_task_publish

from audit.redaction import redact
from portal.middleware import current_request_id

HEADER = "portal_request_id"
# Ids, UUIDs and hashes pass as they are (a UUID's digit runs can look like a phone number).
_ID_LIKE = re.compile(r"[0-9A-Fa-f-]{1,64}")


class PersonalDataInTaskArguments(ValueError):
    pass


def _check(value, path: str) -> None:
    if isinstance(value, str):
        if not _ID_LIKE.fullmatch(value) and redact(value) != value:
            raise PersonalDataInTaskArguments(f"task argument {path} looks like personal data: pass an id")
    elif isinstance(value, dict):
        for key, item in value.items():
            _check(item, f"{path}.{key}")
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            _check(item, f"{path}[{index}]")


def check_arguments(args, kwargs) -> None:
    """Refuse task arguments that look like personal data (called by ScopedTask.apply_async:
    Celery swallows exceptions raised in publish signals)."""
    _check(list(args or ()), "args")
    _check(dict(kwargs or {}), "kwargs")


def _before_publish(sender=None, body=None, headers=None, **kwargs):
    if headers is not None:
        request_id = current_request_id()
        if request_id != "-":
            headers[HEADER] = request_id


def connect() -> None:
    before_task_publish.connect(_before_publish, dispatch_uid="audit_task_context")
