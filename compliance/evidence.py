"""The evidence pack: one ZIP for a date range that a SOC 2 auditor can work from.

Contents (each file's SHA-256 and row count in ``manifest.json``):
checklist snapshots and today's checklist, the record of processing, attestations, vendors and
their assessments, vulnerability scans, backup verifications, retention runs with their proofs,
access reviews (with their CSV evidence), audit events and chain checks, security alerts.

What the requester may read decides what goes in: the audit part follows ``policy.audit_view``
(Admin: every event; DPO duty: GDPR events), alerts need ``policy.may_manage_alerts``.  The pack
is itself an export: it is audited (EXPORT_DATA, resource "evidence_pack").
"""

import hashlib
import json
import tempfile
import zipfile
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from django.core.serializers.json import DjangoJSONEncoder
from django.db.models import Q
from django.utils import timezone

from accounts import policy
from audit import services as audit
from audit.choices import GDPR_ACTIONS, AuditAction

MAX_RANGE_DAYS = 400


class EvidenceError(ValueError):
    pass


@dataclass(frozen=True)
class DateRange:
    start: date
    end: date  # inclusive

    @classmethod
    def parse(cls, start: date, end: date) -> "DateRange":
        if start > end:
            raise EvidenceError("The range starts after it ends.")
        if (end - start).days > MAX_RANGE_DAYS:
            raise EvidenceError(f"At most {MAX_RANGE_DAYS} days per pack.")
        return cls(start, end)

    @property
    def since(self) -> datetime:
        return timezone.make_aware(datetime.combine(self.start, time.min), timezone.get_default_timezone())

    @property
    def until(self) -> datetime:
        return timezone.make_aware(
            datetime.combine(self.end + timedelta(days=1), time.min), timezone.get_default_timezone()
        )


def _json(value) -> bytes:
    return json.dumps(value, cls=DjangoJSONEncoder, indent=2, sort_keys=True).encode()


class _Pack:
    def __init__(self, archive: zipfile.ZipFile):
        self.archive = archive
        self.files: dict[str, dict] = {}

    def add(self, name: str, content: bytes, rows: int | None = None) -> None:
        self.archive.writestr(name, content)
        self.files[name] = {"sha256": hashlib.sha256(content).hexdigest(), "bytes": len(content), "rows": rows}

    def add_json(self, name: str, rows: list) -> None:
        self.add(name, _json(rows), len(rows))

    def add_lines(self, name: str, lines) -> int:
        """JSON lines, streamed into the archive (audit events can be many)."""
        digest, size, count = hashlib.sha256(), 0, 0
        with self.archive.open(name, "w") as handle:
            for row in lines:
                data = json.dumps(row, cls=DjangoJSONEncoder, sort_keys=True).encode() + b"\n"
                handle.write(data)
                digest.update(data)
                size += len(data)
                count += 1
        self.files[name] = {"sha256": digest.hexdigest(), "bytes": size, "rows": count}
        return count


def _values(queryset, *fields) -> list[dict]:
    return list(queryset.values(*fields))


def _governance(pack: _Pack, span: DateRange) -> None:
    from compliance import checklist, record_of_processing
    from compliance.governance_models import (
        Attestation,
        BackupVerification,
        ChecklistSnapshot,
        RetentionProof,
        RetentionRun,
        Vendor,
        VendorAssessment,
        VulnerabilityScan,
    )

    in_range = {"__gte": span.since, "__lt": span.until}

    def between(field):
        return {f"{field}{k}": v for k, v in in_range.items()}

    pack.add_json(
        "checklist/snapshots.json",
        _values(
            ChecklistSnapshot.objects.filter(**between("taken_at")).order_by("taken_at"),
            "id",
            "period",
            "taken_at",
            "taken_by__email",
            "trigger",
            "passed",
            "failed",
            "attention",
            "sha256",
            "items",
        ),
    )
    pack.add_json("checklist/current.json", [item.as_dict() for item in checklist.evaluate()])
    pack.add("record_of_processing.csv", record_of_processing.as_csv().encode(), None)
    pack.add_json(
        "checklist/attestations.json",
        _values(
            Attestation.objects.filter(**between("attested_at")).order_by("attested_at"),
            "id",
            "item",
            "attested_by__email",
            "attested_at",
            "statement",
            "evidence",
            "valid_until",
        ),
    )
    pack.add_json(
        "vendors/vendors.json",
        _values(
            Vendor.objects.order_by("name"),
            "id",
            "name",
            "service",
            "data_shared",
            "handles_health_data",
            "dpa_signed_on",
            "baa_signed_on",
            "transfers_outside_eea",
            "transfer_safeguards",
            "assessment_interval_days",
            "last_assessed_on",
            "active",
        ),
    )
    pack.add_json(
        "vendors/assessments.json",
        _values(
            VendorAssessment.objects.filter(assessed_on__gte=span.start, assessed_on__lte=span.end).order_by(
                "assessed_on"
            ),
            "id",
            "vendor__name",
            "assessed_on",
            "assessed_by__email",
            "result",
            "summary",
            "evidence",
        ),
    )
    pack.add_json(
        "checklist/vulnerability_scans.json",
        _values(
            VulnerabilityScan.objects.filter(**between("ran_at")).order_by("ran_at"),
            "id",
            "ran_at",
            "tool",
            "result",
            "packages",
            "findings",
            "detail",
        ),
    )
    pack.add_json(
        "checklist/backup_verifications.json",
        _values(
            BackupVerification.objects.filter(**between("started_at")).order_by("started_at"),
            "id",
            "started_at",
            "finished_at",
            "ok",
            "server_version",
            "tool_version",
            "tables",
            "rows",
            "mismatches",
            "sampled_values",
            "sample_mismatches",
            "dump_bytes",
            "dump_sha256",
            "detail",
        ),
    )
    pack.add_json(
        "retention/runs.json",
        _values(
            RetentionRun.objects.filter(**between("started_at")).order_by("started_at"),
            "id",
            "rule",
            "trigger",
            "cutoff",
            "status",
            "started_at",
            "finished_at",
            "batches",
            "rows_deleted",
            "rows_archived",
            "rows_anonymised",
            "digest",
            "resumed",
            "longest_batch_ms",
        ),
    )
    pack.add_json(
        "retention/proofs.json",
        _values(
            RetentionProof.objects.filter(**between("created_at")).order_by("created_at"),
            "id",
            "run_id",
            "created_at",
            "document",
            "sha256",
            "audit_event_id",
            "audit_event_hash",
        ),
    )


def _access_reviews(pack: _Pack, span: DateRange, actor) -> None:
    try:
        from accounts.models import AccessReview
        from accounts.services import review_csv
    except ImportError:
        return
    reviews = AccessReview.objects.filter(period_start__lte=span.end, due_on__gte=span.start).select_related("reviewer")
    summary = []
    for review in reviews.order_by("period_start", "reviewer_id"):
        summary.append(
            {
                "id": review.pk,
                "period": review.period,
                "reviewer": review.reviewer.email,
                "due_on": review.due_on,
                "completed_at": review.completed_at,
                "lines": review.lines.count(),
            }
        )
        pack.add(f"access_reviews/review-{review.pk}.csv", review_csv(review, actor=actor).encode())
    pack.add_json("access_reviews/reviews.json", summary)


def _audit(pack: _Pack, span: DateRange, actor) -> None:
    from audit.models import AuditChainCheck, AuditEvent, SecurityAlert

    view = policy.audit_view(actor)
    if view == policy.AuditView.NONE:
        return
    events = AuditEvent.objects.filter(timestamp__gte=span.since, timestamp__lt=span.until).order_by("id")
    if view == policy.AuditView.GDPR:
        events = events.filter(action__in=sorted(GDPR_ACTIONS))
    pack.add_lines("audit/events.jsonl", (event.as_export() for event in events.iterator(chunk_size=2000)))
    pack.add_json(
        "audit/chain_checks.json",
        _values(
            AuditChainCheck.objects.filter(checked_at__gte=span.since, checked_at__lt=span.until).order_by("id"),
            "id",
            "checked_at",
            "ok",
            "events",
            "head_id",
            "head_hash",
            "first_bad_id",
            "detail",
            "alerts_open",
            "alerts_raised_24h",
        ),
    )
    _incidents(pack, span)
    if policy.may_manage_alerts(actor):
        pack.add_json(
            "incidents/security_alerts.json",
            _values(
                SecurityAlert.objects.filter(last_seen__gte=span.since, first_seen__lt=span.until).order_by(
                    "first_seen"
                ),
                "id",
                "rule",
                "severity",
                "subject",
                "first_seen",
                "last_seen",
                "count",
                "status",
                "assignee__email",
                "detail",
            ),
        )


def _incidents(pack: _Pack, span: DateRange) -> None:
    """Incidents (and breaches with their 72-hour clock) when the audit app keeps them."""
    from django.apps import apps

    try:
        Incident = apps.get_model("audit", "Incident")
    except LookupError:
        return
    # Opened in the range, or opened earlier and not yet through to "learn" (still being handled).
    incidents = Incident.objects.filter(opened_at__lt=span.until).filter(
        Q(opened_at__gte=span.since) | ~Q(stage="learn")
    )
    fields = [f.name for f in Incident._meta.concrete_fields if not f.is_relation or f.name == "owner"]
    rows = []
    for incident in incidents.order_by("opened_at").prefetch_related("stages"):
        row = {name: getattr(incident, name if name != "owner" else "owner_id") for name in fields}
        row["stages"] = [
            {"stage": stage.stage, "at": stage.at, "by_id": stage.by_id} for stage in incident.stages.all()
        ]
        rows.append(row)
    pack.add_json("incidents/incidents.json", rows)


def build(actor, start: date, end: date, handle) -> dict:
    """Write the pack for [start, end] into the binary file ``handle``; returns the manifest."""
    if not policy.may_govern(actor, policy.Governance.EVIDENCE):
        raise PermissionError("Your role does not receive evidence packs.")
    span = DateRange.parse(start, end)
    with zipfile.ZipFile(handle, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        pack = _Pack(archive)
        _governance(pack, span)
        _access_reviews(pack, span, actor)
        _audit(pack, span, actor)
        manifest = {
            "kind": "evidence-pack/v1",
            "from": span.start.isoformat(),
            "to": span.end.isoformat(),
            "generated_at": timezone.now().isoformat(),
            "generated_by": actor.email,
            "audit_scope": str(policy.audit_view(actor)),
            "files": pack.files,
        }
        archive.writestr("manifest.json", _json(manifest))
    rows = sum(f["rows"] or 0 for f in pack.files.values())
    audit.record(
        AuditAction.EXPORT_DATA,
        actor=actor,
        resource="evidence_pack",
        rows=rows,
        reason=f"evidence pack {span.start.isoformat()}..{span.end.isoformat()}",
        extra={"manifest_sha256": hashlib.sha256(_json(manifest)).hexdigest(), "files": len(pack.files)},
    )
    return manifest


def build_to_tempfile(actor, start: date, end: date):
    """The pack in a temporary file (rewound), for a download response."""
    handle = tempfile.TemporaryFile()
    build(actor, start, end, handle)
    handle.seek(0)
    return handle
