"""API fuzzing with schemathesis: every operation of ``/api/schema/``, as every role.

For each role (Analyst, Manager, Admin, Executive, DPO) and each operation the schema serves,
schemathesis generates requests (valid ones and deliberately invalid ones) and sends them with
that role's MFA-verified API token through Django's WSGI handler in this process, inside the
test's transaction.  Every answer must be no 5xx, carry a status code the schema documents, and
have the content type and body the schema documents for that code.

About half of the generated cases have their ids swapped for ids that exist (customers of every
team, orders, reports, grants, requests, exports with their download links, tokens of the user
and of others; team, customer and user fields of bodies), so that detail, write and delete
operations reach real rows, in and out of the role's scope, not only 404s.  A failure names the
role and the operation, and shows the request as a curl command.

Destructive operations stay meaningful, and none is excluded: ``DELETE
/api/v1/auth/tokens/{token_id}/`` revokes the token it is sent with when the id is its own, so
each of its cases gets a fresh token of the same user.  Other writes (reports created, edited and
deleted, grants decided) accumulate over one role's run, as a client's successive calls would;
reads run first and deletes last; each role starts again from a fresh org.

Examples per (role, operation): ``PORTAL_FUZZ_EXAMPLES`` (default below, sized for ``make
test``); the run is derandomized, so a failure reproduces with the same count.
"""

import os

import pytest
import schemathesis
from django.core.handlers.wsgi import WSGIHandler
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from tests.conftest import Org

EXAMPLES = int(os.environ.get("PORTAL_FUZZ_EXAMPLES", "5"))
SCHEMA_PATH = "/api/schema/"
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
ROLES = ["analyst", "manager", "admin", "executive", "dpo"]
TOKEN_REVOKE = "DELETE /api/v1/auth/tokens/{token_id}/"

pytestmark = pytest.mark.django_db


class InProcessWSGI:
    """Django's WSGI handler without the connection recycling a real server does around each
    request (``close_old_connections``), which would close the test's open transaction; the
    same thing Django's own test client does."""

    def __init__(self):
        self.handler = WSGIHandler()

    def __call__(self, environ, start_response):
        # A server always names the peer; the lockout counts failures per (address, email).
        environ["REMOTE_ADDR"] = environ.get("REMOTE_ADDR") or "127.0.0.1"
        request_started.disconnect(close_old_connections)
        request_finished.disconnect(close_old_connections)
        try:
            response = self.handler(environ, start_response)
            try:
                return list(response)
            finally:
                response.close()  # request_finished, as a WSGI server would send it
        finally:
            request_started.connect(close_old_connections)
            request_finished.connect(close_old_connections)


def _generated_operation_labels() -> list[str]:
    """The operations, for test ids, from the same generator that serves ``/api/schema/``."""
    from drf_spectacular.generators import SchemaGenerator

    document = SchemaGenerator().get_schema(request=None, public=True)
    methods = ("get", "put", "post", "delete", "patch")
    return sorted(f"{m.upper()} {path}" for path, item in document["paths"].items() for m in item if m in methods)


OPERATIONS = _generated_operation_labels()


@pytest.fixture(scope="module")
def served_schema(django_db_setup, django_db_blocker):
    """The schema as served at ``/api/schema/`` (anonymously), bound to the in-process app.
    Loaded once: serving it reads and writes nothing, so it needs no test transaction."""
    with django_db_blocker.unblock():
        return schemathesis.openapi.from_wsgi(SCHEMA_PATH, InProcessWSGI(), headers={"Accept": "application/json"})


def test_every_served_operation_is_fuzzed(served_schema):
    served = sorted(result.ok().label for result in served_schema.get_all_operations())
    assert served == OPERATIONS
    assert len(OPERATIONS) > 20


class World:
    """An org with rows behind every id-taking operation, and an API token per role."""

    def __init__(self):
        from accounts import services as account_services
        from accounts.selectors import token_public_id
        from compliance import requests
        from datasets import exports
        from datasets import services as dataset_services
        from portal.security_context import scoped
        from tests.factories import OrderFactory, PageViewFactory, ReportFactory

        self.org = org = Org(customers_per_team=2)
        self.users = {role: getattr(org, role) for role in ROLES}
        self.tokens = {}
        for role, user in self.users.items():
            _, self.tokens[role] = account_services.issue_token(user, mfa_verified=True)
        customers = [c for team in org.teams for c in org.customers[team.name]]
        orders = [OrderFactory(customer=c, team=c.team) for c in customers[::2]]
        views = [PageViewFactory(customer=c) for c in customers[1::2]]
        reports = [
            ReportFactory(owner=org.analyst, team=org.north, department=org.sales),
            ReportFactory(owner=org.manager, team=org.south, department=org.sales),
            ReportFactory(owner=org.admin, team=org.east, department=org.ops),
        ]
        with scoped(org.analyst):
            team_grant = dataset_services.request_grant(
                org.analyst, kind="team_access", reason="cover for a colleague", team_id=org.south.pk
            )
        with scoped(org.other_analyst):
            unmask_grant = dataset_services.request_grant(
                org.other_analyst, kind="unmask_customer", reason="verify an address", customer_id=customers[4].pk
            )
        with scoped(org.dpo):
            intake = requests.Intake(kind="access", channel="api", email=customers[0].email)
            privacy = [requests.intake(org.dpo, requests.validate_intake(intake))]
        export_ids, download_tokens = [], []
        for user, file_format in ((org.manager, "csv"), (org.admin, "json")):
            with scoped(user):
                export = exports.start(user, {"dataset": "orders", "format": file_format, "purpose": "monthly review"})
                export = exports.run(user, export.pk)  # done: its download link works
            export_ids.append(str(export.pk))
            download_tokens.append(exports.download_token(export))
        other_tokens = [account_services.issue_token(user, mfa_verified=True)[0] for user in self.users.values()]
        self.path_ids = {
            "customers": [c.pk for c in customers],
            "orders": [o.pk for o in orders],
            "pageviews": [v.pk for v in views],
            "reports": [r.pk for r in reports],
            "access-grants": [team_grant.pk, unmask_grant.pk],
            "privacy-requests": [p.pk for p in privacy],
            "exports": export_ids,
            "auth": [token_public_id(t) for t in other_tokens],
        }
        self.body_ids = {
            "team": [t.pk for t in org.teams],
            "customer": self.path_ids["customers"],
            "user": [u.pk for u in self.users.values()] + [org.other_analyst.pk],
        }
        self.query_values = {"token": download_tokens}

    def resource_of(self, path: str) -> str:
        return path.removeprefix("/api/v1/").split("/", 1)[0]


@pytest.fixture
def world(settings, tmp_path):
    settings.PORTAL_EXPORT_DIR = str(tmp_path)
    return World()


def _with_real_ids(data, case, world, fresh_token_id):
    """Swap generated ids for ones that exist (path, query, and id fields of a JSON object body)."""
    ids = world.path_ids.get(world.resource_of(case.operation.path), [])
    for name in list(case.path_parameters or {}):
        choices = ids + ([fresh_token_id] if fresh_token_id else [])
        if choices:
            case.path_parameters[name] = data.draw(st.sampled_from(choices), label=f"real {name}")
    for name, choices in world.query_values.items():
        if name in (case.query or {}):
            case.query[name] = data.draw(st.sampled_from(choices), label=f"real {name}")
    if isinstance(case.body, dict):
        for name, choices in world.body_ids.items():
            if name in case.body:
                case.body[name] = data.draw(st.sampled_from(choices), label=f"real {name}")


FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,  # a request through the whole stack takes what it takes on a shared machine
    derandomize=True,  # the same cases every run: a failure reproduces
    database=None,
    phases=[Phase.explicit, Phase.generate, Phase.shrink],
    # Bodies generated from the schema can be large or slow to draw; neither is an API failure.
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)


def _fuzz(served_schema, world, role: str, label: str) -> list[int]:
    """Run schemathesis over one operation as one role; the status codes it met."""
    from accounts import services as account_services
    from accounts.selectors import token_public_id

    operation = served_schema.find_operation_by_label(label)
    assert operation is not None, label
    statuses: list[int] = []

    @FUZZ
    @given(data=st.data())
    def fuzz_operation(data):
        mode = data.draw(st.sampled_from([GenerationMode.POSITIVE, GenerationMode.NEGATIVE]), label="mode")
        case = data.draw(operation.as_strategy(generation_mode=mode), label="case")
        token, fresh_token_id = world.tokens[role], None
        if label == TOKEN_REVOKE:  # the case may revoke the token it is sent with: a fresh one each time
            instance, token = account_services.issue_token(world.users[role], mfa_verified=True)
            fresh_token_id = token_public_id(instance)
        if data.draw(st.booleans(), label="real ids"):
            _with_real_ids(data, case, world, fresh_token_id)
        response = case.call(headers={"Authorization": f"Token {token}"})
        statuses.append(response.status_code)
        case.validate_response(response, checks=CHECKS)

    try:
        fuzz_operation()
    except BaseException as failure:
        failure.add_note(f"as the {role} ({label})")
        raise
    assert statuses, f"no case was sent for {label} as the {role}"
    return statuses


def _in_run_order(labels: list[str]) -> list[str]:
    """Reads first, then writes, deletes last: a role's run goes over every operation on one
    world, and what a delete removes is then gone only for the deletes after it."""
    weight = {"GET": 0, "POST": 1, "PUT": 1, "PATCH": 1, "DELETE": 2}
    return sorted(labels, key=lambda label: (weight[label.split(" ", 1)[0]], label))


@pytest.mark.parametrize("role", ROLES)
def test_every_operation_answers_as_documented(served_schema, world, role):
    """One role over every operation, on one world (building it is the costly part)."""
    statuses = {label: _fuzz(served_schema, world, role, label) for label in _in_run_order(OPERATIONS)}
    # Every request carried a valid token (the revoking cases a fresh one): a 401 means the run
    # fuzzed the authentication layer instead of the API behind it.
    assert not {label for label, codes in statuses.items() if 401 in codes}
    # The run got past the policy somewhere: every role has its own tokens to list, at least.
    assert any(200 <= code < 300 for codes in statuses.values() for code in codes)


# --- what the fuzzing found, pinned as plain cases ---------------------------------------------


def _sent(served_schema, world, role: str, label: str, **parts):
    """One hand-made case, sent with the role's token and held to the same checks."""
    case = served_schema.find_operation_by_label(label).Case(**parts)
    response = case.call(headers={"Authorization": f"Token {world.tokens[role]}"})
    case.validate_response(response, checks=CHECKS)
    return response


def test_page_size_in_non_ascii_digits_is_refused_not_a_server_error(served_schema, world):
    # "²".isdigit() is true and int("²") fails: this was a 500.
    response = _sent(served_schema, world, "analyst", "GET /api/v1/customers/", query={"page_size": "²"})
    assert response.status_code == 400
    assert "page_size" in response.json()


def test_export_id_that_is_not_a_uuid_is_a_json_404(served_schema, world):
    # 36 hex digits matched the old route pattern and then failed as a UUID in the query: a 500.
    for label, parts in [
        ("GET /api/v1/exports/{id}/download/", {"query": {"token": world.query_values["token"][0]}}),
        ("GET /api/v1/exports/{id}/", {}),
    ]:
        response = _sent(served_schema, world, "manager", label, path_parameters={"id": "0" * 36}, **parts)
        assert response.status_code == 404
        assert response.json() == {"detail": "Not found."}


def test_export_downloads_answer_in_their_documented_formats(served_schema, world):
    label = "GET /api/v1/exports/{id}/download/"
    csv_id, json_id = world.path_ids["exports"]
    csv_token, json_token = world.query_values["token"]
    response = _sent(served_schema, world, "manager", label, path_parameters={"id": csv_id}, query={"token": csv_token})
    assert response.status_code == 200 and response.headers["content-type"] == ["text/csv"]
    response = _sent(served_schema, world, "admin", label, path_parameters={"id": json_id}, query={"token": json_token})
    assert response.status_code == 200 and isinstance(response.json(), list)
    # Someone else's export, even with its link: not found.
    response = _sent(served_schema, world, "admin", label, path_parameters={"id": csv_id}, query={"token": csv_token})
    assert response.status_code == 404


def test_privacy_request_without_a_purpose_matches_the_schema(served_schema, world):
    # The generated read-only field had dropped the blank choice: "" failed the documented enum.
    label = "GET /api/v1/privacy-requests/{id}/"
    response = _sent(served_schema, world, "dpo", label, path_parameters={"id": world.path_ids["privacy-requests"][0]})
    assert response.status_code == 200
    assert response.json()["purpose"] == ""


def test_unrouted_api_url_is_a_json_404_and_other_pages_keep_html(served_schema, world, client):
    response = _sent(served_schema, world, "analyst", "GET /api/v1/customers/{id}/", path_parameters={"id": "-1"})
    assert response.status_code == 404
    assert response.json() == {"detail": "Not found."}
    page = client.get("/no-such-page/")
    assert page.status_code == 404
    assert page["Content-Type"].startswith("text/html")


def test_token_lockout_answers_as_documented(served_schema, world):
    """Rarely met by generated cases (one address failing five times): the lockout's 429."""
    body = {"email": world.org.analyst.email, "password": "not-the-password"}  # pragma: allowlist secret
    answers = [
        _sent(served_schema, world, "analyst", "POST /api/v1/auth/token/", body=body, media_type="application/json")
        for _ in range(6)
    ]
    assert answers[0].status_code == 400
    assert answers[-1].status_code == 429 and "detail" in answers[-1].json()


def test_a_body_without_a_content_type_is_a_documented_415(served_schema, world):
    # A malformed multipart body goes out without its content type: DRF reads no parser for it.
    response = _sent(
        served_schema,
        world,
        "manager",
        "POST /api/v1/reports/",
        body="\x11 not a form",
        media_type="multipart/form-data",
    )
    assert response.status_code == 415
