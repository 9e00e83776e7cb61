"""The seed's monthly compliance checklist, computed from live state where a program can measure
it, and from attestations (who, when, evidence) where it cannot.

Each item answers pass / fail / attention ("needs evidence") with a one-line summary and the
figures it was decided on.  ``take_snapshot`` stores the whole answer (with its SHA-256) as the
month's evidence.  Figures only: no customer data goes into an item (an attestation names the
staff member who gave it: that is what makes it evidence).
"""

import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, connections, transaction
from django.db.models import Count, Q
from django.utils import timezone
from psycopg import sql

from accounts.policy import Duty, Role
from compliance.governance_choices import ChecklistItem, ItemStatus, ScanResult, SnapshotTrigger
from compliance.governance_models import (
    Attestation,
    BackupVerification,
    ChecklistSnapshot,
    Vendor,
    VulnerabilityScan,
)

logger = logging.getLogger("compliance.checklist")

# Items a person attests, and how long an attestation holds by default (days).
ATTESTABLE: dict[str, int] = {
    ChecklistItem.TRAINING: 365,
    ChecklistItem.INCIDENT_PLAN: 365,
    ChecklistItem.VENDORS: 365,
    ChecklistItem.DEPENDENCIES: 31,
}
# Measured evidence older than this no longer counts for a monthly checklist.
EVIDENCE_MAX_AGE_DAYS = 31
# The audit chain is verified daily; a check older than this is stale.
CHAIN_CHECK_MAX_AGE = timedelta(hours=26)
# Grants are closed by a beat task every few minutes; older leftovers are a finding.
GRANT_EXPIRY_GRACE = timedelta(minutes=15)
# Rows sampled per encrypted column to confirm that what is stored is ciphertext.
CIPHERTEXT_SAMPLE = 1000
SECURE_DB_SSLMODES = {"require", "verify-ca", "verify-full"}
LOCAL_HOSTS = {"", "localhost", "127.0.0.1", "::1"}


@dataclass
class ItemResult:
    key: str
    label: str
    status: str
    summary: str
    measured: bool  # computed from live state (False: rests on an attestation)
    figures: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return asdict(self)


def _item(key: ChecklistItem, status, summary, *, measured=True, **figures) -> ItemResult:
    return ItemResult(key.value, key.label, str(status), summary, measured, figures)


def valid_attestation(item: str, today=None) -> Attestation | None:
    today = today or timezone.localdate()
    return (
        Attestation.objects.filter(item=item, valid_until__gte=today)
        .select_related("attested_by")
        .order_by("-attested_at")
        .first()
    )


def _attested(key: ChecklistItem, missing: str) -> ItemResult:
    attestation = valid_attestation(key)
    if attestation is None:
        return _item(key, ItemStatus.ATTENTION, missing, measured=False)
    return _item(
        key,
        ItemStatus.PASS,
        f"Attested by {attestation.attested_by} on {attestation.attested_at:%Y-%m-%d}, valid until "
        f"{attestation.valid_until.isoformat()}",
        measured=False,
        attestation=attestation.pk,
        evidence=attestation.evidence,
    )


# --- 1. encryption at rest ---------------------------------------------------------------------


def _ciphertext_findings() -> tuple[int, int]:
    """(columns sampled, values that are not this portal's ciphertext) over every encrypted column."""
    from compliance import record_of_processing
    from portal.field_crypto import VERSION
    from portal.security_context import scoped

    columns = []
    for model in record_of_processing._models_in_record():
        for field_ in record_of_processing._concrete_fields(model):
            if record_of_processing.is_encrypted(field_):
                columns.append((model._meta.db_table, field_.column))
    bad = 0
    # Only counts leave this block; the sample is read under the system scope (maintenance).
    with scoped(system=True), connections["default"].cursor() as cursor:
        for table, column in columns:
            # Table and column names come from the models (a fixed list), never from input.
            cursor.execute(
                sql.SQL(
                    "SELECT count(*) FROM (SELECT {c} AS v FROM {t} WHERE {c} IS NOT NULL LIMIT %s) s"
                    " WHERE get_byte(v, 0) <> %s OR length(v) < 37"
                ).format(c=sql.Identifier(column), t=sql.Identifier(table)),
                [CIPHERTEXT_SAMPLE, VERSION[0]],
            )
            bad += cursor.fetchone()[0]
    return len(columns), bad


def encryption_at_rest() -> ItemResult:
    from compliance import record_of_processing

    summary = record_of_processing.encryption_summary()
    sampled, plaintext = _ciphertext_findings()
    figures = {
        "personal_fields": summary.personal_fields,
        "encrypted": summary.encrypted,
        "clear_with_documented_reason": summary.clear_with_reason,
        "problems": summary.problems,
        "encrypted_columns_sampled": sampled,
        "sampled_values_not_ciphertext": plaintext,
    }
    if summary.problems or plaintext:
        return _item(
            ChecklistItem.ENCRYPTION_AT_REST,
            ItemStatus.FAIL,
            f"{len(summary.problems)} personal field(s) neither encrypted nor justified; "
            f"{plaintext} stored value(s) not ciphertext",
            **figures,
        )
    return _item(
        ChecklistItem.ENCRYPTION_AT_REST,
        ItemStatus.PASS,
        f"Customers' direct identifiers encrypted: {summary.encrypted} fields (AES-256-GCM), stored values "
        f"sampled; {summary.clear_with_reason} other personal fields in clear by documented exception "
        "(pseudonymous keys, row links, staff security logs; see the record of processing)",
        **figures,
    )


# --- 2. encryption in transit ------------------------------------------------------------------


def _is_local(host: str) -> bool:
    return host in LOCAL_HOSTS or host.startswith("/")


def _database_tls() -> tuple[bool, str]:
    db = settings.DATABASES["default"]
    sslmode = str((db.get("OPTIONS") or {}).get("sslmode", "")).lower()
    host = str(db.get("HOST") or "")
    with connections["default"].cursor() as cursor:
        cursor.execute("SELECT coalesce((SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()), false)")
        live_ssl = bool(cursor.fetchone()[0])
    if sslmode in SECURE_DB_SSLMODES:
        if not live_ssl:
            return False, f"PostgreSQL sslmode={sslmode} but the live connection is not encrypted"
        note = "" if sslmode == "verify-full" else " (certificate not verified: prefer verify-full)"
        return True, f"PostgreSQL over TLS (sslmode={sslmode}){note}"
    if live_ssl:
        return True, "PostgreSQL connection encrypted"
    if _is_local(host):
        return True, "PostgreSQL on this host (socket/loopback): TLS not required"
    return False, f"PostgreSQL at {host} without TLS: set sslmode=verify-full in DATABASE_URL"


def _redis_tls() -> tuple[bool, str]:
    from urllib.parse import urlsplit

    url = urlsplit(settings.REDIS_URL)
    if url.scheme == "rediss":
        return True, "Redis over TLS (rediss://)"
    if _is_local(url.hostname or ""):
        return True, "Redis on this host (loopback): TLS not required"
    return False, f"Redis at {url.hostname} without TLS: use a rediss:// URL"


def encryption_in_transit() -> ItemResult:
    problems = []
    https = bool(settings.SECURE_SSL_REDIRECT or getattr(settings, "SECURE_PROXY_SSL_HEADER", None))
    if not https:
        problems.append("HTTP is not redirected to HTTPS")
    if settings.SECURE_HSTS_SECONDS < 31536000:
        problems.append(f"HSTS max-age {settings.SECURE_HSTS_SECONDS}s is under a year")
    if not (settings.SESSION_COOKIE_SECURE and settings.CSRF_COOKIE_SECURE):
        problems.append("session or CSRF cookie not marked Secure")
    db_ok, db_note = _database_tls()
    redis_ok, redis_note = _redis_tls()
    if not db_ok:
        problems.append(db_note)
    if not redis_ok:
        problems.append(redis_note)
    figures = {
        "https_redirect": bool(settings.SECURE_SSL_REDIRECT),
        "behind_tls_proxy": bool(getattr(settings, "SECURE_PROXY_SSL_HEADER", None)),
        "hsts_seconds": settings.SECURE_HSTS_SECONDS,
        "secure_cookies": bool(settings.SESSION_COOKIE_SECURE and settings.CSRF_COOKIE_SECURE),
        "database": db_note,
        "redis": redis_note,
        "listener": "TLS 1.3 minimum (portal/gunicorn_conf.py)",
    }
    if problems:
        return _item(ChecklistItem.ENCRYPTION_IN_TRANSIT, ItemStatus.FAIL, "; ".join(problems), **figures)
    return _item(
        ChecklistItem.ENCRYPTION_IN_TRANSIT,
        ItemStatus.PASS,
        f"HTTPS only with HSTS; {db_note}; {redis_note}",
        **figures,
    )


# --- 3. access controls ------------------------------------------------------------------------


def access_controls() -> ItemResult:
    from accounts.models import AccessReview, User
    from datasets.choices import GrantStatus
    from datasets.models import AccessGrant

    roles = [r.value for r in Role]
    duties = [d.value for d in Duty]
    users = User.objects.filter(is_active=True).annotate(
        roles=Count("groups", filter=Q(groups__name__in=roles), distinct=True),
        duties=Count("groups", filter=Q(groups__name__in=duties), distinct=True),
    )
    several = users.filter(roles__gt=1).count()
    # A duty alone (the DPO) is a legitimate account; nothing at all is not.
    nothing = users.filter(roles=0, duties=0).count()
    expired = AccessGrant.objects.filter(
        status=GrantStatus.APPROVED, expires_at__lt=timezone.now() - GRANT_EXPIRY_GRACE
    ).count()
    overdue_reviews = AccessReview.objects.overdue().count()
    figures = {
        "active_users": users.count(),
        "users_with_several_roles": several,
        "users_without_role_or_duty": nothing,
        "expired_grants_still_approved": expired,
        "overdue_access_reviews": overdue_reviews,
    }
    problems = []
    if several:
        problems.append(f"{several} active user(s) with more than one role")
    if nothing:
        problems.append(f"{nothing} active user(s) with no role")
    if expired:
        problems.append(f"{expired} expired grant(s) still approved")
    if problems:
        return _item(ChecklistItem.ACCESS_CONTROLS, ItemStatus.FAIL, "; ".join(problems), **figures)
    if overdue_reviews:
        return _item(
            ChecklistItem.ACCESS_CONTROLS,
            ItemStatus.ATTENTION,
            f"Roles and grants consistent, but {overdue_reviews} access review(s) overdue",
            **figures,
        )
    return _item(
        ChecklistItem.ACCESS_CONTROLS,
        ItemStatus.PASS,
        f"Every active user has exactly one role (or a duty alone); no expired grant active; "
        f"{figures['active_users']} active users",
        **figures,
    )


# --- 4. audit logs -----------------------------------------------------------------------------


def _chain_check(verify: bool):
    """The latest chain check; with ``verify``, run the audit app's verifier first."""
    try:
        from audit.models import AuditChainCheck
    except ImportError:
        return None
    if verify:
        try:
            from audit import review
        except ImportError:
            review = None
        if review is not None and hasattr(review, "verify_and_record"):
            return review.verify_and_record()
    return AuditChainCheck.objects.order_by("-id").first()


def audit_logs(verify_chain: bool = False) -> ItemResult:
    from audit.models import AuditEvent

    since = timezone.now() - timedelta(hours=24)
    events = AuditEvent.objects.filter(timestamp__gte=since).count()
    check = _chain_check(verify_chain)
    figures = {"events_last_24h": events}
    if check is not None:
        figures.update(
            chain_checked_at=check.checked_at.isoformat(),
            chain_ok=check.ok,
            chain_events=check.events,
            chain_head=f"{check.head_id}:{check.head_hash}" if check.head_id else "",
        )
    if check is not None and not check.ok:
        return _item(
            ChecklistItem.AUDIT_LOGS,
            ItemStatus.FAIL,
            f"Audit chain BROKEN (check of {check.checked_at:%Y-%m-%d %H:%M}, first bad event {check.first_bad_id})",
            **figures,
        )
    if not events:
        return _item(ChecklistItem.AUDIT_LOGS, ItemStatus.FAIL, "No audit event in the last 24 hours", **figures)
    if check is None or timezone.now() - check.checked_at > CHAIN_CHECK_MAX_AGE:
        return _item(
            ChecklistItem.AUDIT_LOGS,
            ItemStatus.ATTENTION,
            f"{events} events in the last 24 hours; the hash chain was not verified in the last day",
            **figures,
        )
    return _item(
        ChecklistItem.AUDIT_LOGS,
        ItemStatus.PASS,
        f"{events} events in the last 24 hours; chain of {check.events} events verified "
        f"{check.checked_at:%Y-%m-%d %H:%M} UTC",
        **figures,
    )


# --- 5. inactive accounts ----------------------------------------------------------------------


def inactive_accounts() -> ItemResult:
    from accounts.models import User

    days = int(getattr(settings, "INACTIVE_ACCOUNT_DAYS", 90))
    cutoff = timezone.now() - timedelta(days=days)
    stale = User.objects.filter(is_active=True).exclude(last_login__gte=cutoff).filter(date_joined__lt=cutoff).count()
    figures = {"inactive_days": days, "active_accounts_unused": stale}
    if stale:
        return _item(
            ChecklistItem.INACTIVE_ACCOUNTS,
            ItemStatus.FAIL,
            f"{stale} active account(s) without a login for {days} days",
            **figures,
        )
    return _item(
        ChecklistItem.INACTIVE_ACCOUNTS, ItemStatus.PASS, f"No active account unused for {days} days", **figures
    )


# --- 6. dependencies ---------------------------------------------------------------------------


def dependencies() -> ItemResult:
    scan = VulnerabilityScan.objects.order_by("-ran_at", "-id").first()
    fresh_after = timezone.now() - timedelta(days=EVIDENCE_MAX_AGE_DAYS)
    if scan is not None and scan.ran_at >= fresh_after and scan.result != ScanResult.ERROR:
        figures = {
            "scan": scan.pk,
            "tool": scan.tool,
            "ran_at": scan.ran_at.isoformat(),
            "result": scan.result,
            "packages": scan.packages,
            "findings": scan.findings,
        }
        if scan.result == ScanResult.PASS:
            return _item(
                ChecklistItem.DEPENDENCIES,
                ItemStatus.PASS,
                f"{scan.tool} on {scan.ran_at:%Y-%m-%d}: {scan.packages} packages, no known vulnerability",
                **figures,
            )
        return _item(
            ChecklistItem.DEPENDENCIES,
            ItemStatus.FAIL,
            f"{scan.tool} on {scan.ran_at:%Y-%m-%d}: {scan.get_result_display().lower()} ({scan.findings} finding(s))",
            **figures,
        )
    if scan is None:
        stale = "no vulnerability scan recorded"
    elif scan.result == ScanResult.ERROR:
        stale = f"the scan of {scan.ran_at:%Y-%m-%d} did not complete"
    else:
        stale = f"last scan {scan.ran_at:%Y-%m-%d}"
    return _attested(ChecklistItem.DEPENDENCIES, f"{stale}: run `make audit` (manage.py record_scan) or attest")


# --- 8. backups --------------------------------------------------------------------------------


def backup_restore() -> ItemResult:
    check = BackupVerification.objects.filter(finished_at__isnull=False).order_by("-started_at", "-id").first()
    fresh_after = timezone.now() - timedelta(days=EVIDENCE_MAX_AGE_DAYS)
    if check is None or check.started_at < fresh_after:
        when = f"last test {check.started_at:%Y-%m-%d}" if check else "never tested"
        return _item(
            ChecklistItem.BACKUP_RESTORE,
            ItemStatus.ATTENTION,
            f"Backup restoration {when}: run `manage.py verify_backup`",
        )
    figures = {
        "verification": check.pk,
        "at": check.started_at.isoformat(),
        "tables": check.tables,
        "rows": check.rows,
        "table_mismatches": len(check.mismatches),
        "sampled_values": check.sampled_values,
        "sample_mismatches": check.sample_mismatches,
    }
    if not check.ok:
        return _item(
            ChecklistItem.BACKUP_RESTORE,
            ItemStatus.FAIL,
            f"Restore test of {check.started_at:%Y-%m-%d} FAILED: {check.detail}",
            **figures,
        )
    return _item(
        ChecklistItem.BACKUP_RESTORE,
        ItemStatus.PASS,
        f"Restored {check.tables} tables ({check.rows} rows) on {check.started_at:%Y-%m-%d}: counts equal, "
        f"{check.sampled_values} decrypted values equal",
        **figures,
    )


# --- 10. vendors -------------------------------------------------------------------------------


def vendors() -> ItemResult:
    active = list(Vendor.objects.filter(active=True))
    if not active:
        return _attested(
            ChecklistItem.VENDORS, "No vendor recorded: add vendor records, or attest that none processes personal data"
        )
    today = timezone.localdate()
    failing = {vendor.name: vendor.problems(today) for vendor in active if vendor.problems(today)}
    figures = {"active_vendors": len(active), "failing": failing}
    if failing:
        names = "; ".join(f"{name}: {', '.join(why)}" for name, why in sorted(failing.items()))
        return _item(ChecklistItem.VENDORS, ItemStatus.FAIL, names, **figures)
    return _item(
        ChecklistItem.VENDORS,
        ItemStatus.PASS,
        f"{len(active)} vendor(s): DPA (and BAA where needed) signed, assessed within their interval",
        **figures,
    )


# --- the whole list ----------------------------------------------------------------------------


def evaluate(*, verify_chain: bool = False) -> list[ItemResult]:
    """All ten items, in the seed's order.  ``verify_chain`` walks the audit chain now."""
    steps: list[Callable[[], ItemResult]] = [
        encryption_at_rest,
        encryption_in_transit,
        access_controls,
        lambda: audit_logs(verify_chain),
        inactive_accounts,
        dependencies,
        lambda: _attested(ChecklistItem.TRAINING, "No valid attestation that security training was completed"),
        backup_restore,
        lambda: _attested(ChecklistItem.INCIDENT_PLAN, "No valid attestation that the incident plan was reviewed"),
        vendors,
    ]
    results = []
    for key, step in zip(ChecklistItem, steps, strict=True):
        try:
            # A savepoint per item: a failing probe inside a request's transaction leaves the
            # transaction usable for the other items.
            with transaction.atomic():
                results.append(step())
        except Exception as exc:
            # One broken probe must not hide the other nine; it fails visibly instead.
            logger.error("checklist item %s could not be computed: %s", key.value, type(exc).__name__)
            results.append(_item(key, ItemStatus.FAIL, f"Could not be computed ({type(exc).__name__})"))
    return results


def period_of(moment=None) -> str:
    return (moment or timezone.now()).strftime("%Y-%m")


def _digest(period: str, items: list[dict]) -> str:
    payload = json.dumps({"period": period, "items": items}, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(payload.encode()).hexdigest()


def take_snapshot(*, trigger: str = SnapshotTrigger.MANUAL, actor=None, verify_chain: bool = True) -> ChecklistSnapshot:
    """Store the checklist as evidence.  The scheduled one is taken once a month (idempotent)."""
    period = period_of()
    if trigger == SnapshotTrigger.SCHEDULE:
        existing = ChecklistSnapshot.objects.filter(period=period, trigger=trigger).first()
        if existing is not None:
            return existing
    results = evaluate(verify_chain=verify_chain)
    items = [r.as_dict() for r in results]
    statuses = [r.status for r in results]
    try:
        with transaction.atomic():
            return ChecklistSnapshot.objects.create(
                period=period,
                trigger=trigger,
                taken_by=actor if getattr(actor, "is_authenticated", False) else None,
                items=items,
                passed=statuses.count(ItemStatus.PASS),
                failed=statuses.count(ItemStatus.FAIL),
                attention=statuses.count(ItemStatus.ATTENTION),
                sha256=_digest(period, items),
            )
    except IntegrityError:
        # Another worker took this month's scheduled snapshot first.
        return ChecklistSnapshot.objects.get(period=period, trigger=trigger)


def attest(item: str, *, actor, statement: str, evidence: str, valid_days: int | None = None) -> Attestation:
    """Record an attestation for an item no program measures."""
    from django.core.exceptions import ValidationError

    if item not in ATTESTABLE:
        raise ValidationError({"item": "This item is measured by the portal; it cannot be attested."})
    if not (statement or "").strip() or not (evidence or "").strip():
        raise ValidationError("An attestation needs a statement and where its evidence is.")
    days = valid_days or ATTESTABLE[item]
    if not 1 <= days <= ATTESTABLE[item]:
        raise ValidationError({"valid_days": f"At most {ATTESTABLE[item]} days for this item."})
    return Attestation.objects.create(
        item=item,
        attested_by=actor,
        statement=statement.strip(),
        evidence=evidence.strip(),
        valid_until=timezone.localdate() + timedelta(days=days),
    )


def latest_status() -> dict | None:
    """The latest snapshot's overall status, for dashboards' security panels."""
    snapshot = ChecklistSnapshot.objects.order_by("-taken_at", "-id").first()
    if snapshot is None:
        return None
    return {
        "period": snapshot.period,
        "taken_at": snapshot.taken_at.isoformat(),
        "passed": snapshot.passed,
        "failed": snapshot.failed,
        "attention": snapshot.attention,
        "overall": snapshot.overall,
    }
