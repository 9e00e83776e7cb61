"""Attacks on credentials: replaying a revoked API token, and fixing a session id before sign-in.

Token replay: a token revoked in any of the ways the portal offers (by its owner, by itself as an
API logout, by an administrator through the token list or the admin site, by disabling the user,
changing their password, role or second factor, or ending their sessions) answers 401 on every
kind of API endpoint: list, detail, write and export.  ``tests/test_sessions.py`` and
``tests/test_tokens_manage.py`` show the same for one list endpoint each; here every kind is asked.

Session fixation: ``tests/test_sessions.py`` proves that a planted session id is replaced at the
password step (``test_login_gives_a_new_session_key_and_drops_a_planted_one``) and that the key
changes again at the second-factor step (``test_second_factor_verification_gives_yet_another_key``);
``tests/test_mfa.py`` shows the same at enrolment.  Added here: the cookie captured between the
two steps is worthless afterwards while the new one holds the elevated session, the admin site's
own sign-in page replaces a planted id too, and a cookie replayed after logout is signed out.
"""

import pytest
from django.test import Client
from knox.models import AuthToken
from rest_framework.test import APIClient

from accounts import selectors, services
from accounts.models import User, UserSession
from accounts.policy import Role
from accounts.sessions import SessionStore
from datasets.models import Export, Report
from portal.security_context import scoped
from tests.conftest import BOTH_DATABASES
from tests.factories import PASSWORD, browser_login, give_authenticator, make_user, totp_code

pytestmark = pytest.mark.django_db(databases=BOTH_DATABASES)

REPORT = {"title": "replayed", "definition": {"dataset": "orders", "aggregate": "count", "group_by": "team"}}
EXPORT = {"dataset": "customers", "format": "csv", "purpose": "Replay of a revoked token, must fail"}


def with_token(token: str, prefix: str = "Token") -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"{prefix} {token}")
    return client


def endpoint_kinds(org) -> dict[str, tuple]:
    """One request per kind of API endpoint (method, path, body) that the admin may make."""
    customer = org.customers["North"][0].pk
    return {
        "list": ("get", "/api/v1/customers/", None),
        "detail": ("get", f"/api/v1/customers/{customer}/", None),
        "write": ("post", "/api/v1/reports/", {**REPORT, "team": org.north.pk}),
        "export list": ("get", "/api/v1/exports/", None),
        "export": ("post", "/api/v1/exports/", EXPORT),
        "token list": ("get", "/api/v1/auth/tokens/", None),
        "privacy request": ("get", "/api/v1/privacy-requests/999999999/", None),
    }


def call(client, request):
    method, path, body = request
    return getattr(client, method)(path, body, format="json") if body else getattr(client, method)(path)


def assert_works(org, token: str) -> None:
    """Control: before the revocation, the same token reaches every kind (so 401 later means it)."""
    expected = {"list": 200, "detail": 200, "write": 201, "export list": 200, "token list": 200, "privacy request": 404}
    for kind, request in endpoint_kinds(org).items():
        if kind == "export":
            continue  # starting a real export is the one request left for after the revocation
        response = call(with_token(token), request)
        assert response.status_code == expected[kind], f"{kind}: {response.status_code}"


def assert_dead(org, token: str) -> None:
    exports_before = Export.objects.count()
    for kind, request in endpoint_kinds(org).items():
        for prefix in ("Token", "token", "Token "):
            response = call(with_token(token, prefix), request)
            assert response.status_code == 401, f"{kind} with {prefix!r}: {response.status_code}"
            assert "results" not in response.json()
    assert Export.objects.count() == exports_before
    with scoped(system=True):
        assert Report.objects.filter(title="replayed").count() == 1  # only the control's


def _revoke_by_owner(org, victim, instance):
    other, _ = _issue(victim)
    assert with_token(other).delete(f"/api/v1/auth/tokens/{selectors.token_public_id(instance)}/").status_code == 204


def _revoke_itself(org, victim, instance):
    """The API's logout: the token revokes itself."""
    token = instance._plain_token
    assert with_token(token).delete(f"/api/v1/auth/tokens/{selectors.token_public_id(instance)}/").status_code == 204


def _revoke_by_admin_api(org, victim, instance):
    other_admin, _ = _issue(make_user(Role.ADMIN))
    listed = with_token(other_admin).get("/api/v1/auth/tokens/", {"user": victim.pk}).json()["results"]
    assert selectors.token_public_id(instance) in {row["id"] for row in listed}
    path = f"/api/v1/auth/tokens/{selectors.token_public_id(instance)}/"
    assert with_token(other_admin).delete(path).status_code == 204


def _revoke_in_admin_site(org, victim, instance):
    browser = browser_login(make_user(Role.ADMIN))
    response = browser.post(f"/admin/knox/authtoken/{instance.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302, response.status_code


def _disable_in_admin_site(org, victim, instance):
    browser = browser_login(make_user(Role.ADMIN))
    action = {"action": "disable_accounts", "_selected_action": [victim.pk], "index": "0"}
    assert browser.post("/admin/accounts/user/", action).status_code == 302
    assert not User.objects.get(pk=victim.pk).is_active
    # Even once the account is enabled again, the old token stays dead.
    User.objects.filter(pk=victim.pk).update(is_active=True)


def _change_password(org, victim, instance):
    services.change_password(victim, "a-brand-new-passphrase-99", actor=victim)


def _change_role(org, victim, instance):
    services.set_role(victim, Role.MANAGER, actor=make_user(Role.ADMIN))


def _end_sessions_in_admin_site(org, victim, instance):
    browser = browser_login(make_user(Role.ADMIN))
    action = {"action": "end_sessions_and_tokens", "_selected_action": [victim.pk], "index": "0"}
    assert browser.post("/admin/accounts/user/", action).status_code == 302


def _reset_second_factor(org, victim, instance):
    services.reset_mfa(victim, actor=make_user(Role.ADMIN))


def _issue(user) -> tuple[str, AuthToken]:
    instance, token = services.issue_token(user, mfa_verified=True)
    instance._plain_token = token
    return token, instance


REVOCATIONS = {
    "revoked by its owner through the API": _revoke_by_owner,
    "API logout (the token revokes itself)": _revoke_itself,
    "revoked by an admin through the token list": _revoke_by_admin_api,
    "revoked in the admin site's token list": _revoke_in_admin_site,
    "user disabled (then enabled again)": _disable_in_admin_site,
    "password changed": _change_password,
    "role changed": _change_role,
    "sessions and tokens ended by an admin": _end_sessions_in_admin_site,
    "second factor reset": _reset_second_factor,
}


@pytest.mark.parametrize("how", sorted(REVOCATIONS))
def test_a_revoked_token_gets_401_on_every_kind_of_endpoint(org, how):
    victim = org.admin  # reaches every kind of endpoint, export included
    token, instance = _issue(victim)
    bystander, _ = _issue(org.manager)
    assert_works(org, token)
    REVOCATIONS[how](org, victim, instance)
    assert_dead(org, token)
    assert not AuthToken.objects.filter(digest=instance.digest).exists()
    # Someone else's token is untouched (the revocation hit the victim's only).
    assert with_token(bystander).get("/api/v1/customers/").status_code == 200


def test_a_token_is_not_revived_by_restoring_the_password(org):
    token, _ = _issue(org.analyst)
    services.change_password(org.analyst, "a-brand-new-passphrase-99", actor=org.analyst)
    services.change_password(org.analyst, PASSWORD, actor=org.analyst)
    assert with_token(token).get("/api/v1/customers/").status_code == 401


# --- Session fixation and replay --------------------------------------------------------------


def session_key(client) -> str:
    return client.cookies["sessionid"].value


def _with_cookie(key: str) -> Client:
    client = Client()
    client.cookies["sessionid"] = key
    return client


def test_the_cookie_between_password_and_second_factor_is_worthless_afterwards(org):
    device = give_authenticator(org.manager)
    planted = SessionStore()
    planted.create()
    client = _with_cookie(planted.session_key)
    client.post("/accounts/login/", {"username": org.manager.email, "password": PASSWORD})
    after_password = session_key(client)
    assert after_password != planted.session_key
    # An attacker who copied the cookie now (or planted one before) waits for the victim's code.
    response = client.post("/accounts/mfa/verify/", {"code": totp_code(device), "next": "/admin/"})
    assert response.status_code == 302 and response["Location"] == "/admin/"
    verified = session_key(client)
    assert verified not in (after_password, planted.session_key)
    assert client.get("/admin/").status_code == 200  # the victim holds the elevated session
    for stale in (after_password, planted.session_key):
        attacker = _with_cookie(stale)
        assert attacker.get("/accounts/").status_code == 302  # not even signed in
        assert attacker.get("/admin/").status_code == 302
    assert set(UserSession.objects.filter(user_id=org.manager.pk).values_list("session_key", flat=True)) == {verified}


def test_the_admin_sign_in_page_replaces_a_planted_session_id(org):
    planted = SessionStore()
    planted["planted"] = True
    planted.create()
    client = _with_cookie(planted.session_key)
    response = client.post("/admin/login/?next=/admin/", {"username": org.manager.email, "password": PASSWORD})
    assert response.status_code == 302
    assert session_key(client) != planted.session_key
    assert not UserSession.objects.filter(session_key=planted.session_key).exists()
    assert _with_cookie(planted.session_key).get("/accounts/").status_code == 302


def test_a_session_cookie_replayed_after_logout_is_signed_out(org):
    client = browser_login(org.admin)
    stolen = session_key(client)
    assert client.get("/admin/").status_code == 200
    assert client.post("/accounts/logout/").status_code in (200, 302)
    replay = _with_cookie(stolen)
    assert replay.get("/accounts/").status_code == 302
    assert replay.get("/admin/").status_code == 302
    assert replay.get("/api/v1/customers/").status_code in (401, 403)
    assert replay.delete("/api/v1/auth/tokens/0000000000000000/").status_code in (401, 403)
    assert not UserSession.objects.filter(session_key=stolen).exists()
