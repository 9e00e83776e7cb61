"""The record of processing activities (GDPR Art. 30), generated from the models, and the system
check that keeps personal data encrypted or explained.

Every concrete field of the project's models is classified: declared personal (with category,
lawful basis, purpose), declared not personal, or undeclared.  A field whose *name* looks like
personal data (name, email, phone, address, birth date, card, IP) must be encrypted at rest
(``portal.field_crypto.EncryptedTextMixin``) or declared in ``compliance.processing_register``;
fields that should never exist (national id numbers, security answers, full card numbers) are
refused outright, encrypted or not.
"""

import csv
import io
import re
from dataclasses import dataclass
from pathlib import Path

from django.apps import apps
from django.conf import settings
from django.core import checks

from accounts import policy
from compliance.processing_register import REGISTER, NotPersonal, Personal, Processing
from portal.field_crypto import EncryptedTextMixin

# Name tokens that make a field look like personal data (the field name split on "_").
_LOOKS_PERSONAL = {
    "name": "name",
    "fullname": "name",
    "firstname": "name",
    "lastname": "name",
    "surname": "name",
    "username": "name",
    "nickname": "name",
    "email": "email",
    "emails": "email",
    "mail": "email",
    "phone": "phone",
    "phones": "phone",
    "mobile": "phone",
    "telephone": "phone",
    "address": "address",
    "addr": "address",
    "street": "address",
    "postcode": "address",
    "zipcode": "address",
    "birth": "birth date",
    "birthday": "birth date",
    "birthdate": "birth date",
    "dob": "birth date",
    "card": "card",
    "ip": "IP address",
}
# Refused outright (data minimisation): identifiers the portal never needs, and secrets that a
# breach would turn into account takeovers elsewhere.  Matched against "_<field name>_".
_REFUSED = [
    (
        re.compile(r"_(ssn|nin|passport|national_?id|national_?insurance|social_?security|tax_?id|id_?number)_"),
        "a national identity number",
    ),
    (
        re.compile(r"_(security_?(answer|question)|secret_?(answer|question)|(mother_?)?maiden)"),
        "a security question or answer",
    ),
    (re.compile(r"_(card_?number|credit_?card|pan|cvv|cvc|cvv2|card_?cvv)_"), "a full card number or its code"),
]


def _tokens(name: str) -> list[str]:
    return [t for t in name.lower().split("_") if t]


def looks_personal(name: str) -> str | None:
    """Why a field name looks like personal data ("email", "card", ...), or None."""
    for token in _tokens(name):
        if token in _LOOKS_PERSONAL:
            return _LOOKS_PERSONAL[token]
    return None


def refused(name: str) -> str | None:
    """What forbidden kind of data a field name announces, or None."""
    padded = f"_{name.lower()}_"
    for pattern, what in _REFUSED:
        if pattern.search(padded):
            return what
    return None


def is_encrypted(field) -> bool:
    return isinstance(field, EncryptedTextMixin)


def project_app_configs():
    """The portal's own apps (under BASE_DIR, not installed libraries)."""
    base = Path(settings.BASE_DIR).resolve()
    for config in apps.get_app_configs():
        path = Path(config.path).resolve()
        if base in path.parents and "site-packages" not in path.parts:
            yield config


def declaration_for(model) -> Processing | None:
    return getattr(model, "PROCESSING", None) or REGISTER.get(model._meta.label_lower)


def _concrete_fields(model):
    return [f for f in model._meta.get_fields() if getattr(f, "concrete", False) and not f.auto_created]


# --- the system check ------------------------------------------------------------------------


def check_personal_fields(app_configs=None, **kwargs):
    """compliance.E001-E004: personal-looking fields encrypted or declared; forbidden ones absent."""
    errors = []
    configs = app_configs or list(project_app_configs())
    project = {c.label for c in project_app_configs()}
    for config in configs:
        if config.label not in project:
            continue
        for model in config.get_models():
            if model._meta.proxy:
                continue
            errors.extend(_check_model(model))
    return errors


def _check_model(model) -> list:
    label = model._meta.label
    declaration = declaration_for(model)
    declared = dict(declaration.fields) if declaration else {}
    found = []
    names = set()
    for field in _concrete_fields(model):
        names.add(field.name)
        forbidden = refused(field.name)
        if forbidden:
            found.append(
                checks.Error(
                    f"{label}.{field.name} would hold {forbidden}: the portal never stores that (data minimisation).",
                    hint="Remove the field; verify identity or payment through a processor instead.",
                    obj=model,
                    id="compliance.E002",
                )
            )
            continue
        entry = declared.get(field.name)
        if is_encrypted(field) or isinstance(entry, NotPersonal):
            continue
        if isinstance(entry, Personal):
            if not entry.clear_reason.strip():
                found.append(
                    checks.Error(
                        f"{label}.{field.name} is declared personal data but is stored in clear with no reason.",
                        hint="Encrypt it (portal.field_crypto) or give Personal(clear_reason=...) "
                        "in compliance/processing_register.py.",
                        obj=model,
                        id="compliance.E003",
                    )
                )
            continue
        kind = looks_personal(field.name)
        if kind:
            found.append(
                checks.Error(
                    f"{label}.{field.name} looks like personal data ({kind}) but is neither encrypted nor declared.",
                    hint="Use an encrypted field (portal.field_crypto.EncryptedCharField), or declare it in "
                    "compliance/processing_register.py: Personal(category, clear_reason=...) or NotPersonal(reason).",
                    obj=model,
                    id="compliance.E001",
                )
            )
    for name in sorted(set(declared) - names):
        found.append(
            checks.Error(
                f"{label}: the processing declaration names a field {name!r} that the model does not have.",
                hint="Update compliance/processing_register.py (or the model's PROCESSING).",
                obj=model,
                id="compliance.E004",
            )
        )
    return found


# --- the record ----------------------------------------------------------------------------

COLUMNS = [
    "model",
    "table",
    "field",
    "data_subjects",
    "category",
    "purpose",
    "lawful_basis",
    "encrypted_at_rest",
    "stored_in_clear_because",
    *[f"masking_{role.value.lower()}" for role in policy.Role],
    "retention",
    "recipients",
    "status",
]


@dataclass(frozen=True)
class RecordRow:
    model: str
    table: str
    field: str
    data_subjects: str
    category: str
    purpose: str
    lawful_basis: str
    encrypted: bool
    clear_reason: str
    masking: dict[str, str]
    retention: str
    recipients: str
    status: str  # "ok", "undeclared", "no reason for clear storage"

    def as_dict(self) -> dict:
        row = {
            "model": self.model,
            "table": self.table,
            "field": self.field,
            "data_subjects": self.data_subjects,
            "category": self.category,
            "purpose": self.purpose,
            "lawful_basis": self.lawful_basis,
            "encrypted_at_rest": "yes (AES-256-GCM)" if self.encrypted else "no",
            "stored_in_clear_because": self.clear_reason,
        }
        row.update({f"masking_{role.value.lower()}": self.masking.get(role.value, "") for role in policy.Role})
        row.update({"retention": self.retention, "recipients": self.recipients, "status": self.status})
        return row


def _masking_row(key: str | None) -> dict[str, str]:
    """How each role sees the field (from the policy's masking table); empty when it does not apply."""
    if key is None:
        return {}
    shown = {}
    for role in policy.Role:
        masks = policy.masking_for(role)
        shown[role.value] = "no rows" if masks is None else str(masks.get(key, policy.Mask.NULL))
    return shown


def _retention_text(model, declaration: Processing | None) -> str:
    from compliance.governance_models import RetentionPolicy
    from compliance.retention_datasets import dataset_for_model

    spec = dataset_for_model(model)
    if spec is not None:
        rule = RetentionPolicy.objects.filter(dataset=spec.key).first()
        if rule is not None:
            state = "legal hold" if rule.legal_hold else ("enabled" if rule.enabled else "disabled")
            return f"{rule.get_action_display()} after {rule.max_age_days} days by {rule.age_field} ({state})"
    return (declaration.retention if declaration else "") or "not defined"


def _models_in_record():
    project = {c.label for c in project_app_configs()}
    for model in apps.get_models():
        if model._meta.proxy or not model._meta.managed:
            continue
        if model._meta.app_label in project or model._meta.label_lower in REGISTER:
            yield model


def rows() -> list[RecordRow]:
    """One row per field holding (or looking like) personal data, across the portal's models."""
    result = []
    for model in sorted(_models_in_record(), key=lambda m: m._meta.label_lower):
        declaration = declaration_for(model)
        declared = dict(declaration.fields) if declaration else {}
        retention = None
        for field in _concrete_fields(model):
            entry = declared.get(field.name)
            if isinstance(entry, NotPersonal):
                continue
            encrypted = is_encrypted(field)
            if entry is None and not encrypted and not looks_personal(field.name) and not refused(field.name):
                continue
            if retention is None:
                retention = _retention_text(model, declaration)
            if refused(field.name):
                status = "refused: must not exist"
            elif entry is None:
                status = "ok: encrypted, not yet classified" if encrypted else "undeclared"
            elif not encrypted and not entry.clear_reason.strip():
                status = "no reason for clear storage"
            else:
                status = "ok"
            masking_key = entry.masking_key if isinstance(entry, Personal) else None
            result.append(
                RecordRow(
                    model=model._meta.label,
                    table=model._meta.db_table,
                    field=field.name,
                    data_subjects=declaration.subjects if declaration else "",
                    category=str(entry.category) if entry else "",
                    purpose=declaration.purpose if declaration else "",
                    lawful_basis=str(declaration.lawful_basis) if declaration else "",
                    encrypted=encrypted,
                    clear_reason="" if encrypted or entry is None else entry.clear_reason,
                    masking=_masking_row(masking_key),
                    retention=retention,
                    recipients=declaration.recipients if declaration else "",
                    status=status,
                )
            )
    return result


@dataclass(frozen=True)
class EncryptionSummary:
    personal_fields: int
    encrypted: int
    clear_with_reason: int
    problems: list[str]  # "model.field: status"


# Data subjects' direct identifiers: never in clear, whatever reason is declared.
DIRECT_IDENTIFIER_CATEGORIES = {"identity", "contact"}


def encryption_summary(record: list[RecordRow] | None = None) -> EncryptionSummary:
    record = rows() if record is None else record
    problems = [f"{r.model}.{r.field}: {r.status}" for r in record if not r.status.startswith("ok")]
    problems += [
        f"{r.model}.{r.field}: a customer's {r.category} data in clear"
        for r in record
        if not r.encrypted and r.category in DIRECT_IDENTIFIER_CATEGORIES and "customer" in r.data_subjects
    ]
    return EncryptionSummary(
        personal_fields=len(record),
        encrypted=sum(1 for r in record if r.encrypted),
        clear_with_reason=sum(1 for r in record if not r.encrypted and r.status == "ok"),
        problems=problems,
    )


def as_csv(record: list[RecordRow] | None = None) -> str:
    record = rows() if record is None else record
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS)
    writer.writeheader()
    for row in record:
        # Cells that start with = + - @ would run as formulas in a spreadsheet.
        writer.writerow({k: _cell(v) for k, v in row.as_dict().items()})
    return buffer.getvalue()


def _cell(value) -> str:
    text = str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@") else text
