"""Attacks on object scope: IDOR (a valid id of someone else's object) and mass assignment
(writing fields the caller may not write).

IDOR: every route with an object id (API, pages, admin) comes from the URL resolver and must have
a row below or a stated reason; each row sends a user of another team or department at a real
object outside their scope, and the answer is 404 -- the same answer, byte for byte, as for an id
that does not exist (no existence oracle).  ``tests/test_role_matrix.py`` already proves this for
the customer and order details and the customer reveal (API), ``tests/test_datasets_access.py``
for report edits and deletes and the order detail, ``tests/test_tokens_manage.py`` for tokens,
``tests/test_exports.py`` for another admin's download link; the rows here cover every route.

Mass assignment: read-only and privileged fields (team, blind indexes, owner/requester, status,
workflow dates, staff and superuser flags, token lifetime) sent to every writing endpoint are
refused with 400 or ignored, and the stored row keeps its values.
"""

import uuid
from dataclasses import dataclass
from datetime import timedelta

import pytest
from django.apps import apps
from django.conf import settings
from django.contrib import admin
from django.contrib.auth.models import Group
from django.contrib.contenttypes.models import ContentType
from django.test import Client
from django.utils import timezone
from knox.models import AuthToken
from rest_framework.test import APIClient

from accounts import selectors, services
from accounts.models import AccessReview, User
from accounts.policy import Role
from audit.choices import AuditAction
from audit.models import AuditEvent
from compliance import requests
from compliance.models import SubjectRequest
from compliance.requests_choices import RequestStatus
from datasets import blind_index, exports
from datasets.models import AccessGrant, Customer, Export, Order, PageView, Report
from portal.security_context import scoped
from tests.attack_web_support import OBJECT_PARAMETERS, parameters, walk
from tests.conftest import BOTH_DATABASES, token_client
from tests.factories import PASSWORD, OrderFactory, PageViewFactory, ReportFactory, browser_login, make_user

pytestmark = pytest.mark.django_db(databases=BOTH_DATABASES)

MISSING_ID = "999999999"


class World:
    """The org plus one object of each kind outside the Sales department's scope (and a few of
    other users), and a second manager (Ops) for reviews."""

    def __init__(self, org):
        self.org = org
        east = org.customers["East"][0]
        self.customer = east
        self.order = OrderFactory(customer=east)
        self.pageview = PageViewFactory(customer=east)
        self.report = ReportFactory(owner=org.other_analyst, team=org.east)
        self.export = exports.start(org.admin, {"dataset": "customers", "format": "csv", "purpose": "Admin's own"})
        self.grant = services_request_grant(org.other_analyst, org.west)
        self.token, self.token_value = _issued(org.other_analyst)
        self.ops_manager = make_user(Role.MANAGER, department=org.ops)
        self.review = AccessReview.objects.create(
            reviewer=self.ops_manager,
            period="2026-Q1",
            period_start=timezone.localdate(),
            due_on=timezone.localdate() + timedelta(days=30),
        )
        self.gdpr_unrelated_event = AuditEvent.objects.filter(action=AuditAction.LOGIN).first() or _login_event(org)


def services_request_grant(user, team) -> AccessGrant:
    from datasets import services as dataset_services

    return dataset_services.request_grant(
        user, kind="team_access", reason="Cover for a colleague on holiday", team_id=team.pk
    )


def _issued(user):
    instance, token = services.issue_token(user, mfa_verified=False)
    return instance, token


def _login_event(org) -> AuditEvent:
    browser_login(org.analyst)
    return AuditEvent.objects.filter(action=AuditAction.LOGIN).first()


@pytest.fixture
def world(org):
    return World(org)


@dataclass
class Attempt:
    """Who tries, how, on what (path with ``{id}`` for the object's id), and the object's id."""

    who: tuple[str, ...]
    method: str
    path: str
    target: str
    body: dict | None = None


def _id(world, target: str) -> str:
    value = {
        "customer": lambda: world.customer.pk,
        "order": lambda: world.order.pk,
        "pageview": lambda: world.pageview.pk,
        "report": lambda: world.report.pk,
        "export": lambda: world.export.pk,
        "grant": lambda: world.grant.pk,
        "token": lambda: selectors.token_public_id(world.token),
    }[target]()
    return str(value)


def _missing(target: str) -> str:
    return {"export": str(uuid.uuid4()), "token": "f" * 16}.get(target, MISSING_ID)


SALES = ("analyst", "manager")
REVEAL = {"field": "email", "reason": "an IDOR attempt"}
# API routes with an object id: name -> attempts.  The users are of the Sales department (or, for
# requester-only objects, anyone but the requester).
API_IDOR: dict[str, list[Attempt]] = {
    "customer-detail": [Attempt(SALES, "get", "/api/v1/customers/{id}/", "customer")],
    "customer-reveal": [Attempt(SALES, "post", "/api/v1/customers/{id}/reveal/", "customer", REVEAL)],
    "order-detail": [Attempt(SALES, "get", "/api/v1/orders/{id}/", "order")],
    "pageview-detail": [Attempt(SALES, "get", "/api/v1/pageviews/{id}/", "pageview")],
    "report-detail": [
        Attempt(SALES, "get", "/api/v1/reports/{id}/", "report"),
        Attempt(SALES, "patch", "/api/v1/reports/{id}/", "report", {"title": "taken over"}),
        Attempt(SALES, "put", "/api/v1/reports/{id}/", "report", {"title": "taken over"}),
        Attempt(SALES, "delete", "/api/v1/reports/{id}/", "report"),
    ],
    "report-run": [Attempt(SALES, "post", "/api/v1/reports/{id}/run/", "report")],
    "report-share": [Attempt(SALES, "post", "/api/v1/reports/{id}/share/", "report", {"user": 1})],
    "export-detail": [Attempt(("manager",), "get", "/api/v1/exports/{id}/", "export")],
    "export-download": [Attempt(("manager",), "get", "/api/v1/exports/{id}/download/?token=x", "export")],
    "access-grant-detail": [Attempt(SALES, "get", "/api/v1/access-grants/{id}/", "grant")],
    "access-grant-approve": [Attempt(SALES, "post", "/api/v1/access-grants/{id}/approve/", "grant", {"note": "x"})],
    "access-grant-refuse": [Attempt(SALES, "post", "/api/v1/access-grants/{id}/refuse/", "grant", {"note": "x"})],
    "api-token-detail": [
        Attempt(("analyst", "manager", "dpo"), "get", "/api/v1/auth/tokens/{id}/", "token"),
        Attempt(("analyst", "manager", "dpo"), "delete", "/api/v1/auth/tokens/{id}/", "token"),
    ],
}
API_NOT_SCOPED = {
    # The READ right reads every request (DPO, Admin); everyone else is refused by role (403),
    # whatever the id: tests/test_role_matrix.py.
    "privacy-request-detail": "no per-object scope: all or nothing by the privacy rights",
}

PAGE_IDOR: dict[str, list[Attempt]] = {
    "dashboards:customer": [Attempt(SALES, "get", "/customers/{id}/", "customer")],
    "dashboards:customer-reveal": [
        Attempt(SALES, "post", "/customers/{id}/reveal/", "customer", {"field": "email", "reason": "IDOR attempt"})
    ],
    "dashboards:report": [Attempt(SALES, "get", "/reports/{id}/", "report")],
    "dashboards:export": [Attempt(("manager",), "get", "/exports/{id}/", "export")],
    "dashboards:export-status": [Attempt(("manager",), "get", "/exports/{id}/status.json", "export")],
}


def _user(world, who: str):
    return getattr(world.org, who)


def _send(client, attempt: Attempt, object_id: str):
    path = attempt.path.replace("{id}", object_id)
    method = getattr(client, attempt.method)
    if attempt.body is None:
        return method(path)
    if isinstance(client, APIClient):
        return method(path, attempt.body, format="json")
    return method(path, attempt.body)


def test_every_api_and_page_route_with_an_object_id_has_an_idor_row():
    missing = []
    for route, name, _ in walk():
        if route.startswith("admin/") or not parameters(route) & OBJECT_PARAMETERS:
            continue
        known = {**API_IDOR, **API_NOT_SCOPED} if route.startswith("api/") else PAGE_IDOR
        if name not in known:
            missing.append(f"{name}: {route}")
    assert not missing, f"routes with an object id and no IDOR row: {missing}"


@pytest.mark.parametrize("name", sorted(API_IDOR))
def test_api_objects_out_of_scope_are_404_like_missing_ones(world, name):
    for attempt in API_IDOR[name]:
        for who in attempt.who:
            client = token_client(_user(world, who))
            real = _send(client, attempt, _id(world, attempt.target))
            missing = _send(client, attempt, _missing(attempt.target))
            label = f"{name} {attempt.method} as {who}"
            assert real.status_code == 404, f"{label}: {real.status_code} {real.content[:200]}"
            assert missing.status_code == 404, f"{label} (missing id): {missing.status_code}"
            assert real.content == missing.content, f"{label}: out of scope and missing differ"
    _assert_untouched(world)


@pytest.mark.parametrize("name", sorted(PAGE_IDOR))
def test_page_objects_out_of_scope_are_404_like_missing_ones(world, name):
    for attempt in PAGE_IDOR[name]:
        for who in attempt.who:
            client = browser_login(_user(world, who))
            real = _send(client, attempt, _id(world, attempt.target))
            missing = _send(client, attempt, _missing(attempt.target))
            label = f"{name} {attempt.method} as {who}"
            assert real.status_code == 404, f"{label}: {real.status_code}"
            assert missing.status_code == 404, f"{label} (missing id): {missing.status_code}"
    assert not AuditEvent.objects.filter(action=AuditAction.UNMASK, success=True).exists()
    _assert_untouched(world)


def _assert_untouched(world):
    with scoped(system=True):
        report = Report.objects.get(pk=world.report.pk)
    assert report.title == world.report.title and report.owner_id == world.org.other_analyst.pk
    assert AccessGrant.objects.get(pk=world.grant.pk).status == world.grant.status
    assert AuthToken.objects.filter(digest=world.token.digest).exists()


# --- Admin: every model with per-user rows, every object view of it ----------------------------

# label -> (the staff user who sees some rows of the model but not this one, the object's id)
ADMIN_SCOPED = {
    "datasets.customer": ("manager", lambda w: w.customer.pk),
    "datasets.order": ("manager", lambda w: w.order.pk),
    "datasets.pageview": ("manager", lambda w: w.pageview.pk),
    "datasets.report": ("manager", lambda w: w.report.pk),
    "datasets.export": ("manager", lambda w: w.export.pk),
    "datasets.accessgrant": ("manager", lambda w: w.grant.pk),
    "accounts.accessreview": ("manager", lambda w: w.review.pk),
    "audit.auditevent": ("dpo", lambda w: w.gdpr_unrelated_event.pk),
}
# Models whose rows are all-or-nothing: whoever may open the model sees every row (which roles
# may open it is the role matrix's and tests/test_admin_least_privilege.py's business).
ADMIN_ALL_OR_NOTHING = {
    "auth.group": "Admin only",
    "django_celery_beat.periodictask": "Admin only",
    "django_celery_beat.clockedschedule": "Admin only",
    "django_celery_beat.crontabschedule": "Admin only",
    "django_celery_beat.solarschedule": "Admin only",
    "django_celery_beat.intervalschedule": "Admin only",
    "axes.accessattempt": "Admin only",
    "axes.accesslog": "Admin only",
    "axes.accessfailurelog": "Admin only",
    "accounts.user": "account admins (Admin) manage every account",
    "accounts.department": "account admins",
    "accounts.team": "account admins",
    "knox.authtoken": "Admin only (everyone's tokens)",
    "otp_totp.totpdevice": "Admin only",
    "otp_static.staticdevice": "Admin only",
    "compliance.subjectrequest": "the READ right reads every request",
    "compliance.consentrecord": "the DPO's work right reads every record",
    "compliance.erasedsubject": "the DPO reads the whole register",
    "compliance.retentionpolicy": "governance: Admin and DPO, every row",
    "compliance.retentionrun": "governance",
    "compliance.retentionproof": "governance",
    "compliance.archivedorder": "archive readers (Admin) read every archived row",
    "compliance.vendor": "governance",
    "compliance.vendorassessment": "governance",
    "compliance.attestation": "governance",
    "compliance.vulnerabilityscan": "governance",
    "compliance.backupverification": "governance",
    "compliance.checklistsnapshot": "governance",
    "compliance.monthlychecklist": "governance (no rows: a computed page)",
    "compliance.recordofprocessing": "governance (no rows: a computed page)",
    "auditlog.logentry": "Admin only (the whole change history)",
    "audit.securityalert": "Admin only",
    "audit.auditchaincheck": "Admin only",
    "audit.incident": "Admin and DPO see every incident",
    "audit.blockedip": "Admin only",
}


def test_every_admin_model_is_classified_for_idor():
    labels = {model._meta.label_lower for model in admin.site._registry}
    unknown = labels - set(ADMIN_SCOPED) - set(ADMIN_ALL_OR_NOTHING)
    assert not unknown, f"admin models to classify (scoped rows or all-or-nothing): {sorted(unknown)}"
    assert not (set(ADMIN_SCOPED) | set(ADMIN_ALL_OR_NOTHING)) - labels, "stale rows"


def _admin_request(client, method: str, path: str):
    """The admin's bare ``<id>/`` URL only redirects to ``<id>/change/``: follow that one hop."""
    response = getattr(client, method)(path, {"post": "yes"} if method == "post" else None)
    if response.status_code == 302 and response["Location"] == f"{path}change/":
        response = getattr(client, method)(response["Location"], {"post": "yes"} if method == "post" else None)
    return response


def admin_object_routes(label: str) -> list[str]:
    """The model's admin routes that take an object id (change, history, delete and its own)."""
    app_label, model_name = label.split(".")
    prefix = f"admin/{app_label}/{model_name}/"
    return [
        route
        for route, _, _ in walk()
        if route.startswith(prefix) and parameters(route) & OBJECT_PARAMETERS and "<str:action>" not in route
    ]


@pytest.mark.parametrize("label", sorted(ADMIN_SCOPED))
def test_admin_objects_out_of_scope_are_404_like_missing_ones(world, label):
    who, object_id = ADMIN_SCOPED[label]
    client = browser_login(_user(world, who))
    app_label, model_name = label.split(".")
    assert client.get(f"/admin/{app_label}/{model_name}/").status_code == 200, "the user sees the model"
    routes = admin_object_routes(label)
    assert any(r.endswith("/change/") for r in routes) and any(r.endswith("/delete/") for r in routes)
    for route in routes:
        head, tail = route.split("<", 1)[0], route.split(">", 1)[1]
        for method in ("get", "post"):
            real = _admin_request(client, method, f"/{head}{object_id(world)}{tail}")
            missing = _admin_request(client, method, f"/{head}{MISSING_ID}{tail}")
            context = f"{method.upper()} {route} as {who}"
            # 404; or 403 where the user holds no right to that view on any row (the delete view
            # of a read-only model, any POST to a read-only change form), asked before the look-up.
            assert real.status_code in (403, 404), f"{context}: {real.status_code}"
            assert real.status_code == missing.status_code, (
                f"{context}: real {real.status_code}, missing {missing.status_code}"
            )
            if method == "get" and not route.endswith("/delete/"):
                assert real.status_code == 404, f"{context}: {real.status_code}"
    # Nothing was deleted by the POSTs to delete views.
    model = apps.get_model(label)
    with scoped(system=True):
        assert model._base_manager.filter(pk=object_id(world)).exists()


def test_admin_object_actions_outside_scope_are_404(world):
    """Custom admin views with an object id: the access-review CSV (another manager's review)."""
    manager = browser_login(world.org.manager)
    assert manager.get(f"/admin/accounts/accessreview/{world.review.pk}/csv/").status_code == 404
    assert manager.get(f"/admin/accounts/accessreview/{MISSING_ID}/csv/").status_code == 404
    ops = browser_login(world.ops_manager)
    assert ops.get(f"/admin/accounts/accessreview/{world.review.pk}/csv/").status_code == 200


def test_admin_bulk_actions_ignore_ids_outside_scope(world):
    """A changelist action posted with an id the user cannot see acts on nothing."""
    manager = browser_login(world.org.manager)
    body = {"action": "approve", "_selected_action": [world.grant.pk], "index": "0"}
    manager.post("/admin/datasets/accessgrant/", body)
    assert AccessGrant.objects.get(pk=world.grant.pk).status == world.grant.status


def test_the_view_on_site_shortcut_is_no_oracle(world):
    manager = browser_login(world.org.manager)
    content_type = ContentType.objects.get_for_model(Customer)
    real = manager.get(f"/admin/r/{content_type.pk}/{world.customer.pk}/")
    missing = manager.get(f"/admin/r/{content_type.pk}/{MISSING_ID}/")
    assert real.status_code == missing.status_code == 404


# --- 7. Mass assignment -----------------------------------------------------------------------


def _customer_state(pk):
    with scoped(system=True):
        return Customer.objects.filter(pk=pk).values("team_id", "email_index", "phone_index").get()


@pytest.mark.parametrize(
    "path",
    ["/api/v1/customers/", "/api/v1/customers/{id}/", "/api/v1/orders/{order}/", "/api/v1/pageviews/{pageview}/"],
)
def test_rows_cannot_be_written_through_the_api(world, path):
    """Customers, orders and page views are read-only over the API: moving a row to another team
    or planting a blind index is a 405, and the row keeps its values."""
    org = world.org
    north = org.customers["North"][0]
    path = path.format(id=north.pk, order=OrderFactory(customer=north).pk, pageview=PageViewFactory(customer=north).pk)
    before = _customer_state(north.pk)
    evil = {"team": org.east.pk, "team_id": org.east.pk, "email_index": "0" * 64, "customer": north.pk}
    client = token_client(org.admin)
    for method in ("post", "put", "patch", "delete"):
        assert getattr(client, method)(path, evil, format="json").status_code == 405, method
    assert _customer_state(north.pk) == before
    with scoped(system=True):
        assert Order.objects.filter(team_id=org.east.pk, customer_id=north.pk).count() == 0
        assert PageView.objects.filter(customer_id=north.pk).exclude(team_id=org.north.pk).count() == 0


@pytest.mark.parametrize(
    "field,value",
    [
        ("owner", 1),
        ("owner_id", 1),
        ("department", 1),
        ("department_id", 1),
        ("team_id", 1),
        ("id", 5),
        ("created_at", "2020-01-01T00:00:00Z"),
        ("updated_at", "2020-01-01T00:00:00Z"),
    ],
)
def test_report_updates_refuse_unwritable_fields(org, field, value):
    report = ReportFactory(owner=org.analyst, team=org.north, title="mine")
    client = token_client(org.analyst)
    for method in ("patch", "put"):
        response = getattr(client, method)(f"/api/v1/reports/{report.pk}/", {field: value, "title": "x"}, format="json")
        assert response.status_code == 400 and field in response.json(), (method, response.content)
    with scoped(system=True):
        stored = Report.objects.get(pk=report.pk)
    assert (stored.owner_id, stored.team_id, stored.department_id, stored.title) == (
        org.analyst.pk,
        org.north.pk,
        org.north.department_id,
        "mine",
    )


def test_export_requests_cannot_set_owner_status_or_file(org):
    client = token_client(org.manager)
    body = {
        "dataset": "customers",
        "format": "csv",
        "purpose": "Mass assignment of the export's own fields",
        "requested_by": org.admin.pk,
        "status": "done",
        "file_name": "../../../../etc/passwd",
        "sha256": "0" * 64,
        "row_count": 999,
        "id": "00000000-0000-4000-8000-000000000000",
    }
    response = client.post("/api/v1/exports/", body, format="json")
    assert response.status_code in (202, 400), response.content
    if response.status_code == 202:
        export = Export.objects.get()
        assert export.requested_by_id == org.manager.pk
        assert export.status == "queued" and export.file_name == "" and export.sha256 == ""
        assert export.row_count in (0, None) and str(export.pk) != body["id"]
    else:
        assert not Export.objects.exists()


def test_grant_requests_cannot_approve_themselves(org):
    client = token_client(org.analyst)
    body = {
        "kind": "team_access",
        "team": org.south.pk,
        "reason": "Covering South while they are away",
        "status": "approved",
        "decided_by": org.admin.pk,
        "decided_at": timezone.now().isoformat(),
        "expires_at": (timezone.now() + timedelta(days=365)).isoformat(),
        "requester": org.other_analyst.pk,
        "duration_hours": 8,
    }
    response = client.post("/api/v1/access-grants/", body, format="json")
    assert response.status_code in (201, 400), response.content
    grants = AccessGrant.objects.filter(team=org.south)
    if response.status_code == 201:
        grant = grants.get()
        assert grant.status == "pending" and grant.requester_id == org.analyst.pk
        assert grant.decided_by_id is None and grant.decided_at is None and grant.expires_at is None
    else:
        assert not grants.exists()
    # And the grant widens nothing: the south team's customers stay out of the analyst's reach.
    south = org.customers["South"][0].pk
    assert client.get(f"/api/v1/customers/{south}/").status_code == 404


def test_privacy_requests_cannot_set_their_own_workflow_fields(org):
    customer = org.customers["North"][0]
    client = token_client(org.admin)
    body = {
        "type": "access",
        "email": customer.email,
        "channel": "email",
        "status": "completed",
        "completed_at": timezone.now().isoformat(),
        "due_at": (timezone.now() + timedelta(days=3650)).isoformat(),
        "received_at": "2000-01-01T00:00:00Z",
        "created_by": org.dpo.pk,
        "approved_by": org.dpo.pk,
        "email_index": "0" * 64,
        "subject_hash": "0" * 64,
        "result": {"done": True},
        "attempts": 99,
    }
    response = client.post("/api/v1/privacy-requests/", body, format="json")
    assert response.status_code in (201, 400), response.content
    if response.status_code == 400:
        assert not SubjectRequest.objects.exists()
        return
    stored = SubjectRequest.objects.get(pk=response.json()["id"])
    assert stored.status == RequestStatus.RECEIVED and stored.completed_at is None
    assert stored.created_by_id == org.admin.pk and stored.approved_by_id is None
    assert stored.email_index == blind_index.email_index(customer.email)
    assert stored.subject_hash == "" and stored.result in ({}, None) and stored.attempts == 0
    assert abs(stored.received_at - timezone.now()) < timedelta(minutes=5)
    assert stored.due_at < timezone.now() + timedelta(days=100)
    # The record changes only through the workflow: no update over the API.
    for method in ("put", "patch"):
        assert getattr(client, method)(f"/api/v1/privacy-requests/{stored.pk}/", body, format="json").status_code == 405


def test_a_token_request_cannot_choose_its_lifetime_user_or_mfa_mark(org):
    body = {
        "email": org.analyst.email,
        "password": PASSWORD,
        "expiry": "2099-01-01T00:00:00Z",
        "user": org.admin.pk,
        "user_id": org.admin.pk,
        "mfa_verified": True,
    }
    response = APIClient().post("/api/v1/auth/token/", body, format="json")
    assert response.status_code == 200
    token = AuthToken.objects.get()
    assert token.user_id == org.analyst.pk
    assert abs(token.expiry - (timezone.now() + settings.API_TOKEN_TTL)) < timedelta(minutes=1)
    assert token.portal_info.mfa_verified is False


def test_the_admin_user_form_cannot_grant_superuser_or_staff(org):
    admin_browser = browser_login(org.admin)
    analyst_group = Group.objects.get(name=Role.ANALYST.value).pk
    form = {
        "email": org.analyst.email,
        "full_name": "",
        "department": org.sales.pk,
        "is_active": "on",
        "groups": [analyst_group],
        "is_staff": "on",
        "is_superuser": "on",
        "user_permissions": [1, 2, 3],
        "last_login_0": "2000-01-01",
        "date_joined_0": "2000-01-01",
    }
    response = admin_browser.post(f"/admin/accounts/user/{org.analyst.pk}/change/", form)
    assert response.status_code == 302, response.content
    analyst = User.objects.get(pk=org.analyst.pk)
    assert not analyst.is_superuser and not analyst.is_staff
    assert not analyst.user_permissions.exists()
    assert analyst.date_joined.year != 2000
    # A manager is staff but manages no accounts: the same form is refused outright.
    manager_browser = browser_login(org.manager)
    refused = manager_browser.post(f"/admin/accounts/user/{org.analyst.pk}/change/", form)
    assert refused.status_code == 403
    assert not User.objects.get(pk=org.analyst.pk).is_staff


def test_read_only_admin_records_refuse_writes(org):
    """Customers (the team column), subject requests (their status) and audit events: the change
    form refuses a POST and the row keeps its values."""
    customer = org.customers["North"][0]
    before = _customer_state(customer.pk)
    admin_browser = browser_login(org.admin)
    response = admin_browser.post(
        f"/admin/datasets/customer/{customer.pk}/change/", {"team": org.east.pk, "email_index": "0" * 64}
    )
    assert response.status_code == 403
    assert _customer_state(customer.pk) == before

    subject_request = requests.intake(org.admin, requests.Intake(kind="access", channel="email", email=customer.email))
    dpo = browser_login(org.dpo)
    response = dpo.post(
        f"/admin/compliance/subjectrequest/{subject_request.pk}/change/",
        {"status": "completed", "due_at": "2099-01-01", "subject_hash": "0" * 64},
    )
    assert response.status_code == 403
    stored = SubjectRequest.objects.get(pk=subject_request.pk)
    assert stored.status == RequestStatus.RECEIVED and stored.subject_hash == ""

    event = AuditEvent.objects.filter(action=AuditAction.LOGIN).latest("id")
    response = admin_browser.post(
        f"/admin/audit/auditevent/{event.pk}/change/", {"action": "VIEW", "actor_email": "someone@else.example"}
    )
    assert response.status_code == 403
    assert AuditEvent.objects.get(pk=event.pk).action == AuditAction.LOGIN
    assert admin_browser.post(f"/admin/audit/auditevent/{event.pk}/delete/", {"post": "yes"}).status_code == 403
    assert AuditEvent.objects.filter(pk=event.pk).exists()


def test_login_form_extra_fields_are_ignored(db):
    """A sign-in that also posts is_staff / is_superuser flags changes nothing on the account."""
    user = make_user(Role.ANALYST)
    client = Client()
    response = client.post(
        "/accounts/login/", {"username": user.email, "password": PASSWORD, "is_staff": "on", "is_superuser": "on"}
    )
    assert response.status_code == 302
    user.refresh_from_db()
    assert not user.is_staff and not user.is_superuser
