"""Erasure (Art. 17): one database transaction per subject across every table.

The caller's transaction holds it all (the Celery task's, or one per subject in
``reapply_erasures``): a killed worker rolls everything back and the redelivered task starts
again, so a half-erased subject never exists and a second run reaches the same end state.

Per subject, under the system scope (entered here, named in the audit trail):

* orders within the legal retention period are anonymised (customer link removed, amounts,
  currency, status, dates and team kept); older orders are deleted;
* page views, consent records and restrictions are deleted; access grants lose their customer
  link and the subject's values are cut out of their free text; any other table with a foreign
  key to the customer is unlinked (nullable) or deleted; registered hooks run for tables that
  hold a customer id without a foreign key;
* the customer rows are deleted;
* django-auditlog diffs about those rows are redacted (values replaced, field names kept) --
  the audit trail itself is append-only and never touched;
* subject requests about the subject lose the email, phone and free text (the keyed hash stays)
  and their access packages are deleted from disk once the transaction commits;
* an ``ErasedSubject`` row keeps the keyed hash and the blind-index values that found the rows,
  so that ``manage.py reapply_erasures`` can erase them again after a backup restore;
* one pseudonymous USER_DELETED event (keyed hash, counts per table) is appended inside the same
  transaction: it exists exactly when the erasure committed.
"""

import hashlib
import hmac
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from functools import lru_cache

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings
from django.contrib.contenttypes.models import ContentType
from django.db import connections, transaction
from django.db.models import Q
from django.utils import timezone
from psycopg import sql

from audit import services as audit
from audit.choices import AuditAction
from compliance.models import AccessPackage, ConsentRecord, ErasedSubject, ProcessingRestriction, SubjectRequest
from compliance.requests import set_progress
from datasets import blind_index
from datasets.models import AccessGrant, Customer, Order, PageView
from portal import fault_points
from portal.security_context import scoped

logger = logging.getLogger("compliance.erasure")
DATABASE = "default"
ERASED = "[erased]"
# Test hook (read only when set): pause after the named step, so that a test can kill the worker
# in the middle of an erasure.  Never set in production.
PAUSE_ENV = fault_points.PAUSE_ENV
PAUSE_SECONDS_ENV = fault_points.PAUSE_SECONDS_ENV

STEPS = (
    "resolve",
    "orders",
    "page_views",
    "consents",
    "restrictions",
    "grants",
    "other_links",
    "customers",
    "change_history",
    "requests",
    "record",
)

# Tables that keep a customer id without a foreign key (the retention archives, see
# ``compliance.governance_hooks``) register a hook: ``hook(customer_ids, using) -> {table: rows}``;
# it runs inside the erasure's transaction.
ErasureHook = Callable[[list[int], str], dict[str, int]]
_HOOKS: list[ErasureHook] = []


def register_hook(hook: ErasureHook) -> None:
    if hook not in _HOOKS:
        _HOOKS.append(hook)


class ErasureStepFailed(RuntimeError):
    pass


# --- Keyed hash of the subject --------------------------------------------------------------


@lru_cache(maxsize=4)
def _subject_key(material: str) -> bytes:
    # A key of its own (derived, never the look-up key itself): the trail's hash cannot be
    # joined with the blind-index columns of a leaked backup.
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"portal-erased-subject-v1").derive(
        material.encode()
    )


def subject_hash(email: str = "", phone: str = "") -> str:
    email, phone = blind_index.normalize_email(email), blind_index.normalize_phone(phone)
    material = f"email:{email}" if email else f"phone:{phone}"
    return hmac.new(_subject_key(settings.BLIND_INDEX_KEY), material.encode(), hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class SubjectKeys:
    """How a subject's rows are found: blind-index values (every configured key)."""

    subject_hash: str
    email_indexes: tuple[str, ...] = ()
    phone_indexes: tuple[str, ...] = ()

    @classmethod
    def of(cls, email: str = "", phone: str = "") -> "SubjectKeys":
        return cls(
            subject_hash(email, phone),
            tuple(blind_index.email_candidates(email)) if email else (),
            tuple(blind_index.phone_candidates(phone)) if phone else (),
        )

    def customer_filter(self) -> Q:
        condition = Q(pk__in=[])
        if self.email_indexes:
            condition |= Q(email_index__in=self.email_indexes)
        if self.phone_indexes:
            condition |= Q(phone_index__in=self.phone_indexes)
        return condition


@dataclass
class _Run:
    progress_id: object
    total: int = 0
    done: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    # model -> primary keys touched, for the change-history redaction
    history: dict = field(default_factory=dict)

    def step(self, name: str, rows: int = 0) -> None:
        self.done += rows
        if self.progress_id is not None:
            set_progress(self.progress_id, step=name, done=min(self.done, self.total), total=self.total)
        fault_points.reached(name)

    def add(self, key: str, rows: int) -> int:
        self.counts[key] = self.counts.get(key, 0) + rows
        return rows


# --- SQL helpers (identifiers from model metadata, values as parameters) ---------------------


def _cursor():
    return connections[DATABASE].cursor()


def _delete_where_in(model, column: str, ids) -> list:
    query = sql.SQL("DELETE FROM {} WHERE {} = ANY(%s) RETURNING {}").format(
        sql.Identifier(model._meta.db_table), sql.Identifier(column), sql.Identifier(model._meta.pk.column)
    )
    with _cursor() as cursor:
        cursor.execute(query, [list(ids)])
        return [row[0] for row in cursor.fetchall()]


def _unlink(model, column: str, ids, extra_set: sql.Composable | None = None) -> list:
    assignments = sql.SQL("{} = NULL").format(sql.Identifier(column))
    if extra_set is not None:
        assignments = sql.SQL(", ").join([assignments, extra_set])
    query = sql.SQL("UPDATE {} SET {} WHERE {} = ANY(%s) RETURNING {}").format(
        sql.Identifier(model._meta.db_table), assignments, sql.Identifier(column), sql.Identifier(model._meta.pk.column)
    )
    with _cursor() as cursor:
        cursor.execute(query, [list(ids)])
        return [row[0] for row in cursor.fetchall()]


_REDACT_HISTORY = sql.SQL(
    "UPDATE auditlog_logentry SET changes = compliance_erased_changes(changes), changes_text = '',"
    " serialized_data = NULL, additional_data = '{{\"erased\": true}}'::jsonb"
    " WHERE content_type_id = %s AND {} = ANY(%s)"
    " AND additional_data IS DISTINCT FROM '{{\"erased\": true}}'::jsonb"
)


def _redact_history(model, ids) -> int:
    """Redact django-auditlog's diffs about these rows (the table's trigger allows only this)."""
    ids = list(ids)
    if not ids:
        return 0
    content_type = ContentType.objects.db_manager(DATABASE).get_for_model(model, for_concrete_model=False)
    integer_pk = model._meta.pk.get_internal_type() in ("AutoField", "BigAutoField", "IntegerField", "BigIntegerField")
    column, values = ("object_id", [int(i) for i in ids]) if integer_pk else ("object_pk", [str(i) for i in ids])
    with _cursor() as cursor:
        cursor.execute(_REDACT_HISTORY.format(sql.Identifier(column)), [content_type.pk, values])
        return cursor.rowcount


def _cut_values(text: str, values: list[str]) -> str:
    for value in values:
        if value:
            text = re.sub(re.escape(value), ERASED, text, flags=re.IGNORECASE)
    return text


# --- The erasure ----------------------------------------------------------------------------


def erase_request(request: SubjectRequest, actor) -> dict[str, int]:
    """Erase the subject of an in-progress erasure request (inside the caller's transaction)."""
    keys = SubjectKeys.of(request.subject_email, request.subject_phone)
    counts = erase(keys, actor=actor, request=request, progress_id=request.pk, reason=f"erasure request #{request.pk}")
    # The request object in memory must not write the values back later.
    request.subject_email = request.subject_phone = request.details = ""
    request.email_index = request.phone_index = ""
    request.subject_hash = keys.subject_hash
    return counts


def erase(
    keys: SubjectKeys,
    *,
    actor=None,
    request: SubjectRequest | None = None,
    progress_id=None,
    reason: str = "",
    created_before=None,
) -> dict[str, int]:
    """Erase one subject; returns rows per table.  Must run inside a transaction (the caller's)."""
    if not connections[DATABASE].in_atomic_block:
        raise RuntimeError("an erasure runs inside one transaction: wrap it in transaction.atomic()")
    run = _Run(progress_id)
    step = "resolve"
    try:
        with scoped(system=True):
            step = "resolve"
            customers = Customer.objects.filter(keys.customer_filter())
            if created_before is not None:
                customers = customers.filter(created_at__lte=created_before)
            rows = list(customers.select_for_update().order_by("pk").values_list("pk", "email_index", "phone_index"))
            ids = [row[0] for row in rows]
            own_indexes = {i for row in rows for i in row[1:] if i}
            run.total = len(ids) + (
                Order.objects.filter(customer_id__in=ids).count()
                + PageView.objects.filter(customer_id__in=ids).count()
                + ConsentRecord.objects.filter(customer_id__in=ids).count()
                + ProcessingRestriction.objects.filter(customer_id__in=ids).count()
                if ids
                else 0
            )
            run.step(step)
            if ids:
                step = "orders"
                _erase_orders(run, ids)
                run.step(step)
                step = "page_views"
                page_views = _delete_where_in(PageView, "customer_id", ids)
                run.add(PageView._meta.db_table, len(page_views))
                run.history[PageView] = page_views
                run.step(step, len(page_views))
                step = "consents"
                consents = _delete_where_in(ConsentRecord, "customer_id", ids)
                run.add(ConsentRecord._meta.db_table, len(consents))
                run.history[ConsentRecord] = consents
                run.step(step, len(consents))
                step = "restrictions"
                restrictions = _delete_where_in(ProcessingRestriction, "customer_id", ids)
                run.add(ProcessingRestriction._meta.db_table, len(restrictions))
                run.history[ProcessingRestriction] = restrictions
                run.step(step, len(restrictions))
                step = "grants"
                _erase_grants(run, ids)
                run.step(step)
                step = "other_links"
                _erase_other_links(run, ids)
                run.step(step)
                step = "customers"
                deleted = _delete_where_in(Customer, "id", ids)
                run.add(Customer._meta.db_table, len(deleted))
                run.history[Customer] = deleted
                run.step(step, len(deleted))
                step = "change_history"
                redacted = sum(_redact_history(model, model_ids) for model, model_ids in run.history.items())
                run.add("auditlog_logentry_redacted", redacted)
                run.step(step)
            step = "requests"
            _scrub_requests(run, keys, own_indexes, request)
            run.step(step)
            step = "record"
            _record(run, keys, actor=actor, request=request, reason=reason)
            run.step(step)
    except Exception as exc:
        # The step is what the DPO sees on the request (the transaction is rolled back).
        exc.portal_step = getattr(exc, "portal_step", step)
        raise
    return dict(run.counts)


def _erase_orders(run: _Run, ids: list[int]) -> None:
    cutoff = timezone.now() - timedelta(days=settings.GDPR_ORDER_RETENTION_DAYS)
    table = sql.Identifier(Order._meta.db_table)
    anonymise = sql.SQL(
        "UPDATE {} SET customer_id = NULL, anonymised = true"
        " WHERE customer_id = ANY(%s) AND created_at >= %s RETURNING id"
    ).format(table)
    with _cursor() as cursor:
        cursor.execute(anonymise, [ids, cutoff])
        kept = [row[0] for row in cursor.fetchall()]
    dropped = _delete_where_in(Order, "customer_id", ids)  # past the retention duty: nothing to keep
    run.add("datasets_order_anonymised", len(kept))
    run.add("datasets_order_deleted", len(dropped))
    run.history[Order] = kept + dropped
    run.done += len(kept) + len(dropped)


def _erase_grants(run: _Run, ids: list[int]) -> None:
    """Grants stay (they are access evidence) without the customer link or the subject's values."""
    grants = list(AccessGrant.objects.filter(customer_id__in=ids).values_list("pk", "reason", "decision_note"))
    if not grants:
        return
    values = []
    for customer in Customer.objects.filter(pk__in=ids).only("name", "email", "phone"):
        # The text is about this customer: each part of the name (an earlier spelling may be
        # quoted) and the email's local part go too.
        values += [customer.name, customer.email, customer.phone, customer.email.split("@")[0]]
        values += customer.name.split()
    values = sorted({v for v in values if v and len(v) >= 3}, key=len, reverse=True)
    for pk, reason, note in grants:
        AccessGrant.objects.filter(pk=pk).update(
            reason=_cut_values(reason, values), decision_note=_cut_values(note, values)
        )
    unlinked = _unlink(AccessGrant, "customer_id", ids)
    run.add("datasets_accessgrant_unlinked", len(unlinked))
    run.history[AccessGrant] = unlinked


_HANDLED = {Order, PageView, ConsentRecord, ProcessingRestriction, AccessGrant}


def _erase_other_links(run: _Run, ids: list[int]) -> None:
    """Any other table with a foreign key to the customer: unlink when it may, else delete."""
    for relation in Customer._meta.related_objects:
        model = relation.related_model
        if model in _HANDLED or relation.many_to_many or not relation.field.concrete:
            continue
        column = relation.field.column
        if relation.field.null:
            touched = _unlink(model, column, ids)
            run.add(f"{model._meta.db_table}_unlinked", len(touched))
        else:
            touched = _delete_where_in(model, column, ids)
            run.add(model._meta.db_table, len(touched))
        run.history[model] = run.history.get(model, []) + touched
    for hook in _HOOKS:
        for table, rows in (hook(ids, DATABASE) or {}).items():
            run.add(table, rows)


def _scrub_requests(run: _Run, keys: SubjectKeys, own_indexes: set[str], request) -> None:
    """Requests about the subject keep the keyed hash only; their packages go once committed."""
    indexes = set(keys.email_indexes) | set(keys.phone_indexes) | own_indexes
    condition = Q(email_index__in=indexes) | Q(phone_index__in=indexes)
    if request is not None:
        condition |= Q(pk=request.pk)
    request_ids = list(SubjectRequest.objects.filter(condition).values_list("pk", flat=True))
    scrubbed = SubjectRequest.objects.filter(pk__in=request_ids).update(
        subject_email="",
        subject_phone="",
        details="",
        email_index="",
        phone_index="",
        subject_hash=keys.subject_hash,
    )
    run.add("compliance_subjectrequest_scrubbed", scrubbed)
    files = list(AccessPackage.objects.filter(request_id__in=request_ids).values_list("file_name", flat=True))
    if files:
        run.add("access_packages_deleted", len(files))
        from compliance import subject_export

        transaction.on_commit(lambda: subject_export.delete_files(files), using=DATABASE)


def _record(run: _Run, keys: SubjectKeys, *, actor, request, reason: str) -> None:
    """Keep the erased subject's hashes; append the one pseudonymous USER_DELETED event."""
    erased_rows = sum(v for k, v in run.counts.items() if k != "compliance_subjectrequest_scrubbed")
    record, created = ErasedSubject.objects.select_for_update().get_or_create(
        subject_hash=keys.subject_hash,
        defaults={
            "email_indexes": list(keys.email_indexes),
            "phone_indexes": list(keys.phone_indexes),
            "request": request,
            "counts": run.counts,
        },
    )
    if not created:
        record.email_indexes = sorted(set(record.email_indexes) | set(keys.email_indexes))
        record.phone_indexes = sorted(set(record.phone_indexes) | set(keys.phone_indexes))
        fields = ["email_indexes", "phone_indexes"]
        if erased_rows:
            record.counts = {k: record.counts.get(k, 0) + run.counts.get(k, 0) for k in {*record.counts, *run.counts}}
            fields.append("counts")
        record.save(update_fields=fields)
    if created:
        entry = {
            "subject_hash": keys.subject_hash,
            "email_indexes": list(keys.email_indexes),
            "phone_indexes": list(keys.phone_indexes),
            "erased_at": record.erased_at.isoformat(),
        }
        transaction.on_commit(lambda: append_ledger(entry), using=DATABASE)
    if not created and not erased_rows:
        return  # a second run over an erased subject: the end state is already there
    event = audit.build_event(
        AuditAction.USER_DELETED,
        actor=actor,
        resource="subject",
        rows=erased_rows,
        reason=reason[:500],
        extra={
            "subject_hash": keys.subject_hash,
            "counts": dict(sorted(run.counts.items())),
            "request_id": getattr(request, "pk", None),
        },
    )
    # Appended inside the erasure's transaction (the chain append nests as a savepoint): the
    # event exists if and only if the erasure committed.
    audit.append([event])


def append_ledger(entry: dict) -> None:
    """One JSON line per erased subject, after the erasure committed (keyed hashes only)."""
    import json
    from pathlib import Path

    if not settings.GDPR_ERASURE_LEDGER:
        return
    path = Path(settings.GDPR_ERASURE_LEDGER)
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        with path.open("a", encoding="utf-8") as ledger:
            ledger.write(json.dumps(entry, sort_keys=True) + "\n")
    except OSError as exc:
        # The register row is in the database; the ledger is the copy for restores.  Say so.
        logger.error("could not append to the erasure ledger: %s", type(exc).__name__)
