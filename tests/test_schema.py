"""The OpenAPI schema and the Swagger UI page: reachable, complete, and served without any CDN."""

import json
import re
from html.parser import HTMLParser
from urllib.parse import urlsplit

import pytest
import yaml
from rest_framework.test import APIClient

from accounts.policy import Role
from tests.conftest import token_client
from tests.factories import make_user

SCHEMA = "/api/schema/"
DOCS = "/api/docs/"
PATHS = {"/api/v1/customers/", "/api/v1/customers/{id}/", "/api/v1/auth/token/"}

pytestmark = pytest.mark.django_db


def schema_of(response) -> dict:
    assert response.status_code == 200, response.content
    if response["Content-Type"].startswith("application/json"):
        return json.loads(response.content)
    return yaml.safe_load(response.content)


def test_schema_is_reachable_anonymously_as_yaml():
    response = APIClient().get(SCHEMA)
    assert response["Content-Type"].startswith("application/vnd.oai.openapi")
    document = schema_of(response)
    assert document["openapi"].startswith("3.")
    assert document["info"]["title"] == "Secure data portal API"
    assert PATHS <= set(document["paths"])


def test_schema_as_json():
    response = APIClient().get(SCHEMA, HTTP_ACCEPT="application/json")
    assert response["Content-Type"].startswith("application/json")
    assert PATHS <= set(schema_of(response)["paths"])


def test_schema_is_the_same_for_an_authenticated_user():
    client = token_client(make_user(Role.ANALYST))
    authenticated = schema_of(client.get(SCHEMA, HTTP_ACCEPT="application/json"))
    anonymous = schema_of(APIClient().get(SCHEMA, HTTP_ACCEPT="application/json"))
    assert set(authenticated["paths"]) == set(anonymous["paths"])
    for path in PATHS:
        assert authenticated["paths"][path] == anonymous["paths"][path]


def test_schema_describes_the_operations():
    document = schema_of(APIClient().get(SCHEMA, HTTP_ACCEPT="application/json"))
    token = document["paths"]["/api/v1/auth/token/"]
    assert set(token) == {"post"}  # only POST issues tokens
    body = token["post"]["requestBody"]["content"]["application/json"]["schema"]
    request = document["components"]["schemas"][body["$ref"].rsplit("/", 1)[-1]]
    assert {"email", "password"} <= set(request["required"])
    assert request["properties"]["password"].get("writeOnly") is True
    response_ref = token["post"]["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
    assert set(document["components"]["schemas"][response_ref.rsplit("/", 1)[-1]]["properties"]) == {
        "token",
        "expiry",
    }
    customers = document["paths"]["/api/v1/customers/"]
    assert set(customers) == {"get"}  # the customer API is read-only
    assert set(document["paths"]["/api/v1/customers/{id}/"]) == {"get"}
    assert "email" in {p["name"] for p in customers["get"]["parameters"]}
    # The token endpoint takes no authentication; the customer list requires it.
    assert token["post"].get("security") in ([{}], [])
    assert customers["get"].get("security")


def test_schema_leaks_no_data():
    response = APIClient().get(SCHEMA, HTTP_ACCEPT="application/json")
    text = response.content.decode()
    assert "@example" not in text
    assert "secret" not in text.lower()


class _AssetCollector(HTMLParser):
    def __init__(self):
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag, attrs):
        for name, value in attrs:
            if name in ("src", "href", "action", "data", "poster", "srcset") and value:
                self.urls.append(value)


def test_docs_page_loads_only_local_assets():
    response = APIClient().get(DOCS)
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")
    html = response.content.decode()
    collector = _AssetCollector()
    collector.feed(html)
    assert collector.urls, "the page loads its script and stylesheet"
    for url in collector.urls:
        parts = urlsplit(url)
        assert not parts.scheme and not parts.netloc, url  # relative to this host only
        assert url.startswith("/"), url
    assert any("swagger-ui-bundle.js" in url for url in collector.urls)
    assert any(url.endswith(".css") for url in collector.urls)
    # No absolute URL anywhere in the page, in markup or inline script.
    assert not re.search(r"""(?i)(https?:)?//[a-z0-9.-]+\.[a-z]{2,}""", html), html
    assert "cdn" not in html.lower()


def test_docs_script_points_at_the_local_schema_only():
    html = APIClient().get(DOCS).content.decode()
    collector = _AssetCollector()
    collector.feed(html)
    scripts = [url for url in collector.urls if url.startswith(DOCS)]
    # The page's own script (split out of the HTML so a strict CSP needs no inline script).
    inline_schema_url = "/api/schema/" in html
    assert scripts or inline_schema_url
    for url in scripts:
        response = APIClient().get(url)
        assert response.status_code == 200
        assert "javascript" in response["Content-Type"]
        script = response.content.decode()
        assert "/api/schema/" in script
        assert not re.search(r"(?i)https?://", script), script


def test_docs_assets_are_served_by_the_portal(settings):
    html = APIClient().get(DOCS).content.decode()
    collector = _AssetCollector()
    collector.feed(html)
    static = [url for url in collector.urls if url.startswith("/" + settings.STATIC_URL.lstrip("/"))]
    assert static
    from django.contrib.staticfiles import finders

    for url in static:
        relative = url.split(settings.STATIC_URL, 1)[1]
        assert finders.find(relative), url


def test_docs_page_is_not_cached():
    assert APIClient().get(DOCS)["Cache-Control"] == "no-store"


def test_every_operation_documents_the_outage_answer():
    """A database restart or a queue outage answers 503 (portal/outage.py): clients can see it coming."""
    paths = schema_of(APIClient().get(SCHEMA))["paths"]
    operations = [(path, method, op) for path, item in paths.items() for method, op in item.items()]
    assert len(operations) > 20
    missing = [f"{method.upper()} {path}" for path, method, op in operations if "503" not in op["responses"]]
    assert missing == []
