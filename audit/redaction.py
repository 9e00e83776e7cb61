"""No personal data in logs or change history: redaction of log records and auditlog diffs."""

import json
import logging
import re
from datetime import UTC, datetime

# Order matters: cards before phones (a card number also looks like a long phone number).
_PATTERNS = [
    (re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}"), "[email]"),
    # A whole run of 13+ digits, so that a card written next to other digits is not cut in two.
    (re.compile(r"\b\d(?:[ -]?\d){12,}\b"), "[card]"),
    # A credential's name (also inside a longer name: api_token, Authorization), a separator (after
    # a closing quote in a dict or JSON), an optional auth scheme, then the value, quoted or bare.
    (
        re.compile(
            r"(?i)\b(\w*(?:token|password|passwd|secret|authorization|bearer|api_?key)\w*)"
            r"([\"']?\s*[=:]\s*|[\"']?\s+)(?:(?:token|bearer|basic)\s+)?(?:\"[^\"]*\"|'[^']*'|\S+)"
        ),
        r"\1\2[redacted]",
    ),
]
_PHONE_CANDIDATE = re.compile(r"(?<![\w.])\+?\(?\d[\d ().-]{7,}\d\b")
_DATE_PREFIX = re.compile(r"^\d{4}-\d{2}-\d{2}")


def _phone(match: re.Match) -> str:
    text = match.group(0)
    # Ten or more digits make a phone number; IP addresses, ports and dates stay readable.
    if sum(ch.isdigit() for ch in text) < 10 or _DATE_PREFIX.match(text):
        return text
    return "[phone]"


def redact(text: str) -> str:
    """Replace emails, card numbers, phone numbers and credentials in free text."""
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return _PHONE_CANDIDATE.sub(_phone, text)


def mask_value(value: str) -> str:
    """auditlog's mask for personal fields: the diff records that a value changed, never the value."""
    return "[redacted]" if value not in (None, "", "None") else value


class RedactingFilter(logging.Filter):
    """Redact every record's rendered message (arguments included) before any handler sees it."""

    def filter(self, record):
        record.msg = redact(record.getMessage())
        record.args = None
        if record.exc_info and record.exc_info[1] is not None:
            # Exception texts can quote values (e.g. a failing INSERT): keep only the type.
            record.exc_text = f"{record.exc_info[0].__name__} (details redacted)"
            record.exc_info = None
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object a line, with the request id."""

    def format(self, record):
        payload = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "request_id": getattr(record, "request_id", "-"),
            "message": record.getMessage(),
        }
        if record.exc_text:
            payload["error"] = record.exc_text
        return json.dumps(payload)
