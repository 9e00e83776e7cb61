"""The one rule for ids typed or sent by people (``portal.ids.parse_id``)."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from portal.ids import MAX_ID_DIGITS, parse_id


@pytest.mark.parametrize("raw", ["", " 1", "1 ", "-1", "+1", "1.0", "²", "١٢", "１２", "9" * (MAX_ID_DIGITS + 1), None])
def test_what_is_not_an_id(raw):
    assert parse_id(raw) is None


@pytest.mark.parametrize(("raw", "expected"), [("0", 0), ("17", 17), (17, 17), ("9" * MAX_ID_DIGITS, int("9" * 18))])
def test_ids(raw, expected):
    assert parse_id(raw) == expected


@given(st.text(max_size=30))
def test_any_text_is_an_id_that_fits_a_bigint_or_none(text):
    value = parse_id(text)
    assert value is None or (0 <= value < 2**63 and str(value) == text.lstrip("0").rjust(1, "0"))
