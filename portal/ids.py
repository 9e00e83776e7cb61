"""Ids typed or sent by people: the one rule for turning text into a row id."""

# PostgreSQL's bigint holds every 18-digit number; a longer one would fail in the database (a 500).
MAX_ID_DIGITS = 18


def parse_id(raw: object) -> int | None:
    """The id in ``raw`` (a str or int), or None when it is not one: ASCII digits only (``"²".isdigit()``
    is true, and ``int()`` refuses it), at most 18 of them, no sign, no spaces."""
    text = "" if raw is None else str(raw)
    if text.isascii() and text.isdigit() and len(text) <= MAX_ID_DIGITS:
        return int(text)
    return None
