"""The role × endpoint matrix, generated from accounts/policy.py.

Every named API route and every page route must have a row here (a new endpoint without one
fails ``test_every_route_has_a_row``); every admin model must be covered by a policy table or
an expectation below.  Each row asks the *policy* what each role should get, then makes the
real request for every role, anonymous included, and compares.
"""

from collections.abc import Callable
from dataclasses import dataclass

import pytest
from django.contrib import admin
from django.test import Client
from django.urls import URLResolver, get_resolver
from rest_framework.test import APIClient

from accounts import policy
from tests.conftest import token_client
from tests.factories import OrderFactory, PageViewFactory, ReportFactory, browser_login

ROLES = ["anonymous", "analyst", "manager", "admin", "executive", "dpo"]


def rows(user) -> bool:
    return policy.can(user, policy.Action.VIEW)


def exports(user) -> bool:
    return policy.can(user, policy.Action.EXPORT)


def privacy(right):
    return lambda user: policy.may_privacy(user, right)


def authenticated(user) -> bool:
    return True


@dataclass
class Row:
    """One API route: method, a path builder (from the fixture objects), the policy question,
    and the answer an allowed caller gets (400: the empty body reached validation)."""

    method: str
    path: Callable
    allowed: Callable
    ok: int = 200
    denied: int = 403


API: dict[str, Row] = {
    "customer-list": Row("get", lambda o: "/api/v1/customers/", rows),
    "customer-detail": Row("get", lambda o: f"/api/v1/customers/{o.own_customer}/", rows),
    "customer-reveal": Row("post", lambda o: f"/api/v1/customers/{o.own_customer}/reveal/", rows, ok=400),
    "order-list": Row("get", lambda o: "/api/v1/orders/", rows),
    "order-detail": Row("get", lambda o: f"/api/v1/orders/{o.own_order}/", rows),
    "pageview-list": Row("get", lambda o: "/api/v1/pageviews/", rows),
    "pageview-detail": Row("get", lambda o: f"/api/v1/pageviews/{o.own_pageview}/", rows),
    "report-list": Row("get", lambda o: "/api/v1/reports/", rows),
    "report-detail": Row("get", lambda o: f"/api/v1/reports/{o.own_report}/", rows),
    "report-run": Row("post", lambda o: f"/api/v1/reports/{o.own_report}/run/", rows),
    "report-share": Row("post", lambda o: f"/api/v1/reports/{o.own_report}/share/", rows, ok=(400, 403)),
    "export-list": Row("get", lambda o: "/api/v1/exports/", exports),
    "export-detail": Row("get", lambda o: "/api/v1/exports/00000000-0000-0000-0000-000000000000/", exports, ok=404),
    "export-download": Row(
        "get", lambda o: "/api/v1/exports/00000000-0000-0000-0000-000000000000/download/", exports, ok=404
    ),
    "access-grant-list": Row("get", lambda o: "/api/v1/access-grants/", authenticated),
    "access-grant-detail": Row("get", lambda o: "/api/v1/access-grants/999999/", authenticated, ok=404),
    "access-grant-approve": Row("post", lambda o: "/api/v1/access-grants/999999/approve/", authenticated, ok=404),
    "access-grant-refuse": Row("post", lambda o: "/api/v1/access-grants/999999/refuse/", authenticated, ok=404),
    "privacy-request-list": Row("post", lambda o: "/api/v1/privacy-requests/", privacy("intake"), ok=400),
    "privacy-request-detail": Row(
        "get", lambda o: "/api/v1/privacy-requests/999999/", privacy("read"), ok=404, denied=(403, 404)
    ),
    "pseudonymised-orders": Row(
        "get", lambda o: "/api/v1/pseudonymised-extract/orders/", policy.may_extract_pseudonymised
    ),
    "api-token-list": Row("get", lambda o: "/api/v1/auth/tokens/", authenticated),
    "api-token-detail": Row("delete", lambda o: "/api/v1/auth/tokens/notatoken/", authenticated, ok=404),
}
# Public by design: they authenticate the caller themselves or describe the API.
PUBLIC_API = {"api-token", "schema", "swagger-ui"}

# Browser pages: (path builder, policy question); denied roles get 403, anonymous the login page.
PAGES: dict[str, tuple[Callable, Callable]] = {
    "customers": (lambda o: "/customers/", rows),
    "customer": (lambda o: f"/customers/{o.own_customer}/", rows),
    "reports": (lambda o: "/reports/", rows),
    "report": (lambda o: f"/reports/{o.own_report}/", rows),
    "exports": (lambda o: "/exports/", exports),
}
# Pages covered by their own tests (forms, redirects, per-role dashboards) and public pages.
PAGES_ELSEWHERE = {
    "home": "tests/test_dashboards.py",
    "dashboard": "tests/test_dashboards.py",
    "customer-reveal": "tests/test_dashboards.py (POST form)",
    "export-start": "tests/test_dashboards.py (POST form)",
    "export": "tests/test_dashboards.py",
    "export-status": "tests/test_dashboards.py",
    "login": "public",
    "logout": "public",
    "health": "public",
    "mfa-enrol": "tests/test_mfa.py",
    "mfa-qr": "tests/test_mfa.py",
    "mfa-verify": "tests/test_mfa.py",
}


def walk(patterns, prefix=""):
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            yield from walk(pattern.url_patterns, prefix + str(pattern.pattern))
        else:
            yield prefix + str(pattern.pattern), pattern.name


def test_every_route_has_a_row():
    missing = []
    for route, name in walk(get_resolver().url_patterns):
        if route.startswith("admin/") or route.startswith("static/"):
            continue
        known = API if route.startswith("api/v1/") else {**PAGES, **PAGES_ELSEWHERE}
        if name not in known and name not in PUBLIC_API:
            missing.append(f"{name}: {route}")
    assert not missing, f"routes without a row in the role matrix: {missing}"


class Fixture:
    def __init__(self, org):
        self.org = org
        north = org.customers["North"]
        self.own_customer = north[0].pk
        self.own_order = OrderFactory(customer=north[0]).pk
        self.own_pageview = PageViewFactory(customer=north[0]).pk
        self.own_report = ReportFactory(owner=org.analyst, team=org.north).pk
        east = org.customers["East"]
        self.other_customer = east[0].pk
        self.other_order = OrderFactory(customer=east[0]).pk

    def user(self, role):
        return None if role == "anonymous" else getattr(self.org, role)


@pytest.fixture
def fx(org):
    return Fixture(org)


def as_set(value):
    return set(value) if isinstance(value, tuple) else {value}


@pytest.mark.parametrize("name", sorted(API))
def test_api_matrix(fx, name):
    row = API[name]
    for role in ROLES:
        user = fx.user(role)
        client = APIClient() if user is None else token_client(user)
        response = getattr(client, row.method)(row.path(fx), {}, format="json")
        if user is None:
            expected = {401}
        elif row.allowed(user):
            expected = as_set(row.ok)
        else:
            expected = as_set(row.denied)
        assert response.status_code in expected, f"{name} as {role}: {response.status_code}, expected {expected}"


@pytest.mark.parametrize(
    "path",
    [
        lambda fx: f"/api/v1/customers/{fx.other_customer}/",
        lambda fx: f"/api/v1/orders/{fx.other_order}/",
        lambda fx: f"/api/v1/customers/{fx.other_customer}/reveal/",
    ],
)
def test_out_of_scope_objects_are_404_for_team_scoped_roles(fx, path):
    for role in ("analyst", "manager"):
        client = token_client(fx.user(role))
        method = client.post if path(fx).endswith("reveal/") else client.get
        body = {"field": "email", "reason": "matrix check of scope rules"}
        assert method(path(fx), body, format="json").status_code == 404, role


@pytest.mark.parametrize("name", sorted(PAGES))
def test_page_matrix(fx, name):
    path_of, allowed = PAGES[name]
    for role in ROLES:
        user = fx.user(role)
        client = Client() if user is None else browser_login(user)
        response = client.get(path_of(fx))
        if user is None:
            assert response.status_code == 302 and "/accounts/login/" in response["Location"], name
        elif allowed(user):
            assert response.status_code == 200, f"{name} as {role}: {response.status_code}"
        else:
            assert response.status_code == 403, f"{name} as {role}: {response.status_code}"


# --- Admin ----------------------------------------------------------------------------------


def admin_expected(label: str, user) -> bool | None:
    """Whether ``user`` may open the model's changelist, from the policy (None: no rule known)."""
    if label in policy.ADMIN_SITE_MODELS or label in policy.ACCOUNT_SECURITY_ADMIN:
        return policy.AdminAction.VIEW in policy.admin_site_actions(user, label)
    staff = user.is_staff
    rules = {
        "datasets.customer": lambda: staff and rows(user),
        "datasets.order": lambda: staff and rows(user),
        "datasets.pageview": lambda: staff and rows(user),
        "datasets.report": lambda: staff and rows(user),
        "datasets.export": lambda: staff and exports(user),
        "datasets.accessgrant": lambda: staff and policy.may_decide_grant(user, user.department_id),
        "accounts.user": lambda: policy.may_manage_accounts(user),
        "accounts.team": lambda: policy.may_manage_accounts(user),
        "accounts.department": lambda: policy.may_manage_accounts(user),
    }
    rule = rules.get(label)
    return None if rule is None else bool(rule())


# Project admin models whose visibility follows policy functions of their own app, tested there.
ADMIN_ELSEWHERE_PREFIXES = ("audit.", "compliance.")


def test_every_admin_model_has_a_rule(org):
    unknown = [
        model._meta.label_lower
        for model in admin.site._registry
        if admin_expected(model._meta.label_lower, org.admin) is None
        and not model._meta.label_lower.startswith(ADMIN_ELSEWHERE_PREFIXES)
    ]
    assert not unknown, f"admin models without a policy rule: {unknown}"


def test_admin_matrix(fx):
    for role in ROLES:
        user = fx.user(role)
        client = Client() if user is None else browser_login(user)
        for model in admin.site._registry:
            label = model._meta.label_lower
            url = f"/admin/{model._meta.app_label}/{model._meta.model_name}/"
            response = client.get(url)
            if user is None or not user.is_staff:
                assert response.status_code == 302, f"{label} as {role}"
                continue
            expected = admin_expected(label, user)
            if expected is None:
                continue
            assert (response.status_code == 200) == expected, f"{label} as {role}: {response.status_code}"
