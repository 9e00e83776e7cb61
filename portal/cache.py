"""The cache backend: Redis, as an aid only.  When Redis cannot be reached, reads miss and writes
are dropped (logged by operation and error type, never a key or value), so that pages and API
reads keep working through a Redis outage.  Nothing that must not be lost lives in the cache:
live progress figures (the database keeps the final ones) and a 30-second copy of the blocked
addresses (read from the database on a miss)."""

import logging

import redis
from django.core.cache.backends.base import DEFAULT_TIMEOUT
from django.core.cache.backends.redis import RedisCache

logger = logging.getLogger("portal.cache")


def _unavailable(operation: str, exc: Exception) -> None:
    logger.warning("cache unavailable (%s): %s", operation, type(exc).__name__)


class TolerantRedisCache(RedisCache):
    """Django's Redis cache; get/set/add/touch/delete (and their many-key forms) survive an outage.
    ``incr`` and ``clear`` still raise: a caller that counts must know the count failed."""

    def get(self, key, default=None, version=None):
        try:
            return super().get(key, default, version)
        except redis.RedisError as exc:
            _unavailable("get", exc)
            return default

    def get_many(self, keys, version=None):
        try:
            return super().get_many(keys, version)
        except redis.RedisError as exc:
            _unavailable("get_many", exc)
            return {}

    def has_key(self, key, version=None):
        try:
            return super().has_key(key, version)
        except redis.RedisError as exc:
            _unavailable("has_key", exc)
            return False

    def set(self, key, value, timeout=DEFAULT_TIMEOUT, version=None):
        try:
            super().set(key, value, timeout, version)
        except redis.RedisError as exc:
            _unavailable("set", exc)

    def set_many(self, data, timeout=DEFAULT_TIMEOUT, version=None):
        try:
            return super().set_many(data, timeout, version)
        except redis.RedisError as exc:
            _unavailable("set_many", exc)
            return list(data)

    def add(self, key, value, timeout=DEFAULT_TIMEOUT, version=None):
        try:
            return super().add(key, value, timeout, version)
        except redis.RedisError as exc:
            _unavailable("add", exc)
            return False

    def touch(self, key, timeout=DEFAULT_TIMEOUT, version=None):
        try:
            return super().touch(key, timeout, version)
        except redis.RedisError as exc:
            _unavailable("touch", exc)
            return False

    def delete(self, key, version=None):
        try:
            return super().delete(key, version)
        except redis.RedisError as exc:
            _unavailable("delete", exc)
            return False

    def delete_many(self, keys, version=None):
        try:
            super().delete_many(keys, version)
        except redis.RedisError as exc:
            _unavailable("delete_many", exc)
