"""Helpers for the attack tests (``tests/test_attack_web.py`` and its siblings): routes from the URL resolver with
sample values in their parameters, browser clients that enforce CSRF, and a strict "does this
redirect stay on the portal" check written independently of the code under test."""

import html
import re
from collections.abc import Iterator
from urllib.parse import parse_qs, urljoin, urlsplit

from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, resolve

from tests.factories import browser_login

HOST = "testserver"
SAMPLE_UUID = "00000000-0000-4000-8000-000000000000"
# A value per converter, and per parameter name where the name says more than the converter.
_BY_CONVERTER = {"int": "1", "rowid": "1", "path": "1", "str": "1", "slug": "analyst", "uuid": SAMPLE_UUID}
_BY_NAME = {"action": "approve", "token_id": "0" * 16, "app_label": "accounts", "url": "no-such-page/"}
# Parameters that name one object: the routes the IDOR tests must cover.
OBJECT_PARAMETERS = frozenset({"pk", "id", "object_id", "token_id", "package_id"})


def walk(patterns=None, prefix: str = "", namespace: str = "") -> Iterator[tuple[str, str, URLPattern]]:
    """(route, qualified name, pattern) for every URL pattern the resolver knows."""
    for pattern in get_resolver().url_patterns if patterns is None else patterns:
        if isinstance(pattern, URLResolver):
            inner = f"{namespace}{pattern.namespace}:" if pattern.namespace else namespace
            yield from walk(pattern.url_patterns, prefix + str(pattern.pattern), inner)
        else:
            yield prefix + str(pattern.pattern), f"{namespace}{pattern.name}", pattern


def parameters(route: str) -> set[str]:
    """The names of a route's parameters (path converters and regex groups)."""
    return set(re.findall(r"\(\?P<(\w+)>", route)) | set(re.findall(r"<(?:\w+:)?(\w+)>", route))


def _group_sample(match) -> str:
    """A value for a regex group: by its name, else the first sample its expression accepts."""
    name, expression = match.groups()
    candidates = [_BY_NAME.get(name, ""), "1", SAMPLE_UUID, "a"]
    return next(c for c in candidates if c and re.fullmatch(expression, c))


def concrete_path(route: str) -> str:
    """A request path for the route, with sample values; it resolves to that very route."""
    path = re.sub(r"\(\?P<(\w+)>([^)]*)\)", _group_sample, route)
    path = re.sub(r"<(?:(\w+):)?(\w+)>", lambda m: _BY_NAME.get(m.group(2)) or _BY_CONVERTER[m.group(1) or "str"], path)
    path = "/" + path.replace("^", "").replace("$", "")
    resolved = resolve(path).route.replace("^", "").replace("$", "")
    assert resolved == route.replace("^", "").replace("$", ""), f"{path} does not resolve to {route}"
    return path


def browser_routes() -> list[tuple[str, str]]:
    """(route, name) of every page that is not the token API: portal pages, sign-in, admin."""
    return [(route, name) for route, name, _ in walk() if not route.startswith("api/")]


def api_routes() -> list[tuple[str, str]]:
    return [(route, name) for route, name, _ in walk() if route.startswith("api/")]


# --- CSRF -------------------------------------------------------------------------------------


def csrf_enforcing(user) -> Client:
    """A browser signed in as ``user`` (password and, where needed, the second factor) whose
    later requests are CSRF-checked like a real browser's."""
    signed_in = browser_login(user)
    client = Client(enforce_csrf_checks=True)
    client.cookies = signed_in.cookies
    return client


def csrf_token(client: Client) -> str:
    """A valid token for the client's CSRF cookie (a page with a form sets the cookie)."""
    if "csrftoken" not in client.cookies:
        client.get("/accounts/login/")
    return client.cookies["csrftoken"].value


def is_csrf_refusal(response) -> bool:
    """Django's CSRF failure page or DRF's "CSRF Failed" answer (not some other 403)."""
    return response.status_code == 403 and b"CSRF" in response.content


# --- Redirects ----------------------------------------------------------------------------------

_CONTROL = re.compile(r"[\x00-\x20\x7f]")


def offsite(location: str, base: str = f"http://{HOST}/") -> bool:
    """Whether a browser following ``location`` (from a page at ``base``) would leave the portal.

    Browsers drop tabs and newlines anywhere and spaces at the ends, read a backslash as a slash
    in http(s) URLs, collapse any run of slashes after the scheme, and treat ``https:host`` as
    absolute: all of that is undone here before the host is compared."""
    cleaned = _CONTROL.sub("", location).replace("\\", "/")
    if re.match(r"^/{2,}", cleaned):
        return True  # scheme-relative: another host
    parts = urlsplit(cleaned)
    if parts.scheme:
        if parts.scheme.lower() not in ("http", "https"):
            return True  # javascript:, data:, ftp: ...
        return parts.netloc.lower() != HOST
    target = urlsplit(urljoin(base, cleaned))
    return target.netloc.lower() != HOST


def next_values(location: str) -> list[str]:
    """``next`` values carried inside a redirect (the next step redirects there)."""
    return parse_qs(urlsplit(location).query).get("next", [])


def assert_stays_on_site(response, context: str = "") -> None:
    """A response that redirects goes to the portal, and so does every ``next`` it carries on;
    a page that renders carries no off-site ``next``/link target."""
    if response.status_code in (301, 302, 303, 307, 308):
        location = response["Location"]
        assert not offsite(location), f"{context}: redirects off-site to {location!r}"
        for value in next_values(location):
            assert not offsite(value), f"{context}: carries an off-site next {value!r} in {location!r}"
    else:
        for value in link_targets(response):
            assert not offsite(value), f"{context}: the page links or posts off-site to {value!r}"


_TARGET_ATTRIBUTES = re.compile(r"""(?:href|action|formaction|src)\s*=\s*["']([^"']*)["']""", re.IGNORECASE)
_NEXT_FIELDS = re.compile(r"""<input[^>]*name=["']next["'][^>]*value=["']([^"']*)["']""", re.IGNORECASE)


def link_targets(response) -> list[str]:
    """Where a rendered page can send the browser: links, form actions and ``next`` fields."""
    if response.streaming or "html" not in response.get("Content-Type", ""):
        return []
    body = response.content.decode(errors="replace")
    return [html.unescape(v) for v in _TARGET_ATTRIBUTES.findall(body) + _NEXT_FIELDS.findall(body)]
