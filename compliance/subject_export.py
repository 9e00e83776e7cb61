"""Access (Art. 15) and portability (Art. 20) packages.

Everything about the subject -- customer rows, orders, page views, consents, restrictions and,
for access, the audit events about them -- as ``data.json`` (machine-readable) plus one CSV per
section inside a ZIP, encrypted at rest (``portal.file_crypto``).  The SHA-256 of the ZIP is
recorded; the DPO reviews the package (awaiting_review), may rebuild it with third-party data
redacted, and downloads it through a signed link bound to them that expires after
``GDPR_PACKAGE_LINK_SECONDS`` (7 days by default).

Every read is an index look-up from the subject's blind indexes (customers), foreign keys
(orders, page views, consents) and the GIN index on audit events' ``object_ids``: the cost
follows the subject's data, not the tables' sizes.
"""

import csv
import hashlib
import io
import json
import logging
import zipfile
from functools import reduce
from operator import or_
from pathlib import Path

from django.conf import settings
from django.core import signing
from django.db.models import Q
from django.utils import timezone

from accounts import policy
from audit import services as audit
from audit.choices import AuditAction
from audit.models import AuditEvent
from compliance import selectors
from compliance.models import AccessPackage, ConsentRecord, ProcessingRestriction, SubjectRequest
from compliance.requests import set_progress
from compliance.requests_choices import RequestKind
from datasets.models import Order, PageView
from portal.file_crypto import decrypt_bytes, encrypt_bytes
from portal.security_context import scoped

logger = logging.getLogger("compliance.subject_export")
_SIGNER_SALT = "compliance.access-package-download"
# Audit events "about" a customer name it in ``object_ids`` under this resource.
CUSTOMER_RESOURCE = "customer"
THIRD_PARTY = "[third party]"

COLUMNS = {
    "customers": ["id", "team", "name", "email", "phone", "card_last4", "created_at"],
    "orders": ["id", "customer_id", "amount", "currency", "status", "created_at"],
    "page_views": ["id", "customer_id", "session_id", "page", "referrer", "city", "device", "timestamp"],
    "consents": [
        "id",
        "customer_id",
        "purpose",
        "lawful_basis",
        "granted_at",
        "withdrawn_at",
        "source",
        "notice_version",
        "current",
        "recorded_by",
    ],
    "restrictions": ["id", "customer_id", "started_at", "lifted_at"],
    "audit_events": [
        "id",
        "timestamp",
        "action",
        "actor",
        "resource",
        "object_ids",
        "success",
        "reason",
        "ip_address",
        "user_agent",
        "request_id",
    ],
}
# Portability covers the data the subject provided and their activity, not the access log.
SECTIONS_BY_KIND = {
    RequestKind.ACCESS: tuple(COLUMNS),
    RequestKind.PORTABILITY: ("customers", "orders", "page_views", "consents"),
}
# Fields that name other people (staff, their addresses and devices): the DPO may redact them.
THIRD_PARTY_FIELDS = {
    "audit_events": ("actor", "ip_address", "user_agent", "request_id"),
    "consents": ("recorded_by",),
}


def package_dir() -> Path:
    path = Path(settings.GDPR_PACKAGE_DIR)
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path


def _text(value):
    if value is None:
        return ""
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if isinstance(value, bool | int | float | list | dict):
        return value
    return str(value)


def _rows(queryset, columns, getter=getattr) -> list[dict]:
    return [{column: _text(getter(obj, column)) for column in columns} for obj in queryset]


def collect(request: SubjectRequest) -> dict[str, list[dict]]:
    """The subject's data, section by section, read under the system scope (index look-ups)."""
    sections = SECTIONS_BY_KIND[RequestKind(request.kind)]
    data: dict[str, list[dict]] = {}
    with scoped(system=True):
        customers = list(
            selectors.customers_matching(request.subject_email, request.subject_phone)
            .select_related("team")
            .order_by("pk")
        )
        ids = [c.pk for c in customers]
        data["customers"] = _rows(
            customers, COLUMNS["customers"], lambda c, f: c.team.name if f == "team" else getattr(c, f)
        )
        data["orders"] = _rows(Order.objects.filter(customer_id__in=ids).order_by("pk"), COLUMNS["orders"])
        data["page_views"] = _rows(PageView.objects.filter(customer_id__in=ids).order_by("pk"), COLUMNS["page_views"])
        consents = ConsentRecord.objects.filter(customer_id__in=ids).select_related("recorded_by").order_by("pk")
        data["consents"] = _rows(
            consents,
            COLUMNS["consents"],
            lambda c, f: (c.recorded_by.email if c.recorded_by else "") if f == "recorded_by" else getattr(c, f),
        )
        if "restrictions" in sections:
            data["restrictions"] = _rows(
                ProcessingRestriction.objects.filter(customer_id__in=ids).order_by("pk"), COLUMNS["restrictions"]
            )
        if "audit_events" in sections:
            data["audit_events"] = _audit_events(ids)
    return {name: data[name] for name in sections}


def _audit_events(customer_ids: list[int]) -> list[dict]:
    if not customer_ids:
        return []
    about = reduce(or_, (Q(object_ids__contains=[str(i)]) for i in customer_ids))
    events = AuditEvent.objects.filter(about, resource=CUSTOMER_RESOURCE).order_by("pk")
    wanted = {str(i) for i in customer_ids}

    def value(event, column):
        if column == "actor":
            return event.actor_email
        if column == "object_ids":
            # Other customers read in the same page are other people: only the subject's ids.
            return [i for i in event.object_ids if i in wanted]
        return getattr(event, column)

    return _rows(events, COLUMNS["audit_events"], value)


def redact_third_party(data: dict[str, list[dict]]) -> dict[str, list[dict]]:
    """The same data with staff identities, addresses and devices replaced."""
    redacted = {}
    for section, rows in data.items():
        fields = THIRD_PARTY_FIELDS.get(section, ())
        redacted[section] = [{k: (THIRD_PARTY if k in fields and v else v) for k, v in row.items()} for row in rows]
    return redacted


def render_zip(request: SubjectRequest, data: dict[str, list[dict]], generated_at, *, redacted: bool) -> bytes:
    """data.json + one CSV per section + a README, with fixed timestamps (same data, same bytes)."""
    manifest = {
        "request_id": request.pk,
        "request_type": request.kind,
        "generated_at": generated_at.isoformat(),
        "third_party_data_redacted": redacted,
        "sections": {name: len(rows) for name, rows in data.items()},
    }
    stamp = generated_at.timetuple()[:6]
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:

        def put(name: str, content: str) -> None:
            info = zipfile.ZipInfo(name, date_time=stamp)
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, content.encode())

        put("data.json", json.dumps({"manifest": manifest, **data}, indent=2, sort_keys=True, ensure_ascii=False))
        for name, rows in data.items():
            out = io.StringIO()
            writer = csv.DictWriter(out, fieldnames=COLUMNS[name], extrasaction="ignore")
            writer.writeheader()
            for row in rows:
                writer.writerow({k: json.dumps(v) if isinstance(v, list | dict) else v for k, v in row.items()})
            put(f"{name}.csv", out.getvalue())
        put(
            "README.txt",
            "Personal data held about you, as of the date below.\n"
            f"Request: #{request.pk} ({request.kind})\nGenerated: {generated_at.isoformat()}\n"
            "data.json holds everything in a machine-readable form; each CSV file holds one section.\n",
        )
    return buffer.getvalue()


def _store(request: SubjectRequest, user, data, *, redacted: bool) -> AccessPackage:
    created_at = timezone.now()
    generated_at = created_at.replace(microsecond=0)
    content = render_zip(request, data, generated_at, redacted=redacted)
    package = AccessPackage(
        request=request,
        created_at=created_at,
        sha256=hashlib.sha256(content).hexdigest(),
        size_bytes=len(content),
        rows={name: len(rows) for name, rows in data.items()},
        third_party_redacted=redacted,
    )
    package.file_name = f"{package.pk}.zip.enc"
    target = package_dir() / package.file_name
    partial = target.with_suffix(".partial")
    partial.write_bytes(encrypt_bytes(content))
    partial.replace(target)
    package.save()
    audit.record(
        AuditAction.GDPR_EXPORT,
        actor=user,
        resource="subject_request",
        object_ids=[request.pk],
        rows=sum(package.rows.values()),
        extra={"package": str(package.pk), "sha256": package.sha256, "redacted": redacted, "sections": package.rows},
    )
    return package


def build_package(request: SubjectRequest, user) -> AccessPackage:
    """Collect, render, encrypt and record the subject's package (the Celery task calls this)."""
    set_progress(request.pk, step="collect", done=0, total=0)
    data = collect(request)
    total = sum(len(rows) for rows in data.values())
    set_progress(request.pk, step="package", done=total, total=total)
    return _store(request, user, data, redacted=False)


def latest_package(request: SubjectRequest) -> AccessPackage | None:
    return request.packages.order_by("-created_at").first()


def read_package(package: AccessPackage) -> bytes:
    name = Path(package.file_name).name  # never a path from a client
    return decrypt_bytes((package_dir() / name).read_bytes())


def rebuild_redacted(package: AccessPackage, user) -> AccessPackage:
    """A new package from the reviewed one, with third-party data replaced (review step)."""
    if not policy.may_privacy(user, policy.PrivacyRight.WORK):
        raise PermissionError("the work right is needed")
    with zipfile.ZipFile(io.BytesIO(read_package(package))) as archive:
        document = json.loads(archive.read("data.json"))
    document.pop("manifest", None)
    return _store(package.request, user, redact_third_party(document), redacted=True)


def delete_files(file_names) -> None:
    for name in file_names:
        try:
            (package_dir() / Path(name).name).unlink(missing_ok=True)
        except OSError as exc:
            logger.error("could not delete an access package file: %s", type(exc).__name__)


# --- Download: the DPO's own expiring link --------------------------------------------------


def download_token(package: AccessPackage, user) -> str:
    return signing.TimestampSigner(salt=_SIGNER_SALT).sign(f"{package.pk}:{user.pk}")


def check_download_token(package: AccessPackage, user, token: str) -> bool:
    """Valid for the user it was made for, with the download right, for GDPR_PACKAGE_LINK_SECONDS."""
    if not policy.may_privacy(user, policy.PrivacyRight.DOWNLOAD):
        return False
    try:
        value = signing.TimestampSigner(salt=_SIGNER_SALT).unsign(
            token or "", max_age=settings.GDPR_PACKAGE_LINK_SECONDS
        )
    except signing.BadSignature:
        return False
    return value == f"{package.pk}:{user.pk}"


def record_download(package: AccessPackage, user) -> None:
    audit.record(
        AuditAction.GDPR_EXPORT,
        actor=user,
        resource="subject_request",
        object_ids=[package.request_id],
        rows=sum(package.rows.values()),
        reason="access package downloaded",
        extra={"package": str(package.pk), "sha256": package.sha256, "download": True},
    )
