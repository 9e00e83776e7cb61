"""Sessions: a new key at login, 30 minutes idle, 12 hours absolute; disabling a user, changing
a password or a role ends all their sessions and tokens at once; inactive accounts are disabled."""

import time
from datetime import timedelta

import pytest
from django.conf import settings
from django.contrib.auth.models import Group
from django.test import Client
from django.utils import timezone
from knox.models import AuthToken
from rest_framework.test import APIClient

from accounts import services
from accounts.models import User, UserSession
from accounts.policy import Role
from accounts.sessions import SessionStore
from accounts.signals import SESSION_STARTED_KEY
from accounts.tasks import disable_inactive_accounts
from audit.models import AuditEvent
from tests.factories import PASSWORD, browser_login, make_user

HOME = "/accounts/"
LOGIN = "/accounts/login/"
CUSTOMERS = "/api/v1/customers/"


def signed_in(client) -> bool:
    return client.get(HOME).status_code == 200


def session_key(client) -> str:
    return client.cookies["sessionid"].value


def with_token(user) -> tuple[APIClient, str]:
    _, token = services.issue_token(user, mfa_verified=True)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    return client, token


def test_the_settings_say_30_minutes_idle_and_12_hours_absolute():
    assert settings.SESSION_COOKIE_AGE == 30 * 60
    assert settings.SESSION_SAVE_EVERY_REQUEST
    assert settings.SESSION_ABSOLUTE_SECONDS == 12 * 3600
    assert settings.SESSION_ENGINE == "accounts.sessions"


def test_login_gives_a_new_session_key_and_drops_a_planted_one(org):
    planted = SessionStore()
    planted["planted"] = True
    planted.create()
    client = Client()
    client.cookies["sessionid"] = planted.session_key
    response = client.post(LOGIN, {"username": org.analyst.email, "password": PASSWORD})
    assert response.status_code == 302
    assert session_key(client) != planted.session_key
    assert not UserSession.objects.filter(session_key=planted.session_key).exists()
    assert UserSession.objects.get(session_key=session_key(client)).user_id == org.analyst.pk
    # The attacker's copy of the old cookie is not signed in.
    attacker = Client()
    attacker.cookies["sessionid"] = planted.session_key
    assert not signed_in(attacker)
    assert signed_in(client)


def test_second_factor_verification_gives_yet_another_key(org):
    from tests.factories import give_authenticator, totp_code

    device = give_authenticator(org.manager)
    client = Client()
    client.post(LOGIN, {"username": org.manager.email, "password": PASSWORD})
    after_password = session_key(client)
    client.post("/accounts/mfa/verify/", {"code": totp_code(device)})
    assert session_key(client) != after_password
    assert not UserSession.objects.filter(session_key=after_password).exists()
    assert UserSession.objects.filter(user_id=org.manager.pk).count() == 1


def test_idle_sessions_expire_and_activity_renews_them(org):
    client = browser_login(org.analyst)
    row = UserSession.objects.get(session_key=session_key(client))
    assert abs(row.expire_date - (timezone.now() + timedelta(minutes=30))) < timedelta(seconds=30)
    UserSession.objects.filter(pk=row.pk).update(expire_date=timezone.now() + timedelta(minutes=1))
    assert signed_in(client)  # a request renews the 30 minutes
    assert UserSession.objects.get(pk=row.pk).expire_date > timezone.now() + timedelta(minutes=29)
    UserSession.objects.filter(pk=row.pk).update(expire_date=timezone.now() - timedelta(seconds=1))
    response = client.get(HOME)
    assert response.status_code == 302 and response["Location"].startswith(LOGIN)


def _age_session(client, seconds: int | None) -> None:
    store = SessionStore(session_key(client))
    if seconds is None:
        store.pop(SESSION_STARTED_KEY)
    else:
        store[SESSION_STARTED_KEY] = int(time.time()) - seconds
    store.save()


def test_sessions_end_12_hours_after_login_however_active(org):
    client = browser_login(org.analyst)
    _age_session(client, 11 * 3600)
    assert signed_in(client)
    _age_session(client, 12 * 3600 + 1)
    response = client.get(HOME)
    assert response.status_code == 302 and response["Location"].startswith(LOGIN)
    assert not UserSession.objects.filter(user_id=org.analyst.pk).exists()
    assert AuditEvent.objects.filter(action="LOGOUT", actor_id=org.analyst.pk).exists()


def test_the_absolute_limit_applies_to_the_admin_site_too(org):
    client = browser_login(org.admin)
    assert client.get("/admin/").status_code == 200
    _age_session(client, 12 * 3600 + 1)
    response = client.get("/admin/")
    assert response.status_code == 302 and "/login/" in response["Location"]


def test_a_session_without_a_login_stamp_is_ended(org):
    client = browser_login(org.analyst)
    _age_session(client, None)
    assert not signed_in(client)


def test_sessions_are_indexed_by_user(org):
    first, second = browser_login(org.analyst), browser_login(org.analyst)
    browser_login(org.other_analyst)
    keys = set(UserSession.objects.filter(user_id=org.analyst.pk).values_list("session_key", flat=True))
    assert keys == {session_key(first), session_key(second)}
    first.post("/accounts/logout/")
    assert set(UserSession.objects.filter(user_id=org.analyst.pk).values_list("session_key", flat=True)) == {
        session_key(second)
    }


def test_disabling_a_user_ends_every_session_and_token_at_once(org):
    browsers = [browser_login(org.analyst), browser_login(org.analyst)]
    bystander = browser_login(org.other_analyst)
    apis = [with_token(org.analyst)[0], with_token(org.analyst)[0]]
    assert all(signed_in(b) for b in browsers) and all(a.get(CUSTOMERS).status_code == 200 for a in apis)

    services.disable_user(org.analyst.email, actor=org.admin, reason="left the company")

    assert not any(signed_in(b) for b in browsers)
    assert all(a.get(CUSTOMERS).status_code == 401 for a in apis)
    assert not UserSession.objects.filter(user_id=org.analyst.pk).exists()
    assert not AuthToken.objects.filter(user=org.analyst).exists()
    assert signed_in(bystander)
    event = AuditEvent.objects.get(action="USER_DISABLED", object_ids=[str(org.analyst.pk)])
    assert event.actor_id == org.admin.pk and event.reason == "left the company"
    assert event.extra["sessions_ended"] == 2 and event.extra["tokens_revoked"] == 2
    assert AuditEvent.objects.filter(action="TOKEN_REVOKED", rows=2).exists()
    # And the disabled user cannot come back in.
    assert Client().post(LOGIN, {"username": org.analyst.email, "password": PASSWORD}).status_code == 400


def test_disabling_through_the_admin_form_ends_sessions_too(org):
    victim = browser_login(org.analyst)
    api, _ = with_token(org.analyst)
    admin = browser_login(org.admin)
    response = admin.post(
        f"/admin/accounts/user/{org.analyst.pk}/change/",
        {
            "email": org.analyst.email,
            "full_name": "",
            "department": org.sales.pk,
            "groups": [Group.objects.get(name="Analyst").pk],
        },  # is_active unticked
    )
    assert response.status_code == 302, response.content
    assert not User.objects.get(pk=org.analyst.pk).is_active
    assert not signed_in(victim) and api.get(CUSTOMERS).status_code == 401
    assert AuditEvent.objects.get(action="USER_DISABLED").actor_id == org.admin.pk


def test_changing_a_password_ends_every_session_and_token(org):
    browser = browser_login(org.analyst)
    api, _ = with_token(org.analyst)
    admin = browser_login(org.admin)
    new_password = "a-fresh-long-passphrase-42"  # pragma: allowlist secret
    response = admin.post(
        f"/admin/accounts/user/{org.analyst.pk}/password/",
        {"password1": new_password, "password2": new_password, "usable_password": "true"},  # pragma: allowlist secret
    )
    assert response.status_code == 302, response.content
    assert not signed_in(browser) and api.get(CUSTOMERS).status_code == 401
    event = AuditEvent.objects.get(action="PASSWORD_CHANGED", object_ids=[str(org.analyst.pk)])
    assert event.actor_id == org.admin.pk and event.extra["sessions_ended"] == 1
    assert admin.get("/admin/").status_code == 200  # the admin's own session is untouched
    assert browser_login(org.analyst, password=new_password)


def test_changing_a_password_through_the_service(org):
    browser = browser_login(org.analyst)
    services.change_password(org.analyst, "another-fresh-passphrase-7", actor=org.analyst)
    assert not signed_in(browser)
    assert AuditEvent.objects.filter(action="PASSWORD_CHANGED", actor_id=org.analyst.pk).exists()


def test_changing_a_role_ends_every_session_and_token(org):
    browser = browser_login(org.analyst)
    api, _ = with_token(org.analyst)
    services.set_role(org.analyst, Role.EXECUTIVE, actor=org.admin)
    assert not signed_in(browser) and api.get(CUSTOMERS).status_code == 401
    events = AuditEvent.objects.filter(action="ROLE_CHANGED", object_ids=[str(org.analyst.pk)], actor_id=org.admin.pk)
    reasons = {e.reason for e in events}
    assert "removed: Analyst" in reasons and "granted: Executive" in reasons


def test_changing_groups_in_the_admin_ends_sessions(org):
    browser = browser_login(org.analyst)
    admin = browser_login(org.admin)
    response = admin.post(
        f"/admin/accounts/user/{org.analyst.pk}/change/",
        {
            "email": org.analyst.email,
            "full_name": "",
            "department": org.sales.pk,
            "is_active": "on",
            "groups": [Group.objects.get(name="Executive").pk],
        },
    )
    assert response.status_code == 302, response.content
    assert not signed_in(browser)
    assert AuditEvent.objects.filter(action="ROLE_CHANGED", actor_id=org.admin.pk).exists()


def test_setting_the_same_role_again_changes_nothing(org):
    browser = browser_login(org.analyst)
    services.set_role(org.analyst, Role.ANALYST)
    assert signed_in(browser)


def test_team_group_changes_are_not_role_changes(org):
    browser = browser_login(org.analyst)
    group = Group.objects.create(name="team:999")
    group.user_set.add(org.analyst)
    assert signed_in(browser)


# --- Inactive accounts ------------------------------------------------------------------------


def test_inactive_accounts_are_disabled_by_the_beat_task(org):
    now = timezone.now()
    stale = make_user(Role.ANALYST, team=org.north)
    recent = make_user(Role.ANALYST, team=org.north)
    never_old = make_user(Role.ANALYST, team=org.north)
    never_new = make_user(Role.ANALYST, team=org.north)
    User.objects.filter(pk=stale.pk).update(last_login=now - timedelta(days=91), date_joined=now - timedelta(days=400))
    User.objects.filter(pk=recent.pk).update(last_login=now - timedelta(days=89), date_joined=now - timedelta(days=400))
    User.objects.filter(pk=never_old.pk).update(last_login=None, date_joined=now - timedelta(days=91))
    User.objects.filter(pk=never_new.pk).update(last_login=None, date_joined=now - timedelta(days=10))
    User.objects.exclude(pk__in=[stale.pk, recent.pk, never_old.pk, never_new.pk]).update(last_login=now)
    browser = browser_login(stale)  # signs in now: put the old login back afterwards
    User.objects.filter(pk=stale.pk).update(last_login=now - timedelta(days=91))

    result = disable_inactive_accounts.apply()
    assert result.successful(), result.traceback
    assert result.get() == 2

    active = dict(User.objects.values_list("pk", "is_active"))
    assert not active[stale.pk] and not active[never_old.pk]
    assert active[recent.pk] and active[never_new.pk]
    assert not signed_in(browser)
    events = AuditEvent.objects.filter(action="USER_DISABLED")
    assert {e.object_ids[0] for e in events} == {str(stale.pk), str(never_old.pk)}
    assert all(e.reason.startswith("inactive: no login for 90 days") for e in events)
    assert all(e.actor_id is None for e in events)  # the system did it


def test_the_inactivity_threshold_is_a_setting(org, settings):
    settings.INACTIVE_ACCOUNT_DAYS = 10
    long_ago = timezone.now() - timedelta(days=11)
    User.objects.filter(pk=org.analyst.pk).update(last_login=long_ago, date_joined=long_ago)
    User.objects.exclude(pk=org.analyst.pk).update(last_login=timezone.now())
    assert services.disable_inactive_accounts() == [org.analyst.pk]


@pytest.mark.parametrize(
    "name,task",
    [
        ("accounts: disable inactive accounts", "accounts.tasks.disable_inactive_accounts"),
        ("accounts: create quarterly access reviews", "accounts.tasks.create_access_reviews"),
        ("accounts: purge expired API tokens", "accounts.tasks.purge_expired_tokens"),
    ],
)
def test_the_beat_schedule_holds_the_account_tasks(db, name, task):
    from django_celery_beat.models import PeriodicTask

    periodic = PeriodicTask.objects.get(name=name)
    assert periodic.task == task and periodic.enabled and periodic.crontab is not None
