"""Blind indexes: HMAC-SHA256 under BLIND_INDEX_KEY over a normalised value, for exact look-ups.

The ciphertext of an encrypted field is randomised, so equality search goes through these.
"""

import hashlib
import hmac
import re
import unicodedata

from django.conf import settings

_NON_DIGITS = re.compile(r"\D+")


def normalize_email(value: str) -> str:
    """One spelling per address: Unicode NFKC (composed accents, no fullwidth or ligature forms),
    no surrounding space, lower case."""
    return unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", value or "").strip().lower())


def normalize_phone(value: str) -> str:
    """ASCII digits only, so '+1 (555) 123-4567', '15551234567' and the same number typed in
    fullwidth or Arabic-Indic digits match."""
    return "".join(str(unicodedata.decimal(ch)) for ch in _NON_DIGITS.sub("", value or ""))


def _hmac(normalized: str, key: str | None = None) -> str:
    if not normalized:
        return ""
    secret = (key or settings.BLIND_INDEX_KEY).encode()
    return hmac.new(secret, normalized.encode(), hashlib.sha256).hexdigest()


def email_index(value: str, key: str | None = None) -> str:
    return _hmac(normalize_email(value), key)


def phone_index(value: str, key: str | None = None) -> str:
    return _hmac(normalize_phone(value), key)


def _keys() -> list[str]:
    """The current key first, then previous keys still valid while ``rotate_keys`` runs."""
    return [settings.BLIND_INDEX_KEY, *getattr(settings, "BLIND_INDEX_OLD_KEYS", [])]


def email_candidates(value: str) -> list[str]:
    """Index values to look up for an email: one per configured key (rotation without downtime)."""
    return [v for v in dict.fromkeys(email_index(value, key) for key in _keys()) if v]


def phone_candidates(value: str) -> list[str]:
    return [v for v in dict.fromkeys(phone_index(value, key) for key in _keys()) if v]
