"""Attacks through the browser: cross-site request forgery, open redirects and path traversal.

CSRF: every page route (portal pages, sign-in, MFA, the Django admin with its add/change/delete
views and the project's own admin pages) comes from the URL resolver, so a new view is covered
without editing this file.  Each refuses an unsafe request without a CSRF token, or with a wrong
one, from a signed-in user who may do the action; a few are checked to have changed nothing.  The
API (session authentication is enabled beside tokens) refuses unsafe requests carried by a
session cookie alone.

Redirects: every view that reads ``next`` (portal sign-in, logout, MFA verification and
enrolment, admin sign-in and logout) is fed off-site targets in their usual disguises; no answer
sends the browser off the portal, now or at a later step.

Downloads: the export download, the GDPR access-package download, the evidence pack, the audit
export, the access-review CSV and static files, fed traversal, encoded traversal, absolute paths,
NUL bytes, forged tokens and another user's valid link.
"""

from datetime import date
from urllib.parse import quote

import pytest
from django.contrib.auth.models import Group
from django.test import Client
from django.utils.crypto import get_random_string
from knox.models import AuthToken
from rest_framework.test import APIClient

from accounts import selectors, services
from accounts.models import User, UserSession
from accounts.policy import Role
from audit.choices import AuditAction
from audit.models import AuditEvent
from compliance import requests, subject_export
from compliance.governance_models import ChecklistSnapshot
from compliance.models import AccessPackage, SubjectRequest
from compliance.requests_choices import RequestStatus
from datasets import exports
from datasets.models import Export, Report
from datasets.tasks import run_export
from portal.security_context import scoped
from tests.attack_web_support import (
    api_routes,
    assert_stays_on_site,
    browser_routes,
    concrete_path,
    csrf_enforcing,
    csrf_token,
    is_csrf_refusal,
    offsite,
    walk,
)
from tests.conftest import BOTH_DATABASES, token_client
from tests.factories import PASSWORD, browser_login, give_authenticator, make_user, totp_code

pytestmark = pytest.mark.django_db(databases=BOTH_DATABASES)

PASSWD_MARKERS = (b"root:x:0:0", b"root:*:0:0", b"/bin/bash", b"/usr/sbin/nologin")


def signed_in(client) -> bool:
    return client.get("/accounts/").status_code == 200


def wrong_token() -> str:
    return get_random_string(32)


# --- 1. CSRF ----------------------------------------------------------------------------------


def test_the_route_list_reaches_the_pages_that_matter():
    """The sweep below is only as good as the enumeration: spot-check that it sees everything."""
    names = {name for _, name in browser_routes()}
    for expected in (
        "accounts:login",
        "accounts:logout",
        "accounts:mfa-verify",
        "accounts:mfa-enrol",
        "dashboards:customer-reveal",
        "dashboards:export-start",
        "admin:accounts_user_change",
        "admin:auth_user_password_change",
        "admin:accounts_team_delete",
        "admin:knox_authtoken_delete",
        "admin:compliance_subjectrequest_act",
        "admin:compliance_subjectrequest_add",
        "admin:compliance_retention_run",
        "admin:compliance_evidence_pack",
        "admin:compliance_checklist_snapshot",
        "admin:audit_incident_contain",
        "admin:audit_securityalert_change",
        "admin:django_celery_beat_periodictask_add",
    ):
        assert expected in names, expected
    assert len(names) > 150


def test_no_page_view_opts_out_of_the_csrf_check():
    """The static half of the sweep below: no page's view is marked ``csrf_exempt`` (DRF views
    are, by design: the API is checked by session authentication, tested further down)."""
    pages = [(name, pattern.callback) for route, name, pattern in walk() if not route.startswith("api/")]
    exempt = [name for name, view in pages if getattr(view, "csrf_exempt", False)]
    assert not exempt, exempt


# (label, method, form data, where a wrong token goes)
FORGERIES = [
    ("POST without token", "post", {"x": "1"}, None),
    ("POST with a wrong token", "post", {"x": "1"}, "field"),
    ("POST with a wrong header", "post", {"x": "1"}, "header"),
    ("PUT without token", "put", {}, None),
    ("PATCH without token", "patch", {}, None),
    ("DELETE without token", "delete", {}, None),
]


def test_every_browser_route_refuses_unsafe_requests_without_a_valid_csrf_token(org):
    client = csrf_enforcing(org.admin)
    secret = csrf_token(client)
    failures = []
    for index, (route, name) in enumerate(browser_routes()):
        path = concrete_path(route)
        # Every route: a POST with no token; and one more forgery, in turn, from the others.
        for label, method, body, extra in (FORGERIES[0], FORGERIES[1 + index % (len(FORGERIES) - 1)]):
            kwargs = {"HTTP_X_CSRFTOKEN": wrong_token()} if extra == "header" else {}
            data = {**body, "csrfmiddlewaretoken": wrong_token()} if extra == "field" else body
            if method == "post":
                response = client.post(path, data, **kwargs)
            else:
                response = getattr(client, method)(path, "x=1", content_type="application/x-www-form-urlencoded")
            if not is_csrf_refusal(response):
                failures.append(f"{label} {path} ({name}): {response.status_code}")
        client.cookies["csrftoken"] = secret  # a refusal never rotates it, but keep it certain
    assert not failures, failures
    # The sweep changed nothing: the admin is still signed in, with one session.
    assert signed_in(client)
    assert UserSession.objects.filter(user_id=org.admin.pk).count() == 1


def test_a_valid_token_is_what_makes_the_difference(org):
    """Control: the enforcing client does get through with the cookie's token, so the 403s above
    are the CSRF check and not something else."""
    client = csrf_enforcing(org.analyst)
    refused = client.post("/accounts/logout/")
    assert is_csrf_refusal(refused) and signed_in(client)
    accepted = client.post("/accounts/logout/", {"csrfmiddlewaretoken": csrf_token(client)})
    assert accepted.status_code in (200, 302) and not signed_in(client)


def _subject_request(org) -> SubjectRequest:
    customer = org.customers["North"][0]
    data = requests.Intake(kind="access", channel="email", email=customer.email)
    return requests.intake(org.admin, data)


def test_forged_admin_posts_change_nothing(org):
    """Representative state-changing admin views, each with the form data a real submit sends."""
    victim_browser = browser_login(org.analyst)
    _, victim_token = services.issue_token(org.analyst, mfa_verified=False)
    client = csrf_enforcing(org.admin)
    groups_before = set(org.analyst.groups.values_list("name", flat=True))
    admin_group = Group.objects.get(name=Role.ADMIN.value).pk
    token = AuthToken.objects.get(token_key=victim_token[:15])
    forged = [
        # Disable the analyst (is_active left out of the form) and make them an admin.
        (
            f"/admin/accounts/user/{org.analyst.pk}/change/",
            {"email": org.analyst.email, "department": org.sales.pk, "groups": [admin_group]},
        ),
        (
            f"/admin/accounts/user/{org.analyst.pk}/password/",
            # pragma: allowlist nextline secret
            {"password1": "an-attacker-chosen-pass-1", "password2": "an-attacker-chosen-pass-1"},
        ),
        (
            "/admin/accounts/user/",
            {"action": "disable_accounts", "_selected_action": [org.analyst.pk], "index": "0"},
        ),
        (f"/admin/accounts/team/{org.north.pk}/change/", {"name": "Hijacked", "department": org.ops.pk}),
        (f"/admin/knox/authtoken/{token.pk}/delete/", {"post": "yes"}),
        ("/admin/compliance/monthlychecklist/snapshot/", {}),
    ]
    for path, data in forged:
        assert is_csrf_refusal(client.post(path, data)), path
    analyst = User.objects.get(pk=org.analyst.pk)
    assert analyst.is_active and analyst.check_password(PASSWORD)
    assert set(analyst.groups.values_list("name", flat=True)) == groups_before
    assert signed_in(victim_browser)
    assert token_client_from(victim_token).get("/api/v1/customers/").status_code == 200
    north = type(org.north).objects.get(pk=org.north.pk)
    assert (north.name, north.department_id) == ("North", org.sales.pk)
    assert not ChecklistSnapshot.objects.exists()


def token_client_from(token: str):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    return client


def test_forged_gdpr_and_page_posts_change_nothing(org):
    subject_request = _subject_request(org)
    dpo = csrf_enforcing(org.dpo)
    for action in ("verify", "approve", "reject", "run"):
        path = f"/admin/compliance/subjectrequest/{subject_request.pk}/act/{action}/"
        assert is_csrf_refusal(dpo.post(path, {"reason": "forged by another site"})), action
    assert SubjectRequest.objects.get(pk=subject_request.pk).status == RequestStatus.RECEIVED
    intake = {"kind": "erasure", "channel": "email", "email": org.customers["East"][0].email}
    assert is_csrf_refusal(dpo.post("/admin/compliance/subjectrequest/add/", intake))
    assert SubjectRequest.objects.count() == 1

    manager = csrf_enforcing(org.manager)
    body = {"dataset": "customers", "format": "csv", "purpose": "Forged by another site, not the manager"}
    assert is_csrf_refusal(manager.post("/exports/start/", body))
    assert not Export.objects.exists()
    customer = org.customers["North"][0]
    reveal = {"field": "email", "reason": "forged by another site"}
    assert is_csrf_refusal(manager.post(f"/customers/{customer.pk}/reveal/", reveal))
    # The refusal itself is audited (PERMISSION_DENIED); the reveal never reached the service.
    assert not AuditEvent.objects.filter(action=AuditAction.UNMASK).exists()
    assert AuditEvent.objects.filter(action=AuditAction.PERMISSION_DENIED, actor_id=org.manager.pk).exists()


def test_forged_mfa_verification_does_not_elevate_the_session(org):
    """A site that knows (or guesses) a code cannot make the victim's browser verify it."""
    device = give_authenticator(org.manager)
    victim = Client(enforce_csrf_checks=True)
    victim.cookies = browser_login(org.manager, verify=False).cookies
    response = victim.post("/accounts/mfa/verify/", {"code": totp_code(device)})
    assert is_csrf_refusal(response)
    assert victim.get("/admin/").status_code == 302  # still sent to verify


UNSAFE = {"POST", "PUT", "PATCH", "DELETE"}


def test_the_api_refuses_a_session_cookie_without_a_csrf_token(org):
    """Session authentication is enabled for the API (the browser manages its tokens with it):
    unsafe requests carried by the cookie alone are refused on every API route."""
    client = csrf_enforcing(org.admin)
    failures = []
    for route, name in api_routes():
        if name == "api-token":
            continue  # authenticates nobody by session: checked below
        path = concrete_path(route)
        for method in ("post", "put", "patch", "delete"):
            response = getattr(client, method)(path, "{}", content_type="application/json")
            # A view that offers no unsafe method at all (the Swagger page renders its refusal as
            # HTML) has nothing to forge: any 403 will do there.
            read_only = not UNSAFE & set(response.get("Allow", "").replace(" ", "").split(","))
            if not (is_csrf_refusal(response) or (read_only and response.status_code == 403)):
                failures.append(f"{method.upper()} {path} ({name}): {response.status_code}")
    assert not failures, failures
    # GETs are not refused: the session reads.
    assert client.get("/api/v1/customers/").status_code == 200


def test_forged_api_writes_change_nothing_and_the_header_token_is_honoured(org):
    client = csrf_enforcing(org.admin)
    victim, _, instance = _token_of(org.analyst)
    token_path = f"/api/v1/auth/tokens/{selectors.token_public_id(instance)}/"
    report = {"title": "forged", "team": org.north.pk, "definition": {"dataset": "orders"}}
    assert is_csrf_refusal(client.delete(token_path))
    assert is_csrf_refusal(client.post("/api/v1/reports/", report, content_type="application/json"))
    export = {"dataset": "customers", "format": "csv", "purpose": "forged by another site!"}
    assert is_csrf_refusal(client.post("/api/v1/exports/", export, content_type="application/json"))
    assert victim.get("/api/v1/customers/").status_code == 200
    with scoped(system=True):
        assert not Report.objects.filter(title="forged").exists()
    assert not Export.objects.exists()
    # The same request with the cookie's token in the header (what the portal's own script sends).
    accepted = client.delete(token_path, HTTP_X_CSRFTOKEN=csrf_token(client))
    assert accepted.status_code == 204
    assert victim.get("/api/v1/customers/").status_code == 401


def test_the_token_endpoint_ignores_the_session(org):
    """A forged POST to the token endpoint cannot turn the victim's session into a token."""
    client = csrf_enforcing(org.admin)
    before = AuthToken.objects.count()
    response = client.post("/api/v1/auth/token/", "{}", content_type="application/json")
    assert response.status_code == 400
    assert "token" not in response.json()
    assert AuthToken.objects.count() == before


def _token_of(user):
    instance, token = services.issue_token(user, mfa_verified=True)
    return token_client_from(token), token, instance


# --- 2. Open redirects ------------------------------------------------------------------------

EVIL = [
    "https://evil.example/",
    "http://evil.example",
    "//evil.example",
    "///evil.example",
    "////evil.example/x",
    "/\\evil.example",
    "\\\\evil.example",
    "\\/evil.example",
    "https:evil.example",
    "https:/evil.example",
    "http:\\\\evil.example",
    "javascript:alert(1)",
    "JaVaScRiPt:alert(1)",
    " javascript:alert(1)",
    "data:text/html,<script>alert(1)</script>",
    "http://testserver@evil.example/",
    "http://evil.example\\@testserver/",
    "http://evil.example#@testserver/",
    "http://testserver.evil.example/",
    "/\t/evil.example",
    "/\n/evil.example",
    "\t//evil.example",
    " //evil.example",
    "%2F%2Fevil.example",
    "%2f%5cevil.example",
    "/%2F/evil.example",
    "https%3A%2F%2Fevil.example",
    "/%09/evil.example",
    "//evil%2Eexample",
    "//evil。example",
    "https://evil.example:443/",
    "ftp://evil.example/",
]


# The most distinct disguises, for the flows that cost a sign-in per attempt.
EVIL_CORE = [
    "https://evil.example/",
    "//evil.example",
    "/\\evil.example",
    "https:evil.example",
    "javascript:alert(1)",
    "http://testserver@evil.example/",
    "/\t/evil.example",
    "%2F%2Fevil.example",
]


def test_the_offsite_check_itself():
    """The judge of the tests below: it must call every disguise off-site and the portal's own
    paths on-site (written apart from the app's own check, so that it can disagree with it)."""
    for value in ("//evil.example", "/\\evil.example", "https:evil.example", "javascript:alert(1)", "/\t/evil.x"):
        assert offsite(value), value
    for value in ("/accounts/", "/admin/?next=/x", "http://testserver/admin/", "%2F%2Fevil.example", "?a=1"):
        assert not offsite(value), value


def _with_next(path: str, target: str) -> str:
    return f"{path}?next={quote(target, safe='')}"


# One test per view, every disguise in turn (an organisation per disguise would cost minutes).


def test_portal_sign_in_never_redirects_off_site(org):
    for target in EVIL:
        # next in the query string and in the posted form (the hidden field), for both kinds of user.
        for user in (org.analyst, org.manager):
            login = {"username": user.email, "password": PASSWORD}
            response = Client().post(_with_next("/accounts/login/", target), login)
            assert response.status_code == 302
            assert_stays_on_site(response, f"login?next={target!r} as {user}")
            response = Client().post("/accounts/login/", {**login, "next": target})
            assert_stays_on_site(response, f"login form next={target!r} as {user}")
        # The login page never puts the target in its hidden field either.
        assert_stays_on_site(Client().get(_with_next("/accounts/login/", target)), f"login page {target!r}")


def test_logout_never_redirects_off_site(org):
    for target in EVIL:
        client = browser_login(org.analyst)
        assert_stays_on_site(client.post(_with_next("/accounts/logout/", target)), f"logout?next={target!r}")
        client = browser_login(org.analyst)
        assert_stays_on_site(client.post("/accounts/logout/", {"next": target}), f"logout form next={target!r}")
        assert not signed_in(client)


def test_second_factor_verification_never_redirects_off_site(org):
    device = give_authenticator(org.manager)
    client = browser_login(org.manager, verify=False)
    for target in EVIL:
        page = _with_next("/accounts/mfa/verify/", target)
        # The page and the right code: neither carries nor follows the target.
        assert_stays_on_site(client.get(page), f"verify page {target!r}")
        right = client.post(page, {"code": totp_code(device), "next": target})
        assert right.status_code == 302
        assert_stays_on_site(right, f"verify, right code {target!r}")
        # Verified now: the enrol page sends a verified user on to next, which is checked too.
        assert_stays_on_site(client.get(_with_next("/accounts/mfa/enrol/", target)), f"enrol, verified {target!r}")
    # A wrong code re-renders the form: its hidden next field is clean (a few: failures lock out).
    client = browser_login(org.manager, verify=False)
    for target in EVIL_CORE[:4]:
        wrong = client.post(_with_next("/accounts/mfa/verify/", target), {"code": "000000", "next": target})
        assert wrong.status_code == 400
        assert_stays_on_site(wrong, f"verify, wrong code {target!r}")


def test_second_factor_enrolment_never_links_off_site(org):
    from django_otp.plugins.otp_totp.models import TOTPDevice

    user = make_user(Role.MANAGER)  # a role that must enrol, with no authenticator yet
    client = browser_login(user, verify=False)
    for target in EVIL:
        page = client.get(_with_next("/accounts/mfa/enrol/", target))
        assert page.status_code == 200
        assert_stays_on_site(page, f"enrol page {target!r}")
    for target in EVIL_CORE:  # confirming enrols the user for good: one new user per disguise
        user = make_user(Role.MANAGER)
        client = browser_login(user, verify=False)
        client.get("/accounts/mfa/enrol/")
        device = TOTPDevice.objects.get(user=user, confirmed=False)
        done = client.post(_with_next("/accounts/mfa/enrol/", target), {"code": totp_code(device), "next": target})
        assert done.status_code == 200 and b"Continue" in done.content  # the backup codes page
        assert_stays_on_site(done, f"backup codes page's Continue link {target!r}")


def test_admin_sign_in_and_logout_never_redirect_off_site(org):
    give_authenticator(org.admin)
    login = {"username": org.admin.email, "password": PASSWORD}
    for target in EVIL:
        response = Client().post(_with_next("/admin/login/", target), login)
        assert response.status_code == 302
        assert_stays_on_site(response, f"admin login {target!r}")
    for target in EVIL_CORE:
        # Follow the chain (the verification step) to its end: every hop stays on the portal.
        client = Client()
        response = client.post(_with_next("/admin/login/", target), login)
        for _ in range(4):
            if response.status_code not in (301, 302):
                break
            response = client.get(response["Location"])
            assert_stays_on_site(response, f"admin login chain {target!r}")
    verified = browser_login(org.admin)
    for target in EVIL:
        assert_stays_on_site(verified.get(_with_next("/admin/login/", target)), f"admin login, signed in {target!r}")
    for target in EVIL_CORE:
        verified = browser_login(org.admin)
        assert_stays_on_site(verified.post(_with_next("/admin/logout/", target)), f"admin logout {target!r}")


STEPS = ("/accounts/login/", "/admin/login/", "/accounts/mfa/")


def test_deep_links_through_sign_in_and_verification_keep_to_the_portal(org):
    """A protected page reached with an attacker's ``next`` in its own query string: the sign-in
    and verification steps carry the page's path (on the portal) and end on that page."""
    device = give_authenticator(org.manager)
    for page in ("/customers/?next=https://evil.example/", "/admin/?next=//evil.example"):
        client = Client()
        response, hops = client.get(page), []
        while response.status_code == 302 and len(hops) < 6:
            location = response["Location"]
            assert not offsite(location), f"{page} via {hops}: {location}"
            if location.startswith(STEPS):  # the steps that will follow their next later
                assert_stays_on_site(response, f"{page} via {hops}")
            hops.append(location)
            if location.startswith(STEPS[:2]):
                response = client.post(location, {"username": org.manager.email, "password": PASSWORD})
            elif location.startswith("/accounts/mfa/verify/"):
                response = client.post(location, {"code": totp_code(device)})
            else:
                response = client.get(location)
        assert response.status_code == 200, hops
        assert hops[-1] == page, hops  # the page itself, with its harmless query, nowhere else


# --- 3. Path traversal on downloads -----------------------------------------------------------

TRAVERSALS = [
    "../../../../etc/passwd",
    "..%2f..%2f..%2f..%2fetc%2fpasswd",
    "..%252f..%252f..%252fetc%252fpasswd",
    "%2e%2e/%2e%2e/%2e%2e/etc/passwd",
    "....//....//....//etc/passwd",
    "/etc/passwd",
    "%2Fetc%2Fpasswd",
    "..\\..\\..\\etc\\passwd",
    "etc/passwd%00",
    "%00",
    "passwd%00.csv",
]


def assert_no_file_leak(response, context: str) -> None:
    """Refused (400/403/404), or at most sent to another page of the portal, never a file."""
    if response.status_code in (301, 302):
        assert not offsite(response["Location"]), context
    else:
        assert response.status_code in (400, 403, 404), f"{context}: {response.status_code}"
    body = b"".join(response.streaming_content) if response.streaming else response.content
    assert not any(marker in body for marker in PASSWD_MARKERS), context


def _done_export(user) -> Export:
    """An export run to the end by the real task body (in-process, as the worker runs it)."""
    form = exports.ExportRequestSerializer(
        data={"dataset": "customers", "format": "csv", "purpose": "Traversal test of the download link"}
    )
    form.is_valid(raise_exception=True)
    export = exports.start(user, form.validated_data)
    result = run_export.apply(args=[str(export.pk)], kwargs={"acting_user_id": user.pk})
    assert result.successful(), result.traceback
    export.refresh_from_db()
    assert export.status == "done"
    return export


def test_export_downloads_resist_traversal_and_other_users_links(org):
    export = _done_export(org.admin)
    owner = token_client(org.admin)
    base = f"/api/v1/exports/{export.pk}/download/"
    token = exports.download_token(export)
    good = owner.get(f"{base}?token={token}")
    assert good.status_code == 200 and good.content.startswith(b"id,team_id")
    # Traversal in the id, in the token, and in parameters the view does not read.
    for evil in TRAVERSALS:
        assert_no_file_leak(owner.get(f"/api/v1/exports/{evil}/download/?token={token}"), f"id {evil}")
        assert_no_file_leak(owner.get(f"/api/v1/exports/{export.pk}/{evil}"), f"suffix {evil}")
        assert_no_file_leak(owner.get(f"{base}?token={evil}"), f"token {evil}")
        extra = owner.get(f"{base}?token={token}&file={evil}&path={evil}&name={evil}")
        assert extra.status_code == 400 or extra.content == good.content, evil  # 400: a NUL byte
    # A NUL byte in the token, a token for another export, and a forged token.
    assert_no_file_leak(owner.get(f"{base}?token={token}%00"), "NUL")
    other = _done_export(org.admin)
    assert_no_file_leak(owner.get(f"{base}?token={exports.download_token(other)}"), "other export's token")
    assert_no_file_leak(owner.get(f"{base}?token={token[:-2]}xx"), "forged signature")
    # Another user's valid link, as another admin and as the manager (404, never the file).
    for someone in (make_user(Role.ADMIN), org.manager):
        assert_no_file_leak(token_client(someone).get(f"{base}?token={token}"), f"{someone}")
    # The browser pages name only the requester's own exports.
    manager_browser = browser_login(org.manager)
    assert_no_file_leak(manager_browser.get(f"/exports/{export.pk}/"), "status page")
    assert_no_file_leak(manager_browser.get(f"/exports/{export.pk}/status.json"), "status json")


@pytest.mark.parametrize("stored", ["../../../../etc/passwd", "/etc/passwd", "..", "", "subject-requests"])
def test_a_tampered_stored_file_name_never_reads_outside_the_export_directory(org, stored):
    """Defence in depth: even a file name changed in the database serves nothing from elsewhere."""
    export = _done_export(org.admin)
    Export.objects.filter(pk=export.pk).update(file_name=stored)
    response = token_client(org.admin).get(
        f"/api/v1/exports/{export.pk}/download/?token={exports.download_token(export)}"
    )
    assert_no_file_leak(response, stored)


def test_a_download_never_serves_another_users_file_or_a_500(org):
    """The row names another user's export file (same directory, same key), or its own file is
    gone (cleaned up from disk): 404 either way, never the other file, never a server error."""
    victim = _done_export(org.manager)
    export = _done_export(org.admin)
    link = f"/api/v1/exports/{export.pk}/download/?token={exports.download_token(export)}"
    Export.objects.filter(pk=export.pk).update(file_name=victim.file_name)
    response = token_client(org.admin).get(link)
    assert_no_file_leak(response, "another user's file")
    assert exports.read_file(victim).decode() not in response.content.decode()
    Export.objects.filter(pk=export.pk).update(file_name=export.file_name)
    (exports.export_dir() / export.file_name).unlink()
    assert_no_file_leak(token_client(org.admin).get(link), "deleted file")


def _package(org):
    subject_request = _subject_request(org)
    SubjectRequest.objects.filter(pk=subject_request.pk).update(status=RequestStatus.IN_PROGRESS)
    subject_request.refresh_from_db()
    with scoped(org.dpo):
        package = subject_export.build_package(subject_request, org.dpo)
    return subject_request, package


def test_access_package_downloads_resist_traversal_and_other_users_links(org):
    subject_request, package = _package(org)
    dpo = browser_login(org.dpo)
    base = f"/admin/compliance/subjectrequest/{subject_request.pk}/packages/{package.pk}/download/"
    token = subject_export.download_token(package, org.dpo)
    good = dpo.get(f"{base}?token={token}")
    assert good.status_code == 200 and good["Content-Type"] == "application/zip"
    prefix = f"/admin/compliance/subjectrequest/{subject_request.pk}/packages/"
    for evil in TRAVERSALS:
        assert_no_file_leak(dpo.get(f"{prefix}{evil}/download/?token={token}"), f"package id {evil}")
        assert_no_file_leak(dpo.get(f"{base}?token={evil}"), f"token {evil}")
        extra = dpo.get(f"{base}?token={token}&file={evil}")
        assert extra.status_code == 400 or extra.content == good.content, evil  # 400: a NUL byte
    # The package under another request's id; another DPO with this DPO's link.
    other_request = _subject_request(org)
    moved = f"/admin/compliance/subjectrequest/{other_request.pk}/packages/{package.pk}/download/?token={token}"
    assert_no_file_leak(dpo.get(moved), "another request's URL")
    second_dpo = make_user("DPO")
    assert_no_file_leak(browser_login(second_dpo).get(f"{base}?token={token}"), "another DPO")
    # An admin reads requests but holds no download right, even with a valid-looking link.
    admin_token = subject_export.download_token(package, org.admin)
    assert_no_file_leak(browser_login(org.admin).get(f"{base}?token={admin_token}"), "admin")


@pytest.mark.parametrize("stored", ["../../../../etc/passwd", "/etc/passwd", ".."])
def test_a_tampered_package_file_name_never_reads_outside_the_package_directory(org, stored):
    subject_request, package = _package(org)
    AccessPackage.objects.filter(pk=package.pk).update(file_name=stored)
    base = f"/admin/compliance/subjectrequest/{subject_request.pk}/packages/{package.pk}/download/"
    token = subject_export.download_token(package, org.dpo)
    assert_no_file_leak(browser_login(org.dpo).get(f"{base}?token={token}"), stored)


def test_a_deleted_package_file_is_a_404(org):
    subject_request, package = _package(org)
    (subject_export.package_dir() / package.file_name).unlink()
    base = f"/admin/compliance/subjectrequest/{subject_request.pk}/packages/{package.pk}/download/"
    token = subject_export.download_token(package, org.dpo)
    assert_no_file_leak(browser_login(org.dpo).get(f"{base}?token={token}"), "deleted package")


def test_the_evidence_pack_and_audit_export_take_no_paths(org):
    admin = browser_login(org.admin)
    for evil in TRAVERSALS:
        response = admin.post("/admin/compliance/monthlychecklist/evidence-pack/", {"start": evil, "end": evil})
        assert response.status_code == 302 and "Content-Disposition" not in response, evil
        exported = admin.get("/admin/audit/auditevent/export/", {"from": evil, "to": evil, "format": "csv"})
        assert_no_file_leak(exported, f"audit export dates {evil}")
        exported = admin.get(
            "/admin/audit/auditevent/export/", {"from": "2020-01-01", "to": "2020-01-02", "format": evil}
        )
        assert_no_file_leak(exported, f"audit export format {evil}")
        assert_no_file_leak(admin.get(f"/admin/accounts/accessreview/{evil}/csv/"), f"review csv {evil}")
    # The pack's file name comes from the validated dates, never from the request.
    today = date.today().isoformat()
    pack = admin.post("/admin/compliance/monthlychecklist/evidence-pack/", {"start": today, "end": today})
    assert pack.status_code == 200
    assert pack["Content-Disposition"] == f'attachment; filename="evidence-pack-{today}-{today}.zip"'
    body = b"".join(pack.streaming_content)
    assert body.startswith(b"PK") and not any(marker in body for marker in PASSWD_MARKERS)


@pytest.mark.parametrize("prefix", ["/static/", "/admin/", "/exports/", "/"])
def test_static_files_and_pages_serve_nothing_from_outside(db, prefix):
    client = Client()
    for evil in TRAVERSALS:
        response = client.get(f"{prefix}{evil}")
        assert not any(marker in response.content for marker in PASSWD_MARKERS), f"{prefix}{evil}"
        assert response.status_code in (302, 400, 403, 404), f"{prefix}{evil}: {response.status_code}"
