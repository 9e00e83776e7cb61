"""Report definitions: an allow-list of datasets, filters, group-bys and aggregates — never SQL.

``validate`` turns client JSON into a clean definition (or field errors); ``run`` computes the
aggregate in PostgreSQL on ``restrict(user, "view")``, so a report never shows more than the
person running it may see, whoever shared it.
"""

from dataclasses import dataclass
from datetime import date

from django.db.models import Avg, Count, F, Q, Sum
from django.db.models.functions import TruncMonth
from rest_framework import serializers

from accounts import policy
from datasets.choices import Device, OrderStatus
from datasets.models import Customer, Order, PageView


@dataclass(frozen=True)
class DatasetSpec:
    model: type
    date_field: str
    filters: dict  # filter name -> (lookup, serializer field)
    group_by: dict  # group name -> ORM expression or field
    aggregates: dict  # aggregate name -> aggregate expression


def _choice(choices):
    return serializers.ChoiceField(choices=choices)


DATASETS: dict[str, DatasetSpec] = {
    "orders": DatasetSpec(
        model=Order,
        date_field="created_at",
        filters={
            "status": ("status", lambda: _choice(OrderStatus.choices)),
            "currency": ("currency", lambda: serializers.RegexField(r"^[A-Z]{3}$")),
            "team": ("team_id", lambda: serializers.IntegerField(min_value=1)),
        },
        group_by={
            "month": TruncMonth("created_at"),
            "team": F("team_id"),
            "status": F("status"),
            "currency": F("currency"),
        },
        aggregates={
            "count": Count("id"),
            "sum_amount": Sum("amount"),
            "avg_amount": Avg("amount"),
            "distinct_customers": Count("customer_id", distinct=True),
        },
    ),
    "customers": DatasetSpec(
        model=Customer,
        date_field="created_at",
        filters={"team": ("team_id", lambda: serializers.IntegerField(min_value=1))},
        group_by={"month": TruncMonth("created_at"), "team": F("team_id")},
        aggregates={"count": Count("id")},
    ),
    "pageviews": DatasetSpec(
        model=PageView,
        date_field="timestamp",
        filters={
            "device": ("device", lambda: _choice(Device.choices)),
            "city": ("city", lambda: serializers.CharField(max_length=100)),
            "page": ("page", lambda: serializers.CharField(max_length=200)),
            "team": ("team_id", lambda: serializers.IntegerField(min_value=1)),
        },
        group_by={
            "month": TruncMonth("timestamp"),
            "team": F("team_id"),
            "page": F("page"),
            "city": F("city"),
            "device": F("device"),
        },
        aggregates={"count": Count("id"), "distinct_customers": Count("customer_id", distinct=True)},
    ),
}


class DefinitionSerializer(serializers.Serializer):
    """The shape of a definition; per-dataset names are checked in ``validate``."""

    dataset = serializers.ChoiceField(choices=sorted(DATASETS))
    filters = serializers.DictField(required=False, default=dict)
    group_by = serializers.CharField(required=False, allow_blank=True, default="")
    aggregate = serializers.CharField(default="count")
    date_from = serializers.DateField(required=False, allow_null=True, default=None)
    date_to = serializers.DateField(required=False, allow_null=True, default=None)

    def validate(self, attrs):
        spec = DATASETS[attrs["dataset"]]
        errors = {}
        if attrs["group_by"] and attrs["group_by"] not in spec.group_by:
            errors["group_by"] = [f"Choose one of: {', '.join(sorted(spec.group_by))}."]
        if attrs["aggregate"] not in spec.aggregates:
            errors["aggregate"] = [f"Choose one of: {', '.join(sorted(spec.aggregates))}."]
        clean_filters = {}
        for name, raw in attrs["filters"].items():
            if name not in spec.filters:
                errors.setdefault("filters", []).append(f"Unknown filter {name!r}.")
                continue
            field = spec.filters[name][1]()
            try:
                clean_filters[name] = field.run_validation(raw)
            except serializers.ValidationError as exc:
                errors.setdefault("filters", []).append(f"{name}: {' '.join(map(str, exc.detail))}")
        if attrs["date_from"] and attrs["date_to"] and attrs["date_from"] > attrs["date_to"]:
            errors["date_to"] = ["Must not be before date_from."]
        if errors:
            raise serializers.ValidationError(errors)
        attrs["filters"] = clean_filters
        return attrs


def validate(raw) -> dict:
    """Clean a definition; raises ``serializers.ValidationError`` with field messages."""
    if not isinstance(raw, dict):
        raise serializers.ValidationError({"definition": ["Must be an object."]})
    form = DefinitionSerializer(data=raw)
    form.is_valid(raise_exception=True)
    data = dict(form.validated_data)
    for key in ("date_from", "date_to"):
        data[key] = data[key].isoformat() if isinstance(data[key], date) else None
    return data


def filtered_queryset(user, definition: dict, action=policy.Action.VIEW):
    """The definition's rows within the user's scope (for runs and exports alike).

    Reports and exports are analytics: subjects who withdrew their analytics consent, or whose
    processing is restricted, are left out (``compliance.selectors.analytics_consented``)."""
    from compliance.selectors import analytics_consented

    spec = DATASETS[definition["dataset"]]
    queryset = analytics_consented(spec.model.objects.restrict(user, action))
    conditions = Q()
    for name, value in definition.get("filters", {}).items():
        conditions &= Q(**{spec.filters[name][0]: value})
    if definition.get("date_from"):
        conditions &= Q(**{f"{spec.date_field}__date__gte": definition["date_from"]})
    if definition.get("date_to"):
        conditions &= Q(**{f"{spec.date_field}__date__lte": definition["date_to"]})
    return queryset.filter(conditions)


def run(user, definition: dict) -> list[dict]:
    """Aggregate in PostgreSQL under the runner's scope; rows are ``{"group": ..., "value": ...}``."""
    definition = validate(definition)
    spec = DATASETS[definition["dataset"]]
    queryset = filtered_queryset(user, definition)
    aggregate = spec.aggregates[definition["aggregate"]]
    group = definition["group_by"]
    if not group:
        value = queryset.aggregate(value=aggregate)["value"]
        return [{"group": None, "value": _plain(value)}]
    rows = queryset.annotate(group=spec.group_by[group]).values("group").annotate(value=aggregate).order_by("group")
    return [{"group": _plain(row["group"]), "value": _plain(row["value"])} for row in rows]


def _plain(value):
    """JSON-friendly values: dates as ISO strings, decimals as strings with two places."""
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if value is not None and value.__class__.__name__ == "Decimal":
        return f"{value:.2f}"
    return value
