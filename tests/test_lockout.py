"""Lockout (django-axes): 5 failures per email and client address lock for 15 minutes, on every
login path (portal page, admin page, API token); one answer whether the account exists or not."""

from datetime import timedelta

import pytest
from axes.models import AccessAttempt, AccessFailureLog
from django.conf import settings
from django.test import Client
from rest_framework.test import APIClient

from accounts.lockout import attempt_key
from audit.models import AuditEvent
from tests.factories import PASSWORD, browser_login, give_authenticator, totp_code

LOGIN = "/accounts/login/"
ADMIN_LOGIN = "/admin/login/"
TOKEN = "/api/v1/auth/token/"
LIMIT = 5


def page_login(email, password, *, ip="127.0.0.1", path=LOGIN):
    return Client(REMOTE_ADDR=ip).post(path, {"username": email, "password": password})


def api_login(email, password, *, ip="127.0.0.1", **extra):
    return APIClient(REMOTE_ADDR=ip).post(TOKEN, {"email": email, "password": password, **extra}, format="json")


def test_the_settings_say_five_failures_and_fifteen_minutes():
    assert settings.AXES_FAILURE_LIMIT == LIMIT
    assert settings.AXES_COOLOFF_TIME == timedelta(minutes=15)
    assert settings.AUTHENTICATION_BACKENDS[0] == "axes.backends.AxesStandaloneBackend"
    assert settings.AXES_LOCKOUT_PARAMETERS == [["username", "ip_address"]]


def test_five_failures_lock_the_login_page_even_for_the_right_password(org):
    email = org.analyst.email
    for _ in range(LIMIT - 1):
        response = page_login(email, "wrong-password-123")
        assert response.status_code == 400
        assert "correct email and password" in response.content.decode()
    locked = page_login(email, "wrong-password-123")
    assert locked.status_code == 429
    assert "Try again in 15 minutes" in locked.content.decode()
    assert locked["Retry-After"] == "900"
    # Locked: the right password gets the same answer and no session.
    right = page_login(email, PASSWORD)
    assert right.status_code == 429
    assert "sessionid" not in right.cookies or not right.cookies["sessionid"].value
    # Recorded: axes' attempt rows and failure log, and the audit trail.
    attempt = AccessAttempt.objects.get(username=attempt_key(email), ip_address="127.0.0.1")
    assert attempt.failures_since_start == LIMIT
    assert "wrong-password" not in attempt.post_data and email not in attempt.post_data
    assert AccessFailureLog.objects.filter(username=attempt_key(email)).count() >= LIMIT
    # What was typed never reaches axes' tables: only a keyed hash of it.
    for row in [*AccessAttempt.objects.values(), *AccessFailureLog.objects.values()]:
        assert email not in str(row)
    events = AuditEvent.objects.filter(action="LOCKED_OUT", actor_id=org.analyst.pk)
    assert events.filter(reason__startswith="locked out").count() == 1
    assert events.filter(reason__startswith="attempt refused").exists()


def test_an_unknown_account_gets_exactly_the_same_answers(org):
    known, unknown = org.analyst.email, "nobody.here@example.test"
    for _ in range(LIMIT - 1):
        a, b = page_login(known, "wrong-password-123"), page_login(unknown, "wrong-password-123")
        assert a.status_code == b.status_code == 400
        assert _error_text(a) == _error_text(b)
    a, b = page_login(known, "wrong-password-123"), page_login(unknown, "wrong-password-123")
    assert a.status_code == b.status_code == 429
    assert a.content == b.content
    assert AccessAttempt.objects.filter(username=attempt_key(unknown)).exists()
    assert AuditEvent.objects.filter(action="LOCKED_OUT", actor_id=None).exists()


def _error_text(response) -> str:
    body = response.content.decode()
    return body[body.index('role="alert"') :].split("</p>", 1)[0]


def test_the_lock_is_per_email_and_address(org):
    email = org.analyst.email
    for _ in range(LIMIT):
        page_login(email, "wrong-password-123", ip="10.0.0.1")
    assert page_login(email, PASSWORD, ip="10.0.0.1").status_code == 429
    # The same account from another address, and another account from the same address, log in.
    assert page_login(email, PASSWORD, ip="10.0.0.2").status_code == 302
    assert page_login(org.other_analyst.email, PASSWORD, ip="10.0.0.1").status_code == 302


def test_the_lock_is_case_insensitive_on_the_email(org):
    email = org.analyst.email
    for n in range(LIMIT):
        page_login(email.upper() if n % 2 else email, "wrong-password-123")
    assert page_login(email, PASSWORD).status_code == 429


def test_the_lock_ends_after_the_cool_off(org):
    email = org.analyst.email
    for _ in range(LIMIT):
        page_login(email, "wrong-password-123")
    assert page_login(email, PASSWORD).status_code == 429
    attempts = AccessAttempt.objects.filter(username=attempt_key(email))
    attempts.update(attempt_time=attempts.get().attempt_time - timedelta(minutes=15, seconds=1))
    assert page_login(email, PASSWORD).status_code == 302


def test_an_admin_can_lift_a_lock_early(org):
    email = org.analyst.email
    for _ in range(LIMIT):
        page_login(email, "wrong-password-123")
    assert page_login(email, PASSWORD).status_code == 429
    admin = browser_login(org.admin)
    response = admin.post("/admin/accounts/user/", {"action": "unlock_sign_in", "_selected_action": [org.analyst.pk]})
    assert response.status_code == 302
    assert page_login(email, PASSWORD).status_code == 302
    assert AuditEvent.objects.filter(action="ACCESS_GRANTED", resource="lockout", actor_id=org.admin.pk).exists()


def test_a_success_resets_the_count(org):
    email = org.analyst.email
    for _ in range(LIMIT - 1):
        page_login(email, "wrong-password-123")
    assert page_login(email, PASSWORD).status_code == 302
    for _ in range(LIMIT - 1):
        assert page_login(email, "wrong-password-123").status_code == 400
    assert page_login(email, PASSWORD).status_code == 302


def test_a_token_success_resets_the_count_too(org):
    email = org.analyst.email
    for _ in range(LIMIT - 1):
        api_login(email, "wrong-password-123")
    assert api_login(email, PASSWORD).status_code == 200
    for _ in range(LIMIT - 1):
        assert api_login(email, "wrong-password-123").status_code == 400
    assert api_login(email, PASSWORD).status_code == 200


def test_the_admin_login_page_locks_too(org):
    email = org.manager.email
    for _ in range(LIMIT - 1):
        assert page_login(email, "wrong-password-123", path=ADMIN_LOGIN).status_code == 200
    assert page_login(email, "wrong-password-123", path=ADMIN_LOGIN).status_code == 429
    assert page_login(email, PASSWORD, path=ADMIN_LOGIN).status_code == 429
    # The lock covers every login path for that email and address.
    assert page_login(email, PASSWORD).status_code == 429


def test_the_token_endpoint_locks_with_one_json_answer(org):
    known, unknown = org.analyst.email, "nobody.here@example.test"
    for _ in range(LIMIT - 1):
        a, b = api_login(known, "wrong-password-123"), api_login(unknown, "wrong-password-123")
        assert a.status_code == b.status_code == 400
        assert a.json() == b.json()
    a, b = api_login(known, "wrong-password-123"), api_login(unknown, "wrong-password-123")
    assert a.status_code == b.status_code == 429
    assert a.json() == b.json() == {"detail": "Too many failed attempts. Try again in 15 minutes."}
    assert api_login(known, PASSWORD).status_code == 429
    assert AuditEvent.objects.filter(action="LOCKED_OUT", resource="api_token", actor_id=org.analyst.pk).exists()


def test_guessing_one_time_codes_locks_out_too(org):
    user = org.manager
    device = give_authenticator(user)
    for _ in range(LIMIT - 1):
        response = api_login(user.email, PASSWORD, otp="000000")
        assert response.status_code == 400 and "otp" in response.json()
    assert api_login(user.email, PASSWORD, otp="000000").status_code == 429
    assert api_login(user.email, PASSWORD, otp=totp_code(device)).status_code == 429


def test_guessing_codes_on_the_verify_page_locks_out(org):
    user = org.admin
    give_authenticator(user)
    client = Client()
    assert client.post(LOGIN, {"username": user.email, "password": PASSWORD}).status_code == 302
    statuses = [client.post("/accounts/mfa/verify/", {"code": "000000"}).status_code for _ in range(LIMIT)]
    assert statuses == [400] * (LIMIT - 1) + [429]
    assert client.get("/admin/").status_code == 302  # still not verified


@pytest.mark.parametrize("payload", [{"username": "", "password": ""}, {"username": "x" * 300, "password": "p"}, {}])
def test_bad_login_form_input_is_a_form_error_not_a_500(db, payload):
    response = Client().post(LOGIN, payload)
    assert response.status_code == 400
    assert "errorlist" in response.content.decode() or 'role="alert"' in response.content.decode()
