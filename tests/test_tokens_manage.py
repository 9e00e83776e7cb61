"""API tokens: users list and revoke their own; admins revoke anyone's (after MFA); 30-day
expiry; last use recorded at most once a minute; the token itself is never shown again."""

import re
from datetime import timedelta

import pytest
from django.conf import settings
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from knox.models import AuthToken
from rest_framework.test import APIClient

from accounts import policy, selectors, services
from accounts.models import ApiTokenInfo
from accounts.policy import Role
from accounts.tasks import purge_expired_tokens
from audit.models import AuditEvent
from tests.factories import PASSWORD, browser_login

TOKENS = "/api/v1/auth/tokens/"
CUSTOMERS = "/api/v1/customers/"
FIELDS = {"id", "user", "created", "expiry", "last_used", "mfa", "current"}


def client_for(user, *, mfa=True) -> tuple[APIClient, str, AuthToken]:
    instance, token = services.issue_token(user, mfa_verified=mfa)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    return client, token, instance


def test_the_policy_says_who_manages_any_token(org):
    assert policy.TOKEN_ADMIN_ROLES == {Role.ADMIN}
    assert policy.may_manage_any_token(org.admin)
    assert not any(policy.may_manage_any_token(u) for u in (org.manager, org.analyst, org.executive, org.dpo))


def test_tokens_expire_after_30_days_by_default(org):
    assert settings.API_TOKEN_TTL == timedelta(days=30)
    _, _, instance = client_for(org.analyst)
    assert abs(instance.expiry - (timezone.now() + timedelta(days=30))) < timedelta(minutes=1)


def test_users_list_their_own_tokens_without_the_secret(org):
    client, token, current = client_for(org.analyst)
    _, other_token, _ = client_for(org.analyst, mfa=False)
    client_for(org.other_analyst)
    response = client.get(TOKENS)
    assert response.status_code == 200
    rows = response.json()["results"]
    assert len(rows) == 2 and all(set(row) == FIELDS for row in rows)
    assert {row["user"] for row in rows} == {org.analyst.pk}
    assert [row["current"] for row in rows].count(True) == 1
    assert all(re.fullmatch(r"[0-9a-f]{16}", row["id"]) for row in rows)
    text = response.content.decode()
    for secret in (token, other_token, token[:15], other_token[:15]):
        assert secret not in text
    assert current.digest not in text  # only a 16-digit prefix of the digest is an id
    mine = next(row for row in rows if row["current"])
    assert mine["id"] == selectors.token_public_id(current) and mine["mfa"] is True


def test_expired_tokens_are_not_listed_and_are_purged_by_the_beat_task(org):
    client, _, _ = client_for(org.analyst)
    _, _, old = client_for(org.analyst)
    AuthToken.objects.filter(pk=old.pk).update(expiry=timezone.now() - timedelta(seconds=1))
    assert len(client.get(TOKENS).json()["results"]) == 1
    result = purge_expired_tokens.apply()
    assert result.successful() and result.get() == 1
    assert not AuthToken.objects.filter(pk=old.pk).exists()


def test_last_use_is_recorded_at_most_once_a_minute(org):
    client, _, instance = client_for(org.analyst)
    assert ApiTokenInfo.objects.get(pk=instance.pk).last_used_at is None
    assert client.get(CUSTOMERS).status_code == 200
    first = ApiTokenInfo.objects.get(pk=instance.pk).last_used_at
    assert first is not None and timezone.now() - first < timedelta(seconds=30)
    assert client.get(CUSTOMERS).status_code == 200
    assert ApiTokenInfo.objects.get(pk=instance.pk).last_used_at == first
    ApiTokenInfo.objects.filter(pk=instance.pk).update(last_used_at=timezone.now() - timedelta(seconds=61))
    assert client.get(CUSTOMERS).status_code == 200
    assert timezone.now() - ApiTokenInfo.objects.get(pk=instance.pk).last_used_at < timedelta(seconds=30)
    listed = client.get(TOKENS).json()["results"][0]
    assert listed["last_used"] is not None


def test_recording_use_is_one_statement_whether_or_not_it_writes(org):
    _, _, instance = client_for(org.analyst)
    counts = []
    for _ in range(2):
        with CaptureQueriesContext(connection) as queries:
            services.record_token_use(instance)
        counts.append(len(queries))
    assert counts == [1, 1]


def test_users_revoke_their_own_tokens(org):
    client, _, _ = client_for(org.analyst)
    other_client, _, other = client_for(org.analyst)
    token_id = selectors.token_public_id(other)
    assert client.get(f"{TOKENS}{token_id}/").json()["id"] == token_id
    assert client.delete(f"{TOKENS}{token_id}/").status_code == 204
    assert other_client.get(CUSTOMERS).status_code == 401
    assert client.get(CUSTOMERS).status_code == 200
    event = AuditEvent.objects.get(action="TOKEN_REVOKED", actor_id=org.analyst.pk)
    assert event.object_ids == [token_id] and event.reason == "revoked by its owner"
    assert client.delete(f"{TOKENS}{token_id}/").status_code == 404  # gone


def test_a_user_can_revoke_the_token_in_use(org):
    client, _, current = client_for(org.analyst)
    assert client.delete(f"{TOKENS}{selectors.token_public_id(current)}/").status_code == 204
    assert client.get(CUSTOMERS).status_code == 401


@pytest.mark.parametrize("who", ["analyst", "manager", "executive", "dpo"])
def test_other_users_tokens_are_not_found(org, who):
    client, _, _ = client_for(getattr(org, who))
    _, _, victim = client_for(org.other_analyst)
    path = f"{TOKENS}{selectors.token_public_id(victim)}/"
    assert client.get(path).status_code == 404
    assert client.delete(path).status_code == 404
    assert AuthToken.objects.filter(pk=victim.pk).exists()
    refused = client.get(TOKENS, {"user": org.other_analyst.pk})
    assert refused.status_code == 403


def test_admins_list_and_revoke_anyones_tokens_after_mfa(org):
    victim_client, _, victim = client_for(org.analyst)
    path = f"{TOKENS}{selectors.token_public_id(victim)}/"
    unverified, _, _ = client_for(org.admin, mfa=False)
    assert unverified.get(TOKENS, {"user": org.analyst.pk}).status_code == 200
    refused = unverified.delete(path)
    assert refused.status_code == 403 and "multi-factor" in refused.json()["detail"]
    assert victim_client.get(CUSTOMERS).status_code == 200

    admin, _, _ = client_for(org.admin, mfa=True)
    listed = admin.get(TOKENS, {"user": org.analyst.pk}).json()["results"]
    assert [row["id"] for row in listed] == [selectors.token_public_id(victim)]
    assert admin.delete(path).status_code == 204
    assert victim_client.get(CUSTOMERS).status_code == 401
    event = AuditEvent.objects.get(action="TOKEN_REVOKED", actor_id=org.admin.pk)
    assert event.extra["user_id"] == org.analyst.pk and event.reason == "revoked by an administrator"


def test_a_browser_session_manages_tokens_too(org):
    _, _, instance = client_for(org.admin)
    browser = browser_login(org.admin)
    listed = browser.get(TOKENS).json()["results"]
    assert [row["id"] for row in listed] == [selectors.token_public_id(instance)]
    assert browser.delete(f"{TOKENS}{selectors.token_public_id(instance)}/").status_code == 204


def test_anonymous_requests_get_401(db):
    assert APIClient().get(TOKENS).status_code == 401
    assert APIClient().delete(f"{TOKENS}{'0' * 16}/").status_code == 401


@pytest.mark.parametrize(
    "params,field",
    [
        ({"user": "abc"}, "user"),
        ({"user": "-1"}, "user"),
        ({"user": "99999999999999999999999"}, "user"),
        ({"page_size": "0"}, "page_size"),
        ({"page_size": "x"}, "page_size"),
    ],
)
def test_bad_query_parameters_get_400_with_field_message(org, params, field):
    client, _, _ = client_for(org.admin)
    response = client.get(TOKENS, params)
    assert response.status_code == 400
    assert field in response.json()


@pytest.mark.parametrize("token_id", ["abc", "0" * 15, "0" * 17, "G" * 16, "%00" * 16, "../../../etc/passwd"])
def test_malformed_ids_are_404(org, token_id):
    client, _, _ = client_for(org.analyst)
    assert client.get(f"{TOKENS}{token_id}/").status_code == 404
    assert client.delete(f"{TOKENS}{token_id}/").status_code == 404


def test_methods_not_offered_get_405(org):
    client, _, instance = client_for(org.analyst)
    assert client.post(TOKENS, {}).status_code == 405
    assert client.put(f"{TOKENS}{selectors.token_public_id(instance)}/", {}).status_code == 405


def test_issuing_through_the_endpoint_records_the_token(org):
    response = APIClient().post(
        "/api/v1/auth/token/", {"email": org.analyst.email, "password": PASSWORD}, format="json"
    )
    assert response.status_code == 200
    token = AuthToken.objects.get(user=org.analyst)
    assert AuditEvent.objects.filter(action="TOKEN_CREATED", object_ids=[selectors.token_public_id(token)]).exists()
    assert ApiTokenInfo.objects.get(pk=token.pk).created_ip == "127.0.0.1"
