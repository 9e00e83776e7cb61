"""Masking formats (the seed's), their properties, blind-index normalisation, and the policy tables."""

import re

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from accounts.policy import MASKING_TABLE, ROLES_TABLE, Action, Mask, Role, Scope, masking_for, scope_of
from datasets import blind_index, masking

# --- the seed's formats ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "value,expected",
    [
        ("sarah@gmail.com", "sar***@gmail.com"),
        ("sarah.johnson@company.co.uk", "sar***@company.co.uk"),
        ("bob@x.org", "bo***@x.org"),  # never the whole local part
        ("al@x.org", "a***@x.org"),
        ("a@x.org", "***@x.org"),
        ("no-at-sign", "***"),
        ("", ""),
        (None, ""),
    ],
)
def test_mask_email(value, expected):
    assert masking.mask_email(value) == expected


@pytest.mark.parametrize(
    "value,expected",
    [
        ("555-123-5678", "XXX-XXX-5678"),
        ("+1 (555) 123-5678", "XXX-XXX-5678"),
        ("+44 20 7946 0958", "XXX-XXX-0958"),
        ("5678", "XXX-XXX-5678"),
        ("123", "XXX-XXX-XXXX"),
        ("", "XXX-XXX-XXXX"),
        (None, "XXX-XXX-XXXX"),
    ],
)
def test_mask_phone(value, expected):
    assert masking.mask_phone(value) == expected


@pytest.mark.parametrize(
    "value,expected",
    [("4242", "XXXX-XXXX-XXXX-4242"), ("0007", "XXXX-XXXX-XXXX-0007"), ("42", ""), ("", ""), (None, "")],
)
def test_mask_card(value, expected):
    assert masking.mask_card(value) == expected


@pytest.mark.parametrize(
    "value,expected",
    [("Sarah Johnson", "S."), ("  sarah", "S."), ("Émile Zola", "É."), ("", ""), ("   ", ""), (None, "")],
)
def test_mask_initial(value, expected):
    assert masking.mask_initial(value) == expected


def test_mask_hash_is_stable_and_hides_the_value():
    digest = masking.mask_hash("sarah@gmail.com")
    assert digest == masking.mask_hash("sarah@gmail.com")
    assert digest != masking.mask_hash("sarah@gmail.co")
    assert re.fullmatch(r"[0-9a-f]{16}", digest)
    assert "sarah" not in digest
    assert masking.mask_hash("") == ""


def test_mask_null_and_bucket():
    assert masking.mask_null("anything") is None
    assert masking.bucket(27) == "25-29"
    assert masking.bucket(25) == "25-29"
    assert masking.bucket(24) == "20-24"
    assert masking.bucket(0, width=10) == "0-9"


def test_apply_and_mask_record_follow_the_mask_names():
    record = {"id": 7, "name": "Sarah Johnson", "email": "sarah@gmail.com", "phone": "555-123-5678", "team": 3}
    masked = masking.mask_record(MASKING_TABLE[Role.ANALYST], {**record, "card_last4": "4242"})
    assert masked == {
        "id": 7,
        "name": "S.",
        "email": "sar***@gmail.com",
        "phone": "XXX-XXX-5678",
        "team": 3,
        "card_last4": "XXXX-XXXX-XXXX-4242",
    }
    clear = masking.mask_record(MASKING_TABLE[Role.MANAGER], record)
    assert clear == record
    assert masking.apply("email", "sarah@gmail.com") == "sar***@gmail.com"
    with pytest.raises(ValueError):
        masking.apply("no-such-mask", "x")


# --- properties -----------------------------------------------------------------------------

LOCAL_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._%+-!#$&'*/=?^`{|}~"
local_parts = st.text(alphabet=LOCAL_CHARS, min_size=1, max_size=64)
domains = st.from_regex(r"[a-z0-9]{1,20}(\.[a-z]{2,6}){1,2}", fullmatch=True)


@given(email=st.emails())
def test_mask_email_reveals_at_most_three_characters_of_real_addresses(email):
    local, _, domain = email.rpartition("@")
    masked = masking.mask_email(email)
    shown = masked.split("***@", 1)[0]
    assert len(shown) <= 3
    assert local.startswith(shown)
    assert len(shown) < len(local)


@given(local=local_parts, domain=domains)
def test_mask_email_never_shows_the_whole_local_part(local, domain):
    masked = masking.mask_email(f"{local}@{domain}")
    shown, sep, rest = masked.partition("***@")
    assert sep and rest == domain  # the domain is kept as it was
    assert len(shown) <= 3
    assert len(shown) < len(local)
    assert local.startswith(shown)
    if len(local) > 3 and "*" not in local and local not in domain:
        assert local not in masked


@given(value=st.text(max_size=60))
def test_mask_phone_reveals_at_most_four_digits(value):
    masked = masking.mask_phone(value)
    assert re.fullmatch(r"XXX-XXX-(\d{4}|XXXX)", masked)
    assert len(re.findall(r"\d", masked)) <= 4
    digits = re.findall(r"\d", value)
    if len(digits) >= 4:
        assert masked.endswith("".join(digits[-4:]))


@given(value=st.text(max_size=30))
def test_mask_card_reveals_at_most_four_digits(value):
    masked = masking.mask_card(value)
    assert len(re.findall(r"\d", masked)) <= 4
    assert masked == "" or re.fullmatch(r"XXXX-XXXX-XXXX-\d{4}", masked)


@given(value=st.text(max_size=40))
def test_mask_initial_reveals_at_most_one_character(value):
    masked = masking.mask_initial(value)
    stripped = value.strip()
    if not stripped:
        assert masked == ""
    else:
        # Only the first character (upper-cased) and a full stop.
        assert masked == stripped[0].upper() + "."


# --- blind index normalisation ---------------------------------------------------------------

ascii_emails = st.builds(
    lambda local, domain: f"{local}@{domain}",
    st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789._+-", min_size=1, max_size=30),
    domains,
)
spacing = st.sampled_from(["", " ", "  ", "\t", "\n", " \t "])


@given(email=ascii_emails, before=spacing, after=spacing, upper=st.lists(st.booleans(), min_size=60, max_size=60))
def test_email_index_ignores_case_and_surrounding_whitespace(email, before, after, upper):
    variant = "".join(ch.upper() if flip else ch for ch, flip in zip(email, upper, strict=False))
    assert blind_index.email_index(before + variant + after) == blind_index.email_index(email)


@given(a=ascii_emails, b=ascii_emails)
def test_email_index_differs_for_different_addresses(a, b):
    assume(a.lower() != b.lower())
    assert blind_index.email_index(a) != blind_index.email_index(b)


@given(
    digits=st.text(alphabet="0123456789", min_size=4, max_size=15),
    separators=st.lists(st.sampled_from(["", " ", "-", ".", "(", ")", "+", "/"]), min_size=16, max_size=16),
)
def test_phone_index_ignores_punctuation(digits, separators):
    formatted = "".join(sep + digit for sep, digit in zip(separators, digits, strict=False))
    assert blind_index.phone_index(formatted) == blind_index.phone_index(digits)


@given(
    a=st.text(alphabet="0123456789", min_size=4, max_size=15), b=st.text(alphabet="0123456789", min_size=4, max_size=15)
)
def test_phone_index_differs_for_different_numbers(a, b):
    assume(a != b)
    assert blind_index.phone_index(a) != blind_index.phone_index(b)


def test_blind_index_examples():
    assert blind_index.email_index("  Sarah@Gmail.COM ") == blind_index.email_index("sarah@gmail.com")
    assert blind_index.phone_index("+1 (555) 123-4567") == blind_index.phone_index("15551234567")
    assert blind_index.email_index("sarah@gmail.com") != blind_index.email_index("sara@gmail.com")
    assert blind_index.phone_index("555-123-4567") != blind_index.phone_index("555-123-4568")
    assert blind_index.email_index("") == "" and blind_index.phone_index("no digits") == ""


def test_blind_index_is_keyed_hmac_not_a_plain_hash():
    import hashlib

    value = "sarah@gmail.com"
    index = blind_index.email_index(value)
    assert re.fullmatch(r"[0-9a-f]{64}", index)
    assert index != hashlib.sha256(value.encode()).hexdigest()
    assert blind_index.email_index(value, key="another-key-" * 4) != index
    assert value not in index


# --- the policy tables ------------------------------------------------------------------------

SEED_ROLES_TABLE = {
    # Role: view, edit, delete, export (the seed's RBAC table, in the policy's vocabulary)
    Role.ANALYST: (Scope.TEAM, Scope.OWN, Scope.NONE, Scope.NONE),
    Role.MANAGER: (Scope.DEPARTMENT, Scope.DEPARTMENT, Scope.OWN, Scope.TEAM),
    Role.ADMIN: (Scope.ALL, Scope.ALL, Scope.ALL, Scope.ALL),
    Role.EXECUTIVE: (Scope.DASHBOARDS, Scope.NONE, Scope.NONE, Scope.NONE),
}
ACTIONS = (Action.VIEW, Action.EDIT, Action.DELETE, Action.EXPORT)


def test_roles_table_is_the_seeds():
    expected = {role: dict(zip(ACTIONS, scopes, strict=True)) for role, scopes in SEED_ROLES_TABLE.items()}
    assert ROLES_TABLE == expected
    assert set(ROLES_TABLE) == set(Role)


@pytest.mark.parametrize("role", list(Role))
@pytest.mark.parametrize("action", list(Action))
def test_scope_of_reads_the_table(role, action):
    assert scope_of(role, action) == ROLES_TABLE[role][action]
    assert scope_of(role, action.value) == ROLES_TABLE[role][action]


def test_no_role_reaches_nothing():
    for action in Action:
        assert scope_of(None, action) == Scope.NONE
    assert masking_for(None) is None


def test_masking_table():
    assert MASKING_TABLE[Role.ANALYST] == {
        "name": Mask.INITIAL,
        "email": Mask.EMAIL,
        "phone": Mask.PHONE,
        "card_last4": Mask.CARD,
    }
    for role in (Role.MANAGER, Role.ADMIN):
        assert MASKING_TABLE[role] == {
            "name": Mask.CLEAR,
            "email": Mask.CLEAR,
            "phone": Mask.CLEAR,
            "card_last4": Mask.CARD,
        }
    assert Role.EXECUTIVE not in MASKING_TABLE
    assert masking_for(Role.EXECUTIVE) is None
    # The card is never shown in clear, whatever the role.
    assert all(row["card_last4"] == Mask.CARD for row in MASKING_TABLE.values())


def test_masking_rows_are_independent_copies():
    assert MASKING_TABLE[Role.MANAGER] is not MASKING_TABLE[Role.ADMIN]
