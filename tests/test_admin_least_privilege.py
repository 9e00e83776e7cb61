"""Least privilege in the admin: the Admin role is no superuser and holds no Django model
permission; each role sees only the models and actions the policy gives it; library admins
(auth, celery beat, axes, auditlog) are governed by the policy's admin table, never by model perms."""

import pytest
from django.contrib import admin
from django.contrib.admin import ModelAdmin
from django.test import Client, RequestFactory

from accounts import policy
from accounts.models import User
from accounts.policy import AdminAction, Role
from portal.admin_site import PortalAdminSite, is_project_admin
from tests.factories import PASSWORD, browser_login, give_authenticator, make_user, totp_code

PERMISSION_METHODS = [
    "has_module_permission",
    "has_view_permission",
    "has_add_permission",
    "has_change_permission",
    "has_delete_permission",
]
LIBRARY_MODELS_FOR_ADMINS = {
    "auth.group",
    "axes.accessattempt",
    "axes.accesslog",
    "axes.accessfailurelog",
    "django_celery_beat.periodictask",
    "django_celery_beat.crontabschedule",
    "django_celery_beat.intervalschedule",
    "django_celery_beat.clockedschedule",
    "django_celery_beat.solarschedule",
}
ACCOUNT_SECURITY_MODELS = {"knox.authtoken", "otp_totp.totpdevice", "otp_static.staticdevice"}
ACCOUNT_MODELS = {"accounts.user", "accounts.department", "accounts.team"}


def visible_models(client) -> set[str]:
    response = client.get("/admin/")
    assert response.status_code == 200
    return {
        f"{app['app_label']}.{m['object_name'].lower()}" for app in response.context["app_list"] for m in app["models"]
    }


def request_for(user):
    request = RequestFactory().get("/admin/")
    request.user = user
    user.is_verified = lambda: True
    return request


def test_the_admin_site_is_the_portals():
    assert isinstance(admin.site._wrapped if hasattr(admin.site, "_wrapped") else admin.site, PortalAdminSite)


def test_the_admin_role_is_no_superuser_and_holds_no_model_permission(org):
    assert not org.admin.is_superuser
    assert org.admin.is_staff
    fresh = User.objects.get(pk=org.admin.pk)
    assert fresh.get_all_permissions() == set()
    assert not fresh.user_permissions.exists()
    assert not any(g.permissions.exists() for g in fresh.groups.all())


def test_admins_see_account_security_and_operations_models(org):
    seen = visible_models(browser_login(org.admin))
    assert ACCOUNT_MODELS | ACCOUNT_SECURITY_MODELS | LIBRARY_MODELS_FOR_ADMINS | {"accounts.accessreview"} <= seen
    assert "datasets.customer" in seen


def test_managers_see_no_account_or_library_model(org):
    seen = visible_models(browser_login(org.manager))
    assert {"datasets.customer", "accounts.accessreview"} <= seen
    assert not seen & (ACCOUNT_MODELS | ACCOUNT_SECURITY_MODELS | LIBRARY_MODELS_FOR_ADMINS)


@pytest.mark.parametrize("who", ["analyst", "executive"])
def test_roles_without_admin_work_are_kept_out(org, who):
    client = browser_login(getattr(org, who))
    response = client.get("/admin/")
    assert response.status_code == 302 and "/admin/login/" in response["Location"]


def test_library_admins_follow_the_policy_table_exactly(org):
    users = {role: getattr(org, role.value.lower()) for role in (Role.ADMIN, Role.MANAGER, Role.ANALYST)}
    library = [(m, ma) for m, ma in admin.site._registry.items() if getattr(type(ma), "policy_wraps", None)]
    assert {m._meta.label_lower for m, _ in library} >= LIBRARY_MODELS_FOR_ADMINS
    for model, model_admin in library:
        label = model._meta.label_lower
        assert not is_project_admin(type(model_admin).policy_wraps), label
        for role, user in users.items():
            allowed = policy.ADMIN_SITE_MODELS.get(label, {}).get(role, frozenset())
            request = request_for(user)
            assert model_admin.has_add_permission(request) == (AdminAction.ADD in allowed), (label, role)
            assert model_admin.has_change_permission(request) == (AdminAction.CHANGE in allowed), (label, role)
            assert model_admin.has_delete_permission(request) == (AdminAction.DELETE in allowed), (label, role)
            assert model_admin.has_view_permission(request) == bool(allowed & {AdminAction.VIEW, AdminAction.CHANGE}), (
                label,
                role,
            )


def test_every_admin_is_the_projects_or_behind_the_policy_table():
    for model, model_admin in admin.site._registry.items():
        wrapped = getattr(type(model_admin), "policy_wraps", None)
        assert is_project_admin(type(model_admin)) and (wrapped is None or not is_project_admin(wrapped)), model


def test_project_admins_never_fall_back_to_django_model_permissions():
    for model, model_admin in admin.site._registry.items():
        if not is_project_admin(type(model_admin)) or getattr(type(model_admin), "policy_wraps", None):
            continue
        for method in PERMISSION_METHODS:
            assert getattr(type(model_admin), method) is not getattr(ModelAdmin, method), (
                f"{model._meta.label_lower}.{method} uses Django model permissions"
            )


def test_a_superuser_without_a_role_gets_nothing_from_library_admins(org):
    superuser = User.objects.create_superuser("root@example.test", PASSWORD)
    request = request_for(superuser)
    for model, model_admin in admin.site._registry.items():
        if getattr(type(model_admin), "policy_wraps", None):
            assert not model_admin.has_module_permission(request), model._meta.label_lower


def test_admins_may_only_read_groups(org):
    client = browser_login(org.admin)
    assert client.get("/admin/auth/group/").status_code == 200
    assert client.get("/admin/auth/group/add/").status_code == 403
    group = org.admin.groups.first()
    page = client.get(f"/admin/auth/group/{group.pk}/change/")
    assert page.status_code == 200 and 'name="_save"' not in page.content.decode()
    assert client.post(f"/admin/auth/group/{group.pk}/delete/", {"post": "yes"}).status_code == 403


def test_admins_unlock_but_never_add_lockouts(org):
    client = browser_login(org.admin)
    assert client.get("/admin/axes/accessattempt/").status_code == 200
    assert client.get("/admin/axes/accessattempt/add/").status_code == 403


def test_managers_cannot_open_library_or_account_admin_pages(org):
    client = browser_login(org.manager)
    for path in [
        "/admin/auth/group/",
        "/admin/django_celery_beat/periodictask/",
        "/admin/axes/accessattempt/",
        "/admin/accounts/user/",
        "/admin/knox/authtoken/",
        "/admin/otp_totp/totpdevice/",
    ]:
        assert client.get(path).status_code in (403, 404), path


def test_the_access_review_changelist_offers_no_bulk_delete(org):
    client = browser_login(org.manager)
    response = client.get("/admin/accounts/accessreview/")
    assert response.status_code == 200
    assert "delete_selected" not in response.content.decode()


def test_second_factor_secrets_never_show_in_the_admin(org):
    device = give_authenticator(org.manager)
    totp_code(device)
    client = browser_login(org.admin)
    listing = client.get("/admin/otp_totp/totpdevice/").content.decode()
    page = client.get(f"/admin/otp_totp/totpdevice/{device.pk}/change/").content.decode()
    for body in (listing, page):
        assert device.key not in body
        assert "otpauth://" not in body


def test_deleting_a_device_resets_the_second_factor_and_is_audited(org):
    from audit.models import AuditEvent

    device = give_authenticator(org.manager)
    manager = browser_login(org.manager)
    admin_client = browser_login(org.admin)
    response = admin_client.post(f"/admin/otp_totp/totpdevice/{device.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    assert not type(device).objects.filter(user=org.manager).exists()
    assert manager.get("/admin/").status_code == 302  # their session ended; they enrol again
    assert AuditEvent.objects.filter(action="ACCESS_REVOKED", resource="mfa", actor_id=org.admin.pk).exists()


def test_admins_revoke_tokens_in_the_admin(org):
    from accounts import services
    from audit.models import AuditEvent

    instance, token = services.issue_token(org.analyst, mfa_verified=False)
    client = browser_login(org.admin)
    listing = client.get("/admin/knox/authtoken/").content.decode()
    assert token not in listing and token[:15] not in listing  # only the digest's id is shown
    assert instance.digest[:16] in listing
    assert client.get("/admin/knox/authtoken/add/").status_code == 403
    response = client.post(f"/admin/knox/authtoken/{instance.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    assert not type(instance).objects.filter(pk=instance.pk).exists()
    assert AuditEvent.objects.filter(action="TOKEN_REVOKED", actor_id=org.admin.pk).exists()


def test_an_admin_without_mfa_sees_no_admin_at_all(org):
    device = give_authenticator(org.admin)
    client = Client()
    client.post("/accounts/login/", {"username": org.admin.email, "password": PASSWORD})
    assert client.get("/admin/").status_code == 302
    assert client.get("/admin/accounts/user/").status_code == 302
    client.post("/accounts/mfa/verify/", {"code": totp_code(device)})
    assert client.get("/admin/accounts/user/").status_code == 200


def test_a_new_admin_is_created_without_superuser_powers(db):
    admin_user = make_user(Role.ADMIN)
    assert admin_user.is_staff and not admin_user.is_superuser
