"""Which models django-auditlog records, and which of their fields are masked in diffs.

Every model of the project's apps is registered, so a model added later is covered without an
edit here.  Personal fields (a model's ``PERSONAL_FIELDS`` and every encrypted field) are
masked; blind indexes (``*_index``, derived from personal values) and credentials are left out.
"""

from auditlog.registry import auditlog
from django.apps import apps

PROJECT_APPS = ("accounts", "datasets", "compliance", "audit")
# The audit trail itself and its evidence are not change-tracked: they are append-only already.
NOT_TRACKED = {"audit.auditevent", "audit.auditchaincheck"}
CREDENTIAL_FIELDS = {"password", "last_login"}
# Secrets that are not personal data but must not be readable in a diff either.
SECRET_FIELDS = {"card_token", "digest", "token_key"}


def _is_encrypted(field) -> bool:
    return any("crypt" in klass.__module__ for klass in type(field).__mro__)


def options_for(model) -> dict:
    fields = [f for f in model._meta.get_fields() if getattr(f, "concrete", False) or f.many_to_many]
    personal = set(getattr(model, "PERSONAL_FIELDS", ()))
    personal |= {f.name for f in fields if getattr(f, "concrete", False) and _is_encrypted(f)}
    personal |= {f.name for f in fields if f.name in SECRET_FIELDS}
    excluded = [f.name for f in fields if f.name.endswith("_index") or f.name in CREDENTIAL_FIELDS]
    m2m = {f.name for f in model._meta.many_to_many}
    return {"mask_fields": sorted(personal - set(excluded)), "exclude_fields": excluded, "m2m_fields": m2m}


def register_models() -> None:
    for label in PROJECT_APPS:
        try:
            config = apps.get_app_config(label)
        except LookupError:
            continue
        for model in config.get_models():
            if model._meta.label_lower in NOT_TRACKED or model._meta.proxy or auditlog.contains(model):
                continue
            auditlog.register(model, **options_for(model))
