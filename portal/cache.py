"""The cache backend: Redis, as an aid only.  When Redis cannot be reached, reads miss and writes
are dropped (logged by operation and error type, never a key or value), so that pages and API
reads keep working through a Redis outage.  Nothing that must not be lost lives in the cache:
live progress figures (the database keeps the final ones) and a 30-second copy of the blocked
addresses (read from the database on a miss)."""

import functools
import logging

import redis
from django.core.cache.backends.redis import RedisCache

logger = logging.getLogger("portal.cache")


def _tolerant(method, fallback):
    """``method`` of Django's Redis cache, answering ``fallback(*args)`` while Redis is unreachable."""

    @functools.wraps(method)
    def call(self, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except redis.RedisError as exc:
            logger.warning("cache unavailable (%s): %s", method.__name__, type(exc).__name__)
            return fallback(*args, **kwargs)

    return call


def _miss(key, default=None, version=None):
    return default


# What each surviving operation answers during an outage: a miss, nothing stored, nothing found.
_OUTAGE_ANSWERS = {
    "get": _miss,
    "get_many": lambda *args, **kwargs: {},
    "has_key": lambda *args, **kwargs: False,
    "set": lambda *args, **kwargs: None,
    "set_many": lambda data, *args, **kwargs: list(data),  # the keys that were not stored
    "add": lambda *args, **kwargs: False,
    "touch": lambda *args, **kwargs: False,
    "delete": lambda *args, **kwargs: False,
    "delete_many": lambda *args, **kwargs: None,
}


class TolerantRedisCache(RedisCache):
    """Django's Redis cache; get/set/add/touch/delete (and their many-key forms) survive an outage.
    ``incr`` and ``clear`` still raise: a caller that counts must know the count failed."""


for _name, _answer in _OUTAGE_ANSWERS.items():
    setattr(TolerantRedisCache, _name, _tolerant(getattr(RedisCache, _name), _answer))
