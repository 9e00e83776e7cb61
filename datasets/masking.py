"""Masking: pure functions in the seed's formats, chosen per field by the policy's masking table."""

import hashlib
import re

from accounts.policy import Mask

_DIGITS = re.compile(r"\d")


def mask_email(value: str) -> str:
    """``sarah@gmail.com`` -> ``sar***@gmail.com``; the local part never shows more than 3 characters."""
    if not value:
        return ""
    # The domain follows the last "@": a quoted local part may hold "@" itself ("a@b"@x.org).
    local, sep, domain = value.rpartition("@")
    if not sep:
        return "***"
    keep = min(3, max(len(local) - 1, 0))
    return f"{local[:keep]}***@{domain}"


def mask_phone(value: str) -> str:
    """Any phone -> ``XXX-XXX-5678`` (last four digits)."""
    digits = "".join(_DIGITS.findall(value or ""))
    if len(digits) < 4:
        return "XXX-XXX-XXXX"
    return f"XXX-XXX-{digits[-4:]}"


def mask_card(last4: str) -> str:
    """Stored last four digits -> ``XXXX-XXXX-XXXX-4242``."""
    digits = "".join(_DIGITS.findall(last4 or ""))[-4:]
    return f"XXXX-XXXX-XXXX-{digits}" if len(digits) == 4 else ""


def mask_initial(value: str) -> str:
    """``Sarah Johnson`` -> ``S.``"""
    value = (value or "").strip()
    return f"{value[0].upper()}." if value else ""


def mask_hash(value: str) -> str:
    """A one-way hash for grouping without identifying (pseudonymisation needs a key; see compliance)."""
    return hashlib.sha256((value or "").encode()).hexdigest()[:16] if value else ""


def mask_null(value) -> None:
    return None


def bucket(value: int | float, width: int = 5) -> str:
    """27 -> '25-29' (width 5)."""
    low = int(value) // width * width
    return f"{low}-{low + width - 1}"


_FUNCTIONS = {
    Mask.CLEAR: lambda v: v,
    Mask.INITIAL: mask_initial,
    Mask.EMAIL: mask_email,
    Mask.PHONE: mask_phone,
    Mask.CARD: mask_card,
    Mask.HASH: mask_hash,
    Mask.NULL: mask_null,
}


def apply(mask: Mask, value):
    return _FUNCTIONS[Mask(mask)](value)


def mask_record(masking: dict[str, Mask], record: dict) -> dict:
    """Mask each field of a record that the masking row names; other fields pass through."""
    return {key: apply(masking[key], value) if key in masking else value for key, value in record.items()}
