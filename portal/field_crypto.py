"""Encrypted model fields: AES-256-GCM under CRYPTOGRAPHY_KEY, with a key ring for rotation.

Why not django-cryptography's field: it authenticates ciphertext with an HMAC keyed by
SECRET_KEY (so the integrity of PII would hang on the signing key, and a leaked SECRET_KEY plus
database write access would let an attacker feed pickles to the loader).  Here one key does
both jobs, nothing is pickled, and each value is bound to its column (associated data), so a
ciphertext copied into another column or table does not decrypt.

Stored layout: ``version (1 byte) | key id (8 bytes) | nonce (12 bytes) | ciphertext+tag``.
The key id lets old keys (CRYPTOGRAPHY_OLD_KEYS) still decrypt while ``rotate_keys`` re-encrypts.
"""

import hashlib
import os
from functools import lru_cache

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings
from django.db import models

VERSION = b"\x01"
_KEY_ID_LEN = 8
_NONCE_LEN = 12


class DecryptionError(ValueError):
    """A stored value could not be decrypted with any configured key."""


@lru_cache(maxsize=8)
def _derive(secret: str) -> tuple[bytes, AESGCM]:
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"portal-fields-v1").derive(secret.encode())
    return hashlib.sha256(key).digest()[:_KEY_ID_LEN], AESGCM(key)


def _ring() -> dict[bytes, AESGCM]:
    return _ring_for(settings.CRYPTOGRAPHY_KEY, tuple(getattr(settings, "CRYPTOGRAPHY_OLD_KEYS", ())))


@lru_cache(maxsize=8)
def _ring_for(current: str, old: tuple[str, ...]) -> dict[bytes, AESGCM]:
    # Built once per key set, not per value: decryption is on every row of every list.
    return dict(_derive(secret) for secret in (current, *old) if secret)


def current_key_id() -> bytes:
    return _derive(settings.CRYPTOGRAPHY_KEY)[0]


def encrypt_value(plaintext: str, context: bytes) -> bytes:
    key_id, aead = _derive(settings.CRYPTOGRAPHY_KEY)
    nonce = os.urandom(_NONCE_LEN)
    return VERSION + key_id + nonce + aead.encrypt(nonce, plaintext.encode(), context)


def decrypt_value(blob: bytes, context: bytes) -> str:
    blob = bytes(blob)
    if blob[:1] != VERSION:
        raise DecryptionError("unknown ciphertext version")
    key_id = blob[1 : 1 + _KEY_ID_LEN]
    nonce = blob[1 + _KEY_ID_LEN : 1 + _KEY_ID_LEN + _NONCE_LEN]
    aead = _ring().get(key_id)
    if aead is None:
        raise DecryptionError("no configured key matches this value")
    try:
        return aead.decrypt(nonce, blob[1 + _KEY_ID_LEN + _NONCE_LEN :], context).decode()
    except InvalidTag:
        raise DecryptionError("value failed authentication") from None


def key_id_of(blob: bytes) -> bytes:
    return bytes(blob)[1 : 1 + _KEY_ID_LEN]


class EncryptedTextMixin:
    """Stores ``str`` values encrypted (bytea); only ``isnull`` look-ups (use a blind index)."""

    def get_internal_type(self):
        return "BinaryField"

    def db_type(self, connection):
        return "bytea"

    def _context(self) -> bytes:
        return f"{self.model._meta.db_table}.{self.column}".encode()

    def get_db_prep_value(self, value, connection, prepared=False):
        if value is None:
            return None
        return encrypt_value(str(value), self._context())

    def from_db_value(self, value, expression, connection):
        if value is None:
            return None
        return decrypt_value(value, self._context())

    def get_lookup(self, lookup_name):
        return super().get_lookup(lookup_name) if lookup_name == "isnull" else None

    def get_transform(self, lookup_name):
        return None


class EncryptedCharField(EncryptedTextMixin, models.CharField):
    """A CharField (max_length validated on the clear text) stored encrypted."""


class EncryptedEmailField(EncryptedTextMixin, models.EmailField):
    """An EmailField stored encrypted."""
