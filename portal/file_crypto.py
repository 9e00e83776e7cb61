"""Files at rest (exports, subject-access packages) are encrypted with a key of their own,
derived from CRYPTOGRAPHY_KEY with HKDF (never from SECRET_KEY)."""

import base64
from functools import lru_cache

from cryptography.fernet import Fernet, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings


@lru_cache(maxsize=4)
def _fernet(key_material: str) -> Fernet:
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"portal-files-v1").derive(key_material.encode())
    return Fernet(base64.urlsafe_b64encode(key))


def encrypt_bytes(data: bytes) -> bytes:
    return _fernet(settings.CRYPTOGRAPHY_KEY).encrypt(data)


def decrypt_bytes(token: bytes) -> bytes:
    """Decrypt with the current key or, while a rotation is under way, a previous one
    (CRYPTOGRAPHY_OLD_KEYS): a file written just before the key changed still opens."""
    return _ring(settings.CRYPTOGRAPHY_KEY, tuple(getattr(settings, "CRYPTOGRAPHY_OLD_KEYS", ()))).decrypt(token)


@lru_cache(maxsize=4)
def _ring(current: str, old: tuple[str, ...]) -> MultiFernet:
    return MultiFernet([_fernet(secret) for secret in (current, *old) if secret])
