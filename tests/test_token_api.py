"""``POST /api/v1/auth/token/``: hashed, expiring per-user tokens; one answer for every bad login."""

from datetime import timedelta

import pytest
from django.conf import settings
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from knox.models import AuthToken
from rest_framework.test import APIClient

from accounts.policy import Role
from tests.factories import PASSWORD, CustomerFactory, TeamFactory, make_user

TOKEN_URL = "/api/v1/auth/token/"
CUSTOMERS = "/api/v1/customers/"

pytestmark = pytest.mark.django_db


@pytest.fixture
def analyst():
    team = TeamFactory(name="Token Team")
    user = make_user(Role.ANALYST, team=team, email="token.analyst@example.test")
    user.test_customer = CustomerFactory(team=team)
    return user


def login(email, password, **extra):
    return APIClient().post(TOKEN_URL, {"email": email, "password": password, **extra}, format="json")


def with_token(token: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    return client


def test_right_credentials_give_a_token_that_expires_in_the_ttl(analyst):
    before = timezone.now()
    response = login(analyst.email, PASSWORD)
    assert response.status_code == 200, response.content
    body = response.json()
    assert set(body) == {"token", "expiry"}
    assert len(body["token"]) >= 32
    expiry = parse_datetime(body["expiry"])
    assert expiry is not None and expiry.tzinfo is not None
    assert settings.API_TOKEN_TTL == timedelta(days=30)
    expected = before + settings.API_TOKEN_TTL
    assert abs(expiry - expected) < timedelta(minutes=1)
    assert AuthToken.objects.get(user=analyst).expiry == expiry


def test_email_is_case_insensitive(analyst):
    assert login(analyst.email.upper(), PASSWORD).status_code == 200


def test_the_token_authenticates_api_calls(analyst):
    token = login(analyst.email, PASSWORD).json()["token"]
    response = with_token(token).get(CUSTOMERS)
    assert response.status_code == 200, response.content
    assert [row["id"] for row in response.json()["results"]] == [analyst.test_customer.pk]


def test_each_login_issues_a_distinct_token(analyst):
    first = login(analyst.email, PASSWORD).json()["token"]
    second = login(analyst.email, PASSWORD).json()["token"]
    assert first != second
    assert with_token(first).get(CUSTOMERS).status_code == 200
    assert with_token(second).get(CUSTOMERS).status_code == 200


def test_the_database_never_holds_the_token_in_clear(analyst):
    token = login(analyst.email, PASSWORD).json()["token"]
    row = AuthToken.objects.get(user=analyst)
    assert row.digest != token
    assert len(row.digest) == 128  # a SHA-512 hex digest
    for field in AuthToken._meta.concrete_fields:
        value = str(getattr(row, field.attname))
        assert token not in value, field.name
    # The stored key is only a short look-up prefix, not enough to authenticate.
    assert len(row.token_key) < len(token) // 2
    assert with_token(row.token_key).get(CUSTOMERS).status_code == 401
    assert with_token(row.digest).get(CUSTOMERS).status_code == 401


def test_wrong_password_and_unknown_email_get_the_same_answer(analyst):
    wrong_password = login(analyst.email, PASSWORD + "x")
    unknown_email = login("nobody.here@example.test", PASSWORD)
    assert wrong_password.status_code == unknown_email.status_code == 400
    assert wrong_password.json() == unknown_email.json()
    assert wrong_password.content == unknown_email.content
    assert AuthToken.objects.count() == 0
    # Nothing in the answer hints at which part was wrong.
    text = wrong_password.content.decode().lower()
    assert "password" not in text and "email" not in text and "exist" not in text


@pytest.mark.parametrize(
    "payload,fields",
    [
        ({}, {"email", "password"}),
        ({"email": "token.analyst@example.test"}, {"password"}),
        ({"password": PASSWORD}, {"email"}),
        ({"email": "not-an-email", "password": PASSWORD}, {"email"}),
        ({"email": "a@b@c.test", "password": PASSWORD}, {"email"}),
        ({"email": "", "password": ""}, {"email", "password"}),
        ({"email": "token.analyst@example.test", "password": "x" * 513}, {"password"}),
    ],
)
def test_bad_requests_name_the_field(analyst, payload, fields):
    response = APIClient().post(TOKEN_URL, payload, format="json")
    assert response.status_code == 400
    assert set(response.json()) == fields
    assert AuthToken.objects.count() == 0


def test_form_encoded_requests_work_too(analyst):
    response = APIClient().post(TOKEN_URL, {"email": analyst.email, "password": PASSWORD})
    assert response.status_code == 200
    assert "token" in response.json()


def test_get_is_not_allowed():
    assert APIClient().get(TOKEN_URL).status_code == 405


def test_disabled_user_cannot_log_in_and_their_token_stops_working(analyst):
    token = login(analyst.email, PASSWORD).json()["token"]
    assert with_token(token).get(CUSTOMERS).status_code == 200

    analyst.is_active = False
    analyst.save(update_fields=["is_active"])

    refused = login(analyst.email, PASSWORD)
    assert refused.status_code == 400
    assert refused.json() == login("nobody.here@example.test", PASSWORD).json()
    assert with_token(token).get(CUSTOMERS).status_code == 401
    # Disabling revoked the token at once, and the refused login issued none.
    assert AuthToken.objects.filter(user=analyst).count() == 0


@pytest.mark.parametrize(
    "header",
    [
        "Token garbage",
        "Token " + "a" * 64,
        "Token " + "z" * 15,
        "Token ",
        "Token two parts",
        "Bearer " + "a" * 64,
        "Token ééé",
    ],
)
def test_garbage_tokens_get_401(analyst, header):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=header)
    response = client.get(CUSTOMERS)
    assert response.status_code == 401
    assert "results" not in response.json()


def test_no_token_gets_401():
    assert APIClient().get(CUSTOMERS).status_code == 401


def test_expired_token_gets_401_and_is_removed(analyst):
    token = login(analyst.email, PASSWORD).json()["token"]
    AuthToken.objects.filter(user=analyst).update(expiry=timezone.now() - timedelta(seconds=1))
    assert with_token(token).get(CUSTOMERS).status_code == 401
    assert AuthToken.objects.filter(user=analyst).count() == 0


def test_token_of_a_deleted_token_row_gets_401(analyst):
    token = login(analyst.email, PASSWORD).json()["token"]
    AuthToken.objects.filter(user=analyst).delete()
    assert with_token(token).get(CUSTOMERS).status_code == 401


def test_tokens_per_user_are_limited(analyst):
    limit = settings.REST_KNOX["TOKEN_LIMIT_PER_USER"]
    assert limit
    for _ in range(limit):
        assert login(analyst.email, PASSWORD).status_code == 200
    refused = login(analyst.email, PASSWORD)
    assert refused.status_code == 403
    assert "token" not in refused.json()
    assert AuthToken.objects.filter(user=analyst).count() == limit
    # Expired tokens do not count against the limit.
    AuthToken.objects.filter(user=analyst).update(expiry=timezone.now() - timedelta(seconds=1))
    assert login(analyst.email, PASSWORD).status_code == 200
