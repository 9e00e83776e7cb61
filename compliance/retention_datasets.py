"""The datasets a retention policy may name: a fixed allow-list of tables, age columns and actions.

Retention SQL names its table and columns from this module only (never from input), so the
statements in ``compliance.retention`` are built from constants.  Model labels are resolved
lazily; this module imports no model and can be read by the models themselves.
"""

from dataclasses import dataclass, field

from django.apps import apps

from compliance.governance_choices import RetentionAction


@dataclass(frozen=True)
class RetentionDataset:
    key: str
    label: str
    model_label: str  # "app_label.ModelName"
    age_fields: tuple[str, ...]
    actions: tuple[RetentionAction, ...]
    # ARCHIVE: the archive model; its columns are the source's columns plus the ARCHIVE_COLUMNS.
    archive_model_label: str = ""
    archive_columns: tuple[str, ...] = ()
    # ANONYMISE: column -> value that removes the link to the person (the row stays for statistics).
    anonymise: dict[str, object] = field(default_factory=dict)
    # Column that names the data subject (for the record of processing and erasure hooks).
    subject_column: str = ""

    @property
    def model(self):
        return apps.get_model(self.model_label)

    @property
    def archive_model(self):
        return apps.get_model(self.archive_model_label) if self.archive_model_label else None


ORDER_COLUMNS = ("id", "customer_id", "team_id", "amount", "currency", "status", "created_at")

DATASETS: dict[str, RetentionDataset] = {
    ds.key: ds
    for ds in (
        RetentionDataset(
            key="pageviews",
            label="Page views",
            model_label="datasets.PageView",
            age_fields=("timestamp",),
            actions=(RetentionAction.DELETE, RetentionAction.ANONYMISE),
            anonymise={"customer_id": None, "session_id": "", "referrer": ""},
            subject_column="customer_id",
        ),
        RetentionDataset(
            key="orders",
            label="Orders",
            model_label="datasets.Order",
            age_fields=("created_at",),
            actions=(RetentionAction.ARCHIVE, RetentionAction.DELETE),
            archive_model_label="compliance.ArchivedOrder",
            archive_columns=ORDER_COLUMNS,
            subject_column="customer_id",
        ),
        RetentionDataset(
            key="archived_orders",
            label="Archived orders",
            model_label="compliance.ArchivedOrder",
            age_fields=("created_at", "archived_at"),
            actions=(RetentionAction.DELETE,),
            subject_column="customer_id",
        ),
    )
}

DATASET_CHOICES = [(ds.key, ds.label) for ds in DATASETS.values()]
AGE_FIELD_CHOICES = sorted({(f, f) for ds in DATASETS.values() for f in ds.age_fields})

# The seed's defaults (created disabled by the migration: a preview comes before enabling).
DEFAULT_POLICIES = (
    {
        "dataset": "pageviews",
        "age_field": "timestamp",
        "max_age_days": 2 * 365,
        "action": RetentionAction.DELETE,
        "basis": "Analytics data older than 2 years is no longer needed (storage limitation).",
    },
    {
        "dataset": "orders",
        "age_field": "created_at",
        "max_age_days": 7 * 365,
        "action": RetentionAction.ARCHIVE,
        "basis": "Commercial and tax records: kept 7 years, then moved out of day-to-day processing.",
    },
)


def dataset_for_model(model) -> RetentionDataset | None:
    label = model._meta.label_lower
    return next((ds for ds in DATASETS.values() if ds.model_label.lower() == label), None)


def archive_tables() -> list[tuple[str, str]]:
    """(archive model label, subject column) of every archive: erasure must reach them too."""
    return [(ds.archive_model_label, ds.subject_column) for ds in DATASETS.values() if ds.archive_model_label]
