"""Logs never hold personal data or credentials: canary values through the configured LOGGING.

The in-process tests write through a handler that carries the configured console handler's own
filters and formatter (pytest's capture replaces stderr, so the console stream itself is not
reachable); one test runs a fresh ``manage.py`` process and reads what the console handler
really writes to stderr.
"""

import io
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.http import HttpResponse
from django.test import RequestFactory
from hypothesis import given
from hypothesis import strategies as st

from audit.redaction import JsonFormatter, RedactingFilter, mask_value, redact
from portal.middleware import RequestIdMiddleware

ROOT = Path(__file__).resolve().parent.parent

EMAIL = "canary.person@example.org"
PHONE = "+1 555 867 5309"
CARD = "4242 4242 4242 4242"
PASSWORD = "hunter2secret"  # pragma: allowlist secret
TOKEN = "abc123tok"
# Substrings that must never reach a log line, in any of the forms the canaries are written in.
FORBIDDEN = [
    EMAIL,
    "canary.person",
    "867 5309",
    "867-5309",
    "8675309",
    "4242 4242",
    "4242-4242",
    "42424242",
    PASSWORD,
    TOKEN,
]
CANARY_TEXT = f"user {EMAIL} phone {PHONE} card {CARD} password={PASSWORD} token {TOKEN}"


def console_handler() -> logging.Handler:
    handlers = [h for h in logging.getLogger().handlers if isinstance(h.formatter, JsonFormatter)]
    assert len(handlers) == 1, logging.getLogger().handlers
    return handlers[0]


@pytest.fixture
def log_lines():
    """Capture what the configured console handler would write, as a list of lines."""
    console = console_handler()
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.setFormatter(console.formatter)
    for log_filter in console.filters:
        handler.addFilter(log_filter)
    handler.setLevel(console.level)
    logger = logging.getLogger("portal.test")
    # Levels are not under test here (other code may raise the root level): let every record through.
    previous_level = logger.level
    logger.setLevel(logging.DEBUG)
    logger.addHandler(handler)
    try:
        yield lambda: buffer.getvalue().splitlines()
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous_level)


def assert_clean(lines: list[str]) -> list[dict]:
    assert lines, "nothing was logged"
    records = []
    for line in lines:
        for canary in FORBIDDEN:
            assert canary not in line, line
        record = json.loads(line)
        assert "request_id" in record
        assert {"ts", "level", "logger", "message"} <= set(record)
        records.append(record)
    return records


def test_console_handler_is_configured_with_redaction():
    console = console_handler()
    assert any(isinstance(f, RedactingFilter) for f in console.filters)
    assert isinstance(console, logging.StreamHandler)


def test_canaries_in_the_message(log_lines):
    logging.getLogger("portal.test").warning(CANARY_TEXT)
    [record] = assert_clean(log_lines())
    assert record["level"] == "WARNING"
    assert record["logger"] == "portal.test"
    for marker in ("[email]", "[phone]", "[card]", "[redacted]"):
        assert marker in record["message"]


def test_canaries_in_the_arguments(log_lines):
    logging.getLogger("portal.test").info(
        "user %s phone %s card %s password=%s token %s", EMAIL, PHONE, CARD, PASSWORD, TOKEN
    )
    [record] = assert_clean(log_lines())
    assert record["message"].startswith("user [email] phone [phone] card [card]")


@pytest.mark.parametrize(
    "args",
    [
        ({"email": EMAIL, "phone": PHONE},),
        ({"password": PASSWORD},),
        ({"Authorization": f"Token {TOKEN}"},),
        ([EMAIL, CARD],),
    ],
)
def test_canaries_in_structured_arguments(log_lines, args):
    logging.getLogger("portal.test").info("payload %s", *args)
    assert_clean(log_lines())


@pytest.mark.parametrize(
    "text",
    [
        f"Authorization: Token {TOKEN}",
        f"Authorization: Bearer {TOKEN}",
        f"api_token={TOKEN}",
        f"access_token={TOKEN}&next=/",
        f'{{"password": "{PASSWORD}"}}',
        f"PASSWORD='{PASSWORD} with spaces'",
        "phone: 555-867-5309, card: 4242-4242-4242-4242",
        f"mailto:{EMAIL.upper()}",
    ],
)
def test_other_spellings_of_credentials_and_pii(log_lines, text):
    logging.getLogger("portal.test").error(text)
    assert_clean(log_lines())


def test_exception_text_is_not_logged(log_lines):
    logger = logging.getLogger("portal.test")
    try:
        raise ValueError(f"duplicate key value (email)=({EMAIL}) card {CARD} password={PASSWORD}")
    except ValueError:
        logger.exception("saving customer %s failed", EMAIL)
    [record] = assert_clean(log_lines())
    assert record["level"] == "ERROR"
    assert record["error"] == "ValueError (details redacted)"
    assert "Traceback" not in record["error"]


def test_exception_passed_as_argument_is_redacted(log_lines):
    exc = RuntimeError(f"lookup for {EMAIL} / {PHONE} failed")
    logging.getLogger("portal.test").error("task failed: %s", exc, exc_info=exc)
    assert_clean(log_lines())


def test_extra_fields_do_not_reach_the_line(log_lines):
    logging.getLogger("portal.test").info("created", extra={"customer_email": EMAIL, "card": CARD})
    [record] = assert_clean(log_lines())
    assert record["message"] == "created"


def test_percent_signs_after_redaction_do_not_break_formatting(log_lines):
    logging.getLogger("portal.test").info("progress 100%% for %s at 50%s", EMAIL, "%")
    [record] = assert_clean(log_lines())
    assert record["message"] == "progress 100% for [email] at 50%"


def test_request_id_is_the_requests(log_lines):
    seen = {}

    def view(request):
        logging.getLogger("portal.test").info("handling %s", EMAIL)
        seen["id"] = request.request_id
        return HttpResponse("ok")

    request = RequestFactory().get("/", HTTP_X_REQUEST_ID="req-12345678")
    response = RequestIdMiddleware(view)(request)
    assert response["X-Request-ID"] == "req-12345678"
    logging.getLogger("portal.test").info("outside any request")
    first, second = assert_clean(log_lines())
    assert first["request_id"] == seen["id"] == "req-12345678"
    assert second["request_id"] == "-"


def test_malformed_request_id_is_replaced(log_lines):
    def view(request):
        logging.getLogger("portal.test").info("handling")
        return HttpResponse("ok")

    hostile = f"{EMAIL}\nfake log line"
    response = RequestIdMiddleware(view)(RequestFactory().get("/", HTTP_X_REQUEST_ID=hostile))
    [record] = assert_clean(log_lines())
    assert record["request_id"] == response["X-Request-ID"]
    assert len(record["request_id"]) == 32


def test_console_stream_of_a_real_process_is_clean():
    """What the configured console handler writes to stderr in a fresh process."""
    code = (
        "import logging\n"
        "log = logging.getLogger('portal.test')\n"
        f"log.warning({CANARY_TEXT!r})\n"
        f"log.info('args %s %s %s', {EMAIL!r}, {PHONE!r}, {CARD!r})\n"
        "try:\n"
        f"    raise KeyError({PASSWORD!r} + ' ' + {EMAIL!r})\n"
        "except KeyError:\n"
        "    log.exception('boom %s', 'token ' + " + repr(TOKEN) + ")\n"
    )
    env = dict(os.environ, DJANGO_SETTINGS_MODULE="portal.settings", LOG_LEVEL="INFO")
    result = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", code],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("{")]
    records = assert_clean(lines)
    assert [r["level"] for r in records] == ["WARNING", "INFO", "ERROR"]
    assert records[2]["error"] == "KeyError (details redacted)"
    for canary in FORBIDDEN:
        assert canary not in result.stderr + result.stdout


# --- redact() and mask_value() as functions ------------------------------------------------


@pytest.mark.parametrize(
    "text,expected",
    [
        (f"contact {EMAIL} today", "contact [email] today"),
        ("First.Last+tag@sub.example.co.uk", "[email]"),
        (f"card {CARD}", "card [card]"),
        ("card 4242-4242-4242-4242", "card [card]"),
        ("card 4242424242424242", "card [card]"),
        ("amex 3782 822463 10005", "amex [card]"),
        (f"call {PHONE} now", "call [phone] now"),
        ("call (555) 867-5309", "call [phone]"),
        ("call 555.867.5309", "call [phone]"),
        ("tel:+15558675309", "tel:[phone]"),
        (f"password={PASSWORD}", "password=[redacted]"),
        (f"password: {PASSWORD}", "password: [redacted]"),
        (f"passwd {PASSWORD}", "passwd [redacted]"),
        (f"token {TOKEN}", "token [redacted]"),
        (f"secret={TOKEN}", "secret=[redacted]"),
        (f"Authorization: Token {TOKEN}", "Authorization: [redacted]"),
        (f"Authorization: Bearer {TOKEN}", "Authorization: [redacted]"),
        (f"api_token={TOKEN}", "api_token=[redacted]"),
        (f"{{'password': '{PASSWORD}'}}", "{'password': [redacted]}"),
        (f'{{"password": "{PASSWORD}"}}', '{"password": [redacted]}'),
        (f'PASSWORD="{PASSWORD} more"', "PASSWORD=[redacted]"),
    ],
)
def test_redact(text, expected):
    assert redact(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "GET /api/v1/customers/ 200",
        "customer 1234 updated by user 17",
        "took 12.5 ms",
        "2025-01-19T14:32:11Z export finished",
        "",
    ],
)
def test_redact_leaves_ordinary_text_alone(text):
    assert redact(text) == text


def test_mask_value_hides_values_but_keeps_absence():
    assert mask_value(EMAIL) == "[redacted]"
    assert mask_value(PHONE) == "[redacted]"
    assert mask_value("None") == "None"
    assert mask_value("") == ""
    assert mask_value(None) is None


_LOCAL = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789._+-", min_size=1, max_size=30)
_LABEL = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=12)


@given(local=_LOCAL, host=_LABEL, tld=st.sampled_from(["com", "org", "co.uk", "test", "io"]))
def test_redact_removes_any_plain_email(local, host, tld):
    email = f"{local}@{host}.{tld}"
    out = redact(f"sent to {email}, ok")
    assert email not in out
    assert f"@{host}" not in out


@given(
    digits=st.text(alphabet="0123456789", min_size=16, max_size=16),
    sep=st.sampled_from(["", " ", "-"]),
    before=st.sampled_from(["", "card ", "+1 555 867 5309 ", "order 12 "]),
)
def test_redact_removes_any_card_number(digits, sep, before):
    card = sep.join(digits[i : i + 4] for i in range(0, 16, 4))
    out = redact(f"{before}{card} end")
    # No four consecutive digits of the card survive, even next to other numbers.
    for i in range(13):
        assert digits[i : i + 4] not in out.replace(" ", "").replace("-", "")


@given(
    digits=st.text(alphabet="0123456789", min_size=10, max_size=10),
    style=st.sampled_from(["{a}-{b}-{c}", "({a}) {b}-{c}", "+1 {a} {b} {c}", "{a}.{b}.{c}", "{a}{b}{c}"]),
)
def test_redact_removes_any_phone_number(digits, style):
    phone = style.format(a=digits[:3], b=digits[3:6], c=digits[6:])
    out = redact(f"call {phone} please")
    assert digits[6:] not in out
    assert out.startswith("call [") and out.endswith("] please")
