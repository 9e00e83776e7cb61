"""Support for the injection tests (``test_attack_injection.py``): the payload corpus, the
enumeration of the API (from the OpenAPI schema) and of the forms a page renders (from its
HTML), valid-looking values to carry the payloads, and the per-response checks.
"""

import json
import re
from dataclasses import dataclass, field
from html.parser import HTMLParser
from urllib.parse import parse_qsl, urlsplit

from django.db import transaction

# --- The corpus -------------------------------------------------------------------------------
SQLI_PAYLOADS = (
    "' OR '1'='1",
    "' OR 1=1 --",
    '" OR ""="',
    "1 OR 1=1",
    "1) OR (1=1",
    "'; DROP TABLE datasets_customer; --",
    "1' UNION SELECT NULL, email, name FROM datasets_customer --",
    "%' OR email LIKE '%",
    "x\x00' OR '1'='1",  # a NUL byte: PostgreSQL text refuses it, so the portal must refuse it first
    "99999999999999999999999",  # beyond bigint
)
XSS_PAYLOADS = (
    "<script>alert(1)</script>",
    '"><img src=x onerror=alert(1)>',
    "'><svg onload=alert(1)>",
    "</script><script>alert(2)</script>",
    "</title><iframe src=javascript:alert(3)>",
    "javascript:alert(4)",
)
PAYLOADS = SQLI_PAYLOADS + XSS_PAYLOADS
# Built-in Django admin list filters, ordering and paging (well-trodden code) get a short corpus;
# the project's own filters and every search box get the whole one.
SHORT_PAYLOADS = ("' OR '1'='1", "x\x00' OR '1'='1", "99999999999999999999999", '"><img src=x onerror=alert(1)>')
# Django's own admin list filters, ordering and paging (the same code on every changelist, and
# not echoing what they refuse): the quote that would reach SQL.  NUL bytes have their own check.
ADMIN_BUILTIN_PAYLOADS = ("' OR '1'='1",)
# Inside JSON objects (a report definition, export filters), where values and keys reach the
# ORM through allow-lists: the SQL payloads and one markup payload, in every nested value and key.
NESTED_PAYLOADS = (*SQLI_PAYLOADS, "<script>alert(1)</script>")

FREE_TEXT_INPUTS = frozenset({"text", "email", "password", "search", "textarea", "url", "tel"})


def corpus_for_schema(schema: dict) -> tuple[str, ...]:
    """The whole corpus for free text (a string of no fixed format, or untyped JSON); the short
    one for typed values (integers, booleans, dates, choices), which a type check turns away."""
    if schema.get("enum") or schema.get("type") in ("integer", "number", "boolean"):
        return SHORT_PAYLOADS
    if schema.get("format") in ("date", "date-time", "uuid"):
        return SHORT_PAYLOADS
    return PAYLOADS


def corpus_for_input(kind: str) -> tuple[str, ...]:
    """Per HTML input type: free-text boxes get the whole corpus, dates, numbers, hidden ids and
    choices the short one."""
    return PAYLOADS if kind in FREE_TEXT_INPUTS else SHORT_PAYLOADS


# Strings that must never reach an HTML page verbatim: the payloads that carry markup or quotes
# (a payload of letters and digits is harmless verbatim).
_MARKUP = re.compile(r"[<>\"']")
UNESCAPED_MARKERS = tuple(p for p in PAYLOADS if _MARKUP.search(p) and "\x00" not in p)
JSON_SCRIPT = re.compile(r'<script[^>]*type="application/json"[^>]*>.*?</script>', re.S | re.I)

# --- Canary customers: one per team, distinctive in every field that a role may see ----------


def canary_values(team_name: str) -> dict:
    key = team_name.lower()
    return {
        "name": f"Quokka {team_name} Canary",
        "email": f"quokka.{key}@canary-{key}.example",
        "phone": "+1-555-010-0000",
        "card_last4": "0000",
        "card_token": f"tok_canary_{key}",
    }


def canary_strings(team_name: str) -> tuple[str, ...]:
    """What would betray a canary row, masked or not (a masked email keeps its domain)."""
    values = canary_values(team_name)
    return (values["name"], values["email"], values["email"].partition("@")[2], values["card_token"])


# --- Checking one response --------------------------------------------------------------------


def body_text(response) -> str:
    content = b"".join(response.streaming_content) if getattr(response, "streaming", False) else response.content
    return content.decode("utf-8", "replace")


def response_problems(response, *, forbidden=(), api: bool = False) -> list[str]:
    """Everything wrong with one response: a 5xx, a canary, unescaped markup, a wrong type."""
    problems = []
    if response.status_code >= 500:
        problems.append(f"status {response.status_code}")
    body = body_text(response)
    lowered = body.lower()
    for canary in forbidden:
        if canary.lower() in lowered:
            problems.append(f"leaks {canary!r}")
    content_type = response.get("Content-Type", "")
    if content_type.startswith("text/html"):
        outside_json = JSON_SCRIPT.sub("", body)
        for marker in UNESCAPED_MARKERS:
            if marker in outside_json:
                problems.append(f"unescaped {marker!r} in HTML")
        for block in JSON_SCRIPT.findall(body):
            inner = block.split(">", 1)[1].rsplit("</script", 1)[0]
            if "<" in inner:
                problems.append("markup inside a json_script block")
        problems += _ScriptScanner.problems_in(body)
    if api and response.status_code != 204:
        problems += _api_type_problems(response, content_type, body)
    return problems


class _ScriptScanner(HTMLParser):
    """Script that a payload could have smuggled into real markup: inline event handlers,
    ``javascript:`` URLs, a script block that calls the payloads' ``alert``."""

    URL_ATTRIBUTES = frozenset({"href", "src", "action", "formaction", "data", "srcdoc"})

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.found: list[str] = []
        self._in_script = False

    @classmethod
    def problems_in(cls, body: str) -> list[str]:
        scanner = cls()
        scanner.feed(body)
        return scanner.found

    def handle_starttag(self, tag, attrs):
        for name, value in attrs:
            if name.startswith("on"):
                self.found.append(f"inline event handler <{tag} {name}=...>")
            elif name in self.URL_ATTRIBUTES and (value or "").strip().lower().startswith("javascript:"):
                self.found.append(f"javascript: URL in <{tag} {name}>")
        self._in_script = tag == "script" and dict(attrs).get("type") != "application/json"

    def handle_endtag(self, tag):
        if tag == "script":
            self._in_script = False

    def handle_data(self, data):
        if self._in_script and "alert(" in data:
            self.found.append("a <script> block calls alert()")


def _api_type_problems(response, content_type: str, body: str) -> list[str]:
    if response.get("X-Content-Type-Options") != "nosniff":
        return ["no X-Content-Type-Options: nosniff"]
    if content_type.startswith("application/json"):
        try:
            json.loads(body)
        except ValueError:
            return ["application/json body is not JSON"]
        return []
    # Files on purpose: the pseudonymised CSV extract, an export download (attachments only).
    if response.status_code == 200 and "attachment" in response.get("Content-Disposition", ""):
        return []
    return [f"API answer typed {content_type!r}, not application/json"]


def result_ids(response):
    """Row ids of a JSON list answer (paginated or not), or the data rows of a CSV; else None."""
    content_type = response.get("Content-Type", "")
    if content_type.startswith("text/csv"):
        return {line for line in body_text(response).splitlines()[1:] if line}
    if not content_type.startswith("application/json"):
        return None
    data = json.loads(body_text(response))
    rows = data.get("results") if isinstance(data, dict) else data
    if not isinstance(rows, list):
        return None
    return {row.get("id") if isinstance(row, dict) else json.dumps(row) for row in rows}


def rolled_back(send, *args, **kwargs):
    """``send(*args, **kwargs)`` in a savepoint that is rolled back: each payload meets the same
    state (a pending grant stays pending, a report unchanged, no failed login counted)."""
    with transaction.atomic():
        response = send(*args, **kwargs)
        transaction.set_rollback(True)
    return response


# --- The API, from its OpenAPI schema ---------------------------------------------------------


@dataclass(frozen=True, eq=False)
class ApiOperation:
    method: str
    path: str  # as in the schema, with {name} placeholders
    query_params: dict  # name -> resolved JSON schema
    path_params: tuple[str, ...]
    body: dict  # field name -> resolved JSON schema (read-only fields left out)

    @property
    def label(self) -> str:
        return f"{self.method} {self.path}"

    @property
    def resource(self) -> str:
        """The first path segment after /api/v1/ (e.g. ``reports``)."""
        return self.path.removeprefix("/api/v1/").split("/", 1)[0]


def _resolve(schema: dict, components: dict) -> dict:
    if "$ref" in schema:
        return _resolve(components[schema["$ref"].rsplit("/", 1)[-1]], components)
    for combinator in ("allOf", "oneOf", "anyOf"):
        if combinator in schema:
            options = [_resolve(s, components) for s in schema[combinator]]
            typed = [o for o in options if o.get("enum") or o.get("type")]
            merged = dict(typed[0] if typed else {})
            merged.update({k: v for k, v in schema.items() if k != combinator})
            return merged
    return schema


def api_operations() -> list[ApiOperation]:
    """Every operation of the public schema (what ``GET /api/schema/`` serves)."""
    from drf_spectacular.generators import SchemaGenerator

    document = SchemaGenerator().get_schema(request=None, public=True)
    components = document.get("components", {}).get("schemas", {})
    operations = []
    for path, item in sorted(document["paths"].items()):
        for method, operation in item.items():
            if method not in ("get", "post", "put", "patch", "delete"):
                continue
            params = operation.get("parameters", [])
            body = {}
            content = operation.get("requestBody", {}).get("content", {})
            json_body = content.get("application/json", {}).get("schema")
            if json_body:
                resolved = _resolve(json_body, components)
                for name, prop in resolved.get("properties", {}).items():
                    if not prop.get("readOnly"):
                        body[name] = _resolve(prop, components)
            operations.append(
                ApiOperation(
                    method.upper(),
                    path,
                    {p["name"]: _resolve(p.get("schema", {}), components) for p in params if p["in"] == "query"},
                    tuple(p["name"] for p in params if p["in"] == "path"),
                    body,
                )
            )
    return operations


def sample_value(name: str, schema: dict, overrides: dict):
    """A valid-looking value for a body field: the world's override, else one from its schema."""
    if name in overrides:
        return overrides[name]
    enum = [v for v in schema.get("enum", []) if v not in ("", None)]
    if enum:
        return enum[0]
    kind = schema.get("type")
    if kind == "integer":
        return 1
    if kind == "boolean":
        return False
    if kind == "object":
        return {}
    if kind == "array":
        return []
    if schema.get("format") == "date":
        return "2024-01-15"
    if schema.get("format") == "email":
        return "subject@example.test"
    return "A legitimate value for injection testing"


def payload_bodies(base: dict, field_name: str, payload: str):
    """(where, body) pairs that carry the payload in one field: as the field's value and, for an
    object field, in each of its (nested) values and as a key."""
    yield field_name, {**base, field_name: payload}
    value = base.get(field_name)
    if isinstance(value, dict):
        for where, nested in _nested_payloads(value, payload, field_name):
            yield where, {**base, field_name: nested}


def _nested_payloads(value: dict, payload: str, where: str):
    for key, inner in value.items():
        if isinstance(inner, dict):
            for deeper, nested in _nested_payloads(inner, payload, f"{where}.{key}"):
                yield deeper, {**value, key: nested}
        else:
            yield f"{where}.{key}", {**value, key: payload}
    yield f"{where}.<key>", {**value, payload: "x"}


# --- Pages: forms as the browser sees them ----------------------------------------------------


@dataclass
class PageForm:
    page: str
    action: str
    method: str
    fields: dict = field(default_factory=dict)
    types: dict = field(default_factory=dict)

    @property
    def key(self) -> tuple:
        return (self.action, self.method, tuple(sorted(self.fields)))


class _FormParser(HTMLParser):
    def __init__(self, page: str):
        super().__init__(convert_charrefs=True)
        self.page = page
        self.forms: list[PageForm] = []
        self._form: PageForm | None = None
        self._select: str | None = None

    def handle_starttag(self, tag, attrs):
        attributes = {k: v or "" for k, v in attrs}
        if tag == "form":
            action = urlsplit(attributes.get("action") or self.page).path or self.page
            self._form = PageForm(self.page, action, (attributes.get("method") or "get").lower())
            self.forms.append(self._form)
            return
        if tag == "a" and "?" in attributes.get("href", ""):
            self._link(attributes["href"])
        if self._form is None:
            return
        if tag == "option" and self._select:
            current = self._form.fields.get(self._select)
            if current is None or "selected" in attributes:
                self._form.fields[self._select] = attributes.get("value", "")
            return
        name = attributes.get("name")
        if not name:
            return
        if tag == "input":
            kind = (attributes.get("type") or "text").lower()
            if kind in ("submit", "button", "image", "reset"):
                return
            if kind in ("checkbox", "radio") and "checked" not in attributes:
                self._form.types.setdefault(name, kind)
                return
            self._form.fields.setdefault(name, attributes.get("value", ""))
            self._form.types.setdefault(name, kind)
        elif tag == "textarea":
            self._form.fields.setdefault(name, "")
            self._form.types.setdefault(name, "textarea")
        elif tag == "select":
            self._select = name
            self._form.fields[name] = None
            self._form.types[name] = "select"

    def _link(self, href: str):
        """A link back to this page with a query (a pager): its parameters are inputs too."""
        parts = urlsplit(href)
        if (parts.path or self.page) != self.page or parts.netloc:
            return
        values = dict(parse_qsl(parts.query, keep_blank_values=True))
        if values:
            self.forms.append(PageForm(self.page, self.page, "get", values, dict.fromkeys(values, "link")))

    def handle_endtag(self, tag):
        if tag == "form":
            self._form = None
        elif tag == "select":
            self._select = None


def forms_on(page: str, body: str) -> list[PageForm]:
    parser = _FormParser(page)
    parser.feed(body)
    for form in parser.forms:
        form.fields = {k: ("" if v is None else v) for k, v in form.fields.items()}
    return parser.forms


FILLERS = {
    "email": "nobody@example.test",
    "date": "2024-01-15",
    "number": "1",
    "text": "A legitimate reason for this request",
    "textarea": "A legitimate reason for this request",
    "password": "not-the-password",  # pragma: allowlist secret
}


def base_values(form: PageForm) -> dict:
    """The form as a person would send it: rendered values kept, empty text boxes filled."""
    values = {}
    for name, value in form.fields.items():
        if name == "csrfmiddlewaretoken":
            continue
        kind = form.types.get(name, "text")
        values[name] = value if value or kind in ("hidden", "select") else FILLERS.get(kind, FILLERS["text"])
    return values
