"""MFA (django-otp TOTP) for Admin, Manager and the DPO duty: enrolment with a QR code and backup
codes, verification before the admin site, and verified tokens before API writes and exports."""

import re

import pytest
from django.test import Client, override_settings
from django_otp.plugins.otp_static.models import StaticDevice
from django_otp.plugins.otp_totp.models import TOTPDevice
from rest_framework import serializers
from rest_framework.decorators import api_view, permission_classes
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.test import APIClient, APIRequestFactory, force_authenticate

from accounts import policy, services
from accounts.models import ApiTokenInfo
from accounts.permissions import MfaSatisfied
from accounts.policy import Role
from audit.models import AuditEvent
from tests.conftest import token_client
from tests.factories import PASSWORD, browser_login, give_authenticator, totp_code

LOGIN = "/accounts/login/"
ENROL = "/accounts/mfa/enrol/"
VERIFY = "/accounts/mfa/verify/"
QR = "/accounts/mfa/enrol/qr.svg"
TOKEN = "/api/v1/auth/token/"
CUSTOMERS = "/api/v1/customers/"


def password_login(user, client=None) -> tuple[Client, object]:
    client = client or Client()
    response = client.post(LOGIN, {"username": user.email, "password": PASSWORD, "next": "/admin/"})
    return client, response


def test_the_policy_names_who_needs_mfa(org):
    assert policy.MFA_REQUIRED_ROLES == {Role.ADMIN, Role.MANAGER}
    assert policy.MFA_REQUIRED_DUTIES == {policy.Duty.DPO}
    assert policy.requires_mfa(org.admin) and policy.requires_mfa(org.manager) and policy.requires_mfa(org.dpo)
    assert not policy.requires_mfa(org.analyst) and not policy.requires_mfa(org.executive)


@pytest.mark.parametrize("who", ["manager", "admin", "dpo"])
def test_privileged_user_without_a_device_is_sent_to_enrolment_not_let_in(org, who):
    client, response = password_login(getattr(org, who))
    assert response.status_code == 302
    assert response["Location"].startswith(ENROL)
    # The admin site sends them back to enrolment, whatever page they ask for.
    for path in ["/admin/", "/admin/datasets/customer/", "/admin/accounts/user/"]:
        refused = client.get(path)
        assert refused.status_code == 302 and refused["Location"].startswith(ENROL), path


def test_enrolment_shows_a_qr_code_then_backup_codes_once(org):
    user = org.manager
    client, _ = password_login(user)
    page = client.get(ENROL)
    assert page.status_code == 200
    body = page.content.decode()
    assert QR in body
    device = TOTPDevice.objects.get(user=user, confirmed=False)
    secret = re.search(r"<code>([A-Z2-7 ]+)</code>", body).group(1).replace(" ", "")
    from base64 import b32encode

    assert secret == b32encode(device.bin_key).decode()
    # The QR code is an SVG made by the portal itself (no third-party image service).
    qr = client.get(QR)
    assert qr.status_code == 200 and qr["Content-Type"] == "image/svg+xml"
    assert b"<svg" in qr.content and b"http" not in qr.content.split(b"<svg", 1)[0].lower().replace(b"xmlns", b"")
    assert qr["Cache-Control"] == "no-store"

    wrong = client.post(ENROL, {"code": "000000"})
    assert wrong.status_code == 400 and "not valid" in wrong.content.decode()
    assert not TOTPDevice.objects.get(pk=device.pk).confirmed

    before = client.cookies["sessionid"].value
    done = client.post(ENROL, {"code": totp_code(device), "next": "/admin/"})
    assert done.status_code == 200
    codes = re.findall(r"<li><code>([a-z2-7]+)</code></li>", done.content.decode())
    assert len(codes) == 10 and len(set(codes)) == 10
    assert TOTPDevice.objects.get(pk=device.pk).confirmed
    assert StaticDevice.objects.get(user=user).token_set.count() == 10
    assert client.cookies["sessionid"].value != before  # a new key for the elevated session
    assert AuditEvent.objects.filter(action="MFA_ENROLLED", actor_id=user.pk).exists()
    assert client.get("/admin/").status_code == 200
    # Enrolment is over: the page no longer offers a new secret, and the QR code is gone.
    assert client.get(ENROL).status_code == 302
    assert client.get(QR).status_code == 404


def test_enrolment_page_refuses_bad_input_with_a_field_message(org):
    client, _ = password_login(org.manager)
    for data in [{}, {"code": ""}, {"code": "x" * 17}, {"code": "abcdef"}]:
        response = client.post(ENROL, data)
        assert response.status_code == 400, data
        assert 'role="alert"' in response.content.decode()


def test_enrolled_user_verifies_with_totp_before_the_admin_site(org):
    user = org.admin
    device = give_authenticator(user)
    client, response = password_login(user)
    assert response["Location"].startswith(VERIFY)
    assert client.get("/admin/").status_code == 302
    refused = client.post(VERIFY, {"code": "123456", "next": "/admin/"})
    assert refused.status_code == 400
    assert client.get("/admin/").status_code == 302
    ok = client.post(VERIFY, {"code": totp_code(device), "next": "/admin/"})
    assert ok.status_code == 302 and ok["Location"] == "/admin/"
    assert client.get("/admin/").status_code == 200


def test_the_admin_login_page_leads_through_verification(org):
    user = org.manager
    device = give_authenticator(user)
    client = Client()
    response = client.post("/admin/login/?next=/admin/", {"username": user.email, "password": PASSWORD})
    assert response.status_code == 302
    step = client.get(response["Location"])
    assert step.status_code == 302 and step["Location"].startswith(VERIFY)
    verified = client.post(step["Location"], {"code": totp_code(device)})
    assert verified.status_code == 302 and verified["Location"] == "/admin/"
    assert client.get("/admin/").status_code == 200


def test_the_admin_site_itself_refuses_an_unverified_session(org):
    """Even without the redirecting middleware the site answers only verified privileged users."""
    give_authenticator(org.admin)
    client, _ = password_login(org.admin)
    with override_settings(MFA_REQUIRED_PATHS=["/nothing-guarded/"]):
        response = client.get("/admin/")
    assert response.status_code == 302 and response["Location"].startswith("/admin/login/")


def test_a_backup_code_works_once(org):
    user = org.manager
    client, _ = password_login(user)
    device = TOTPDevice.objects.create(user=user, name="Authenticator", confirmed=False)
    codes = re.findall(r"<code>([a-z2-7]+)</code>", client.post(ENROL, {"code": totp_code(device)}).content.decode())
    client.post("/accounts/logout/")
    client, _ = password_login(user)
    assert client.post(VERIFY, {"code": codes[0].upper(), "next": "/admin/"}).status_code == 302
    assert client.get("/admin/").status_code == 200
    client.post("/accounts/logout/")
    client, _ = password_login(user)
    assert client.post(VERIFY, {"code": codes[0]}).status_code == 400
    # A failure throttles the device for a moment (django-otp); a person would retry later.
    StaticDevice.objects.filter(user=user).update(throttling_failure_count=0)
    assert client.post(VERIFY, {"code": codes[1]}).status_code == 302


def test_analysts_need_no_second_factor(org):
    client, response = password_login(org.analyst)
    assert response.status_code == 302 and response["Location"] == "/admin/"
    assert client.get("/accounts/").status_code == 200


def test_the_verify_page_refuses_anonymous_users(db):
    response = Client().get(VERIFY)
    assert response.status_code == 302 and "/login/" in response["Location"]


def test_an_unsafe_next_is_ignored(org):
    device = give_authenticator(org.manager)
    client, _ = password_login(org.manager)
    response = client.post(VERIFY, {"code": totp_code(device), "next": "https://evil.example/steal"})
    assert response.status_code == 302 and response["Location"] == "/accounts/"


# --- API -------------------------------------------------------------------------------------


def token_request(user, **extra):
    return APIClient().post(TOKEN, {"email": user.email, "password": PASSWORD, **extra}, format="json")


def test_a_token_for_a_privileged_user_needs_a_one_time_code(org):
    device = give_authenticator(org.manager)
    missing = token_request(org.manager)
    assert missing.status_code == 400 and set(missing.json()) == {"otp"}
    wrong = token_request(org.manager, otp="000000")
    assert wrong.status_code == 400 and set(wrong.json()) == {"otp"}
    ok = token_request(org.manager, otp=totp_code(device))
    assert ok.status_code == 200, ok.content
    info = ApiTokenInfo.objects.get(token__user=org.manager)
    assert info.mfa_verified


def test_a_privileged_user_without_an_authenticator_gets_no_token(org):
    response = token_request(org.admin, otp="123456")
    assert response.status_code == 400
    assert "enrol" in response.json()["otp"][0]


def test_a_wrong_password_is_refused_before_any_mfa_hint(org):
    give_authenticator(org.manager)
    response = APIClient().post(TOKEN, {"email": org.manager.email, "password": "wrong-password-1"}, format="json")
    assert response.status_code == 400 and "otp" not in response.json()


def test_analyst_tokens_need_no_code(org):
    response = token_request(org.analyst)
    assert response.status_code == 200
    assert not ApiTokenInfo.objects.get(token__user=org.analyst).mfa_verified


@pytest.mark.parametrize("otp", ["x" * 17, ["a", "b"], {"a": 1}])
def test_a_malformed_code_is_a_field_error(org, otp):
    give_authenticator(org.manager)
    response = token_request(org.manager, otp=otp)
    assert response.status_code == 400 and "otp" in response.json()


def test_reads_work_on_a_password_only_token(org):
    client = token_client(org.manager, mfa=False)
    assert client.get(CUSTOMERS).status_code == 200


# MfaSatisfied on a stand-in write/export endpoint.
@api_view(["GET", "POST"])
@permission_classes([IsAuthenticated, MfaSatisfied])
def _write_view(request):
    return Response({"ok": True})


class _ExportView:
    policy_action = policy.Action.EXPORT


def _call(user, method, *, auth=None, view=_write_view, session_verified=None):
    factory = APIRequestFactory()
    request = getattr(factory, method.lower())("/stand-in/", {}, format="json")
    if session_verified is not None:
        user.is_verified = lambda: session_verified
    force_authenticate(request, user=user, token=auth)
    return view(request)


def _token(user, mfa):
    instance, _ = services.issue_token(user, mfa_verified=mfa)
    return type(instance).objects.select_related("portal_info").get(pk=instance.pk)


def test_mfa_satisfied_refuses_writes_on_an_unverified_token(org):
    assert _call(org.manager, "GET", auth=_token(org.manager, False)).status_code == 200
    refused = _call(org.manager, "POST", auth=_token(org.manager, False))
    assert refused.status_code == 403 and refused.data["detail"].code == "mfa_required"
    assert _call(org.manager, "POST", auth=_token(org.manager, True)).status_code == 200
    assert _call(org.dpo, "POST", auth=_token(org.dpo, False)).status_code == 403
    # Analysts' writes are never held up by MFA (their role does not need it).
    assert _call(org.analyst, "POST", auth=_token(org.analyst, False)).status_code == 200


def test_mfa_satisfied_follows_the_session_for_browser_requests(org):
    assert _call(org.admin, "POST", session_verified=False).status_code == 403
    assert _call(org.admin, "POST", session_verified=True).status_code == 200


def test_mfa_satisfied_guards_every_method_of_an_export_view(org):
    permission = MfaSatisfied()

    class Request:
        method = "GET"
        user = org.manager
        auth = _token(org.manager, False)

    assert not permission.has_permission(Request, _ExportView())
    Request.auth = _token(org.manager, True)
    assert permission.has_permission(Request, _ExportView())


def test_mfa_satisfied_refuses_anonymous_requests():
    from django.contrib.auth.models import AnonymousUser

    class Request:
        method = "GET"
        user = AnonymousUser()
        auth = None

    assert not MfaSatisfied().has_permission(Request, object())


def test_the_token_serializer_field_is_optional_and_bounded():
    from accounts.api.views import TokenRequestSerializer

    field = TokenRequestSerializer().fields["otp"]
    assert not field.required and field.max_length == 16
    assert isinstance(field, serializers.CharField)


def test_browser_login_helper_signs_in_through_the_real_pages(org):
    client = browser_login(org.admin)
    assert client.get("/admin/").status_code == 200
