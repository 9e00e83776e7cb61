"""The session engine (``SESSION_ENGINE = "accounts.sessions"``): database sessions that carry
their user's id in an indexed column, so that ending every session of one user is one DELETE.

The column follows the session data on every save, so a key cycled at login or at MFA
verification stays indexed without any extra bookkeeping.
"""

from django.contrib.auth import SESSION_KEY
from django.contrib.sessions.backends.db import SessionStore as DbSessionStore


class SessionStore(DbSessionStore):
    @classmethod
    def get_model_class(cls):
        from accounts.models import UserSession

        return UserSession

    def create_model_instance(self, data):
        instance = super().create_model_instance(data)
        instance.user_id = _user_id(data)
        return instance

    async def acreate_model_instance(self, data):
        instance = await super().acreate_model_instance(data)
        instance.user_id = _user_id(data)
        return instance


def _user_id(data) -> int | None:
    try:
        return int(data.get(SESSION_KEY))
    except (TypeError, ValueError):
        return None
