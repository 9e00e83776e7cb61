"""Celery tasks run under the acting user's security context, in one transaction each.

Task arguments are ids, never personal data.  ``acting_user_id`` names who the task acts for;
the task body runs with that user's database role and scope (or the system scope when the
task is internal), and django-auditlog attributes its changes to that user.
"""

import contextvars
from contextlib import nullcontext

from auditlog.context import set_actor
from celery import Task

from portal.middleware import bound_request_id
from portal.security_context import scoped

_acting_user = contextvars.ContextVar("acting_user", default=None)


def current_user():
    """The user the running task acts for (None for system tasks)."""
    return _acting_user.get()


class ScopedTask(Task):
    """Base task: ``acting_user_id`` (keyword) selects the scope; ``system = True`` tasks run as the system.

    A task acting for a user who is gone or disabled does nothing and says so."""

    system = False
    typing = False  # acting_user_id is consumed here, not by the task body

    def apply_async(self, args=None, kwargs=None, **options):
        # Task arguments are ids: anything that looks like personal data never reaches the broker.
        from audit.task_context import check_arguments

        check_arguments(args, kwargs)
        return super().apply_async(args, kwargs, **options)

    def __call__(self, *args, acting_user_id=None, **kwargs):
        from accounts.models import User

        user = None
        if not self.system:
            user = User.objects.filter(pk=acting_user_id, is_active=True).first()
            if user is None:
                raise PermissionError("the acting user does not exist or is disabled")
        from audit.services import unit_of_work

        token = _acting_user.set(user)
        # The queuing request's id (message header) marks the task's events and log lines; the
        # task's audit events are appended after its transaction, like a request's.
        request_id = (getattr(self.request, "headers", None) or {}).get("portal_request_id") or getattr(
            self.request, "portal_request_id", ""
        )
        try:
            with (
                bound_request_id(request_id),
                unit_of_work(),
                set_actor(user) if user is not None else nullcontext(),
                scoped(user, system=self.system),
            ):
                return super().__call__(*args, **kwargs)
        finally:
            _acting_user.reset(token)
