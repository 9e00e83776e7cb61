"""The pseudonymised extract for analysts (the seed's "Pseudonymization", done safely).

* The subject is a keyed HMAC-SHA256 of the customer id under ``PSEUDONYM_KEY``, not MD5 of the
  email: a plain hash of an email is reversed by hashing a list of emails; a keyed hash is not
  without the key.  The key is its own secret (not the blind-index key), so the pseudonyms cannot
  be joined with the database's ``email_index`` columns, and rotating it unlinks old extracts.
* "Age bucket": the portal stores no birth date, and none is added for this (data minimisation:
  an extract is no reason to collect a new attribute).  The age that exists is the customer's
  tenure at the time of the order, bucketed in whole years ("0-1", "2-3", ...).
* City: the customer's latest page-view city; a city with fewer distinct subjects in the extract
  than the policy's ``SMALL_GROUP_THRESHOLD`` is shown as "other" (a rare city singles people out).
* Amounts stay exact; dates are generalised to the month.
* Rows: the caller's *view* scope (``restrict(user, "view")`` and row-level security), minus the
  subjects who withdrew analytics consent or whose processing is restricted.
"""

import csv
import hashlib
import hmac
import io
from collections import Counter
from collections.abc import Iterator

from django.conf import settings

from accounts import policy
from datasets import masking

COLUMNS = ["subject", "tenure_years", "city", "order_month", "amount", "currency", "status"]
TENURE_BUCKET_YEARS = 2
OTHER_CITY = "other"
CHUNK = 5000


class ExtractRefused(PermissionError):
    pass


def pseudonym(customer_id: int | None) -> str:
    """The stable keyed pseudonym of a customer (128 bits, hex); empty for rows about nobody."""
    if customer_id is None:
        return ""
    message = f"customer:{int(customer_id)}".encode()
    return hmac.new(settings.PSEUDONYM_KEY.encode(), message, hashlib.sha256).hexdigest()[:32]


def tenure_bucket(customer_since, at) -> str:
    years = max(0, (at - customer_since).days) // 365
    return masking.bucket(years, width=TENURE_BUCKET_YEARS)


def _cities(user) -> dict[int, str]:
    """Latest page-view city per customer in the user's scope (one DISTINCT ON pass)."""
    from compliance.selectors import analytics_consented
    from datasets.models import PageView

    views = analytics_consented(PageView.objects.restrict(user, policy.Action.VIEW)).filter(customer__isnull=False)
    rows = views.order_by("customer_id", "-timestamp", "-id").distinct("customer_id").values_list("customer_id", "city")
    return dict(rows.iterator(chunk_size=CHUNK))


def rows(user) -> Iterator[dict]:
    """The extract's rows (orders) for ``user``; refuses roles outside the policy."""
    from compliance.selectors import analytics_consented
    from datasets.models import Order

    if not policy.may_extract_pseudonymised(user):
        raise ExtractRefused("Your role does not receive pseudonymised extracts.")
    orders = analytics_consented(Order.objects.restrict(user, policy.Action.VIEW)).order_by("id")
    cities = _cities(user)
    subjects_per_city = Counter(city for city in cities.values() if city)
    threshold = policy.SMALL_GROUP_THRESHOLD
    fields = ("customer_id", "customer__created_at", "created_at", "amount", "currency", "status")
    for customer_id, since, created_at, amount, currency, status in orders.values_list(*fields).iterator(
        chunk_size=CHUNK
    ):
        city = cities.get(customer_id, "")
        if city and subjects_per_city[city] < threshold:
            city = OTHER_CITY
        yield {
            "subject": pseudonym(customer_id),
            "tenure_years": tenure_bucket(since, created_at),
            "city": city,
            "order_month": created_at.strftime("%Y-%m"),
            "amount": str(amount),
            "currency": currency,
            "status": status,
        }


def as_csv(user) -> tuple[bytes, int]:
    """The extract as CSV bytes and its row count."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS)
    writer.writeheader()
    count = 0
    for row in rows(user):
        writer.writerow(row)
        count += 1
    return buffer.getvalue().encode(), count
