"""Reads of the compliance app: consent filters for analytics, and a subject's customer rows.

``analytics_consented`` is what every analytics path (dashboards, reports, exports) applies: it
leaves out the subjects whose current analytics consent is withdrawn, and the subjects whose
processing is restricted (Art. 18).  It is an anti-join on two small partial indexes.
"""

from django.db.models import Exists, OuterRef

from compliance.models import ConsentRecord, ProcessingRestriction
from compliance.requests_choices import ConsentPurpose


def _customer_column(model) -> str | None:
    """The column holding the customer's id on ``model``: its primary key for the customer
    model itself, else its foreign key to the customer (None: not about a customer)."""
    from datasets.models import Customer

    if model is Customer or issubclass(model, Customer):
        return "pk"
    for field in model._meta.concrete_fields:
        if field.is_relation and field.related_model is Customer:
            return field.attname
    return None


def analytics_consented(queryset):
    """``queryset`` (customers, or rows with a customer foreign key) without the subjects who
    withdrew their analytics consent or whose processing is restricted.  Rows with no customer
    (anonymous page views, anonymised orders) stay: they are about nobody."""
    column = _customer_column(queryset.model)
    if column is None:
        return queryset
    withdrawn = ConsentRecord.objects.filter(
        customer_id=OuterRef(column),
        purpose=ConsentPurpose.ANALYTICS,
        current=True,
        withdrawn_at__isnull=False,
    )
    restricted = ProcessingRestriction.objects.filter(customer_id=OuterRef(column), lifted_at__isnull=True)
    return queryset.filter(~Exists(withdrawn), ~Exists(restricted))


def customers_matching(email: str = "", phone: str = ""):
    """The customer rows of a subject, through the blind indexes only (every configured key).

    Call it under a scope that reaches every row (``scoped(system=True)``): the subject's rows
    may sit in any team."""
    from datasets.models import Customer

    matches = Customer.objects.none()
    if email:
        matches = matches | Customer.objects.by_email(email)
    if phone:
        matches = matches | Customer.objects.by_phone(phone)
    return matches


def customer_ids_matching(email: str = "", phone: str = "") -> list[int]:
    if not email and not phone:
        return []
    return sorted(customers_matching(email, phone).values_list("pk", flat=True))


def current_consents(customer_ids):
    """The current consent row per (customer, purpose) of the given customers."""
    return ConsentRecord.objects.filter(customer_id__in=list(customer_ids), current=True).order_by(
        "customer_id", "purpose"
    )
