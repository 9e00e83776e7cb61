"""Exports: start (validated, recorded), run (Celery: masked file, encrypted at rest), download.

The file holds the requester's export scope (``restrict(user, "export")``) masked per role, and
is readable only by the requester through a signed, expiring link."""

import csv
import hashlib
import io
import json
from pathlib import Path

from django.conf import settings
from django.core import signing
from django.core.cache import cache
from django.utils import timezone
from rest_framework import serializers

from accounts import policy
from audit import services as audit
from audit.choices import AuditAction
from datasets import masking, report_definitions
from datasets.choices import ExportFormat, ExportStatus
from datasets.models import Export
from portal import fault_points

_SIGNER_SALT = "datasets.export-download"
BATCH = 2000

# Columns per dataset (personal fields are masked by the policy's masking row).
COLUMNS = {
    "customers": ["id", "team_id", "name", "email", "phone", "card_last4", "created_at"],
    "orders": ["id", "customer_id", "team_id", "amount", "currency", "status", "created_at"],
    "pageviews": ["id", "customer_id", "team_id", "page", "referrer", "city", "device", "timestamp"],
}


class ExportRequestSerializer(serializers.Serializer):
    dataset = serializers.ChoiceField(choices=sorted(COLUMNS))
    filters = serializers.DictField(required=False, default=dict)
    format = serializers.ChoiceField(choices=ExportFormat.choices)
    purpose = serializers.CharField(min_length=10, max_length=500)
    date_from = serializers.DateField(required=False, allow_null=True, default=None)
    date_to = serializers.DateField(required=False, allow_null=True, default=None)


def export_dir() -> Path:
    path = Path(settings.PORTAL_EXPORT_DIR)
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path


def start(user, data: dict) -> Export:
    """Validate and record an export; the caller queues ``run`` after commit."""
    definition = report_definitions.validate(
        {
            "dataset": data["dataset"],
            "filters": data.get("filters") or {},
            "date_from": data.get("date_from"),
            "date_to": data.get("date_to"),
        }
    )
    return Export.objects.create(
        requested_by=user,
        dataset=definition["dataset"],
        filters={k: definition[k] for k in ("filters", "date_from", "date_to")},
        format=data["format"],
        purpose=data["purpose"],
    )


def progress_key(export_id) -> str:
    return f"export-progress:{export_id}"


def progress(export: Export) -> dict:
    """Live progress from Redis while running; the stored figures once done."""
    live = cache.get(progress_key(export.id)) or {}
    total = live.get("total") or export.row_count or 0
    done = live.get("done") or (export.row_count or 0 if export.status == ExportStatus.DONE else 0)
    percent = 100 if export.status == ExportStatus.DONE else (int(done * 100 / total) if total else 0)
    return {"rows_done": done, "rows_total": total, "percent": percent}


def render(user, export: Export) -> tuple[bytes, int]:
    """The export's file content and row count, within the user's export scope, masked per role."""
    definition = {"dataset": export.dataset, **export.filters}
    # filtered_queryset applies the analytics-consent filter: withdrawn subjects are left out.
    rows = report_definitions.filtered_queryset(user, definition, policy.Action.EXPORT).order_by("id")
    masks = policy.masking_for(policy.access(user, policy.Action.EXPORT).role) or {}
    columns = COLUMNS[export.dataset]
    total = rows.count()
    buffer = io.StringIO()
    writer = csv.writer(buffer) if export.format == ExportFormat.CSV else None
    if writer:
        writer.writerow(columns)
    else:
        buffer.write("[")
    done = 0
    for instance in rows.iterator(chunk_size=BATCH):
        record = {column: getattr(instance, column) for column in columns}
        record = masking.mask_record({k: v for k, v in masks.items() if k in record}, record)
        values = [_text(record[column]) for column in columns]
        if writer:
            writer.writerow(values)
        else:
            buffer.write(("," if done else "") + json.dumps(dict(zip(columns, values, strict=True))))
        done += 1
        if done % BATCH == 0:
            cache.set(progress_key(export.id), {"done": done, "total": total}, 3600)
    if not writer:
        buffer.write("]")
    return buffer.getvalue().encode(), done


def _text(value):
    if value is None:
        return ""
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)


def run(user, export_id) -> Export:
    """Write the file (encrypted at rest), record rows and SHA-256, audit the export.  Re-running
    after a killed worker overwrites the same file and reaches the same end state."""
    from portal.file_crypto import encrypt_bytes

    export = Export.objects.select_for_update().get(pk=export_id, requested_by=user)
    if export.status == ExportStatus.DONE:
        return export
    content, count = render(user, export)
    file_name = f"{export.id}.{export.format}.enc"
    target = export_dir() / file_name
    partial = target.with_suffix(".partial")
    partial.write_bytes(encrypt_bytes(content))
    fault_points.reached("export_partial")
    partial.replace(target)
    fault_points.reached("export_file")  # the file is in place, the row not yet committed
    export.status = ExportStatus.DONE
    export.row_count = count
    export.sha256 = hashlib.sha256(content).hexdigest()
    export.file_name = file_name
    export.finished_at = timezone.now()
    export.save()
    cache.set(progress_key(export.id), {"done": count, "total": count}, 3600)
    audit.record(
        AuditAction.EXPORT_DATA,
        actor=user,
        resource=export.dataset,
        object_ids=[export.id],
        rows=count,
        reason=export.purpose,
        extra={"format": export.format, "sha256": export.sha256},
    )
    return export


def mark_failed(export_id, error: str) -> None:
    Export.objects.filter(pk=export_id).exclude(status=ExportStatus.DONE).update(
        status=ExportStatus.FAILED, error=error[:200], finished_at=timezone.now()
    )


def download_token(export: Export) -> str:
    return signing.TimestampSigner(salt=_SIGNER_SALT).sign(f"{export.id}:{export.requested_by_id}")


def check_download_token(export: Export, user, token: str) -> bool:
    """Valid only for the requester and only for EXPORT_LINK_SECONDS."""
    try:
        value = signing.TimestampSigner(salt=_SIGNER_SALT).unsign(token, max_age=settings.EXPORT_LINK_SECONDS)
    except signing.BadSignature:
        return False
    return value == f"{export.id}:{user.pk}" and export.requested_by_id == user.pk


def read_file(export: Export) -> bytes:
    from portal.file_crypto import decrypt_bytes

    name = Path(export.file_name).name  # never a path from the client
    return decrypt_bytes((export_dir() / name).read_bytes())
