"""Celery tasks run under the acting user's security context, in one transaction each.

Task arguments are ids, never personal data.  ``acting_user_id`` names who the task acts for;
the task body runs with that user's database role and scope (or the system scope when the
task is internal), and django-auditlog attributes its changes to that user.
"""

from contextlib import nullcontext

from auditlog.context import set_actor
from celery import Task

from portal.security_context import scoped


class ScopedTask(Task):
    """Base task: ``acting_user_id`` (keyword) selects the scope; ``system=True`` tasks run as the system."""

    system = False

    def __call__(self, *args, acting_user_id=None, **kwargs):
        from accounts.models import User

        user = None
        if not self.system:
            user = User.objects.filter(pk=acting_user_id, is_active=True).first()
        actor = set_actor(user) if user is not None else nullcontext()
        with actor, scoped(user, system=self.system):
            return self.run(*args, **kwargs)
