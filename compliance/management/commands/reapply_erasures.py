"""``manage.py reapply_erasures [--ledger PATH] [--dry-run]``: after a backup restore, erase again
every erased subject whose rows came back.

The register is the ``ErasedSubject`` table plus the erasure ledger (``GDPR_ERASURE_LEDGER``, a
JSON-lines file appended after each erasure commits, kept outside the database): a backup older
than an erasure does not hold its register row, the ledger does.  Ledger entries missing from
the table are put back first.  Rows are found through the blind-index values kept at erasure
time (index look-ups), and only rows created before that erasure count: a customer who signed up
again later is a new relationship.  One transaction per subject, under the system scope; each
subject whose rows came back gets its pseudonymous USER_DELETED event.

Matching compares the stored index values with the restored rows' index columns, so run it right
after the restore, before any ``rotate_keys``.  An erasure stores the values under the current
and the previous look-up keys (``BLIND_INDEX_OLD_KEYS``): keep a retired key there for as long as
backups made under it are kept."""

import json
from datetime import datetime
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.utils import timezone

from compliance.erasure import SubjectKeys, erase
from compliance.models import ErasedSubject
from datasets.models import Customer
from portal.security_context import scoped


def read_ledger(path: Path) -> list[dict]:
    entries = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
            entries.append(
                {
                    "subject_hash": str(entry["subject_hash"]),
                    "email_indexes": [str(v) for v in entry.get("email_indexes", [])],
                    "phone_indexes": [str(v) for v in entry.get("phone_indexes", [])],
                    "erased_at": datetime.fromisoformat(entry["erased_at"]),
                }
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise CommandError(f"{path}: line {number} is not a ledger entry ({type(exc).__name__})") from None
    return entries


class Command(BaseCommand):
    help = "Erase again the subjects of the erased-subject register (after restoring a backup)."

    def add_arguments(self, parser):
        parser.add_argument("--ledger", default="", help="erasure ledger (default: GDPR_ERASURE_LEDGER if it exists)")
        parser.add_argument("--dry-run", action="store_true", help="count the rows that came back; change nothing")

    def handle(self, *args, ledger="", dry_run=False, **options):
        path = Path(ledger or settings.GDPR_ERASURE_LEDGER or "")
        if ledger and not path.is_file():
            raise CommandError(f"no ledger at {path}")
        restored = 0
        if str(path) not in ("", ".") and path.is_file():
            for entry in read_ledger(path):
                if dry_run:
                    continue
                _, created = ErasedSubject.objects.get_or_create(
                    subject_hash=entry["subject_hash"],
                    defaults={k: entry[k] for k in ("email_indexes", "phone_indexes", "erased_at")},
                )
                restored += created
        subjects = reapplied = rows = 0
        for erased_id in ErasedSubject.objects.order_by("pk").values_list("pk", flat=True):
            subjects += 1
            with transaction.atomic():
                record = ErasedSubject.objects.select_for_update().get(pk=erased_id)
                keys = SubjectKeys(record.subject_hash, tuple(record.email_indexes), tuple(record.phone_indexes))
                if dry_run:
                    with scoped(system=True):
                        found = Customer.objects.filter(
                            keys.customer_filter(), created_at__lte=record.erased_at
                        ).count()
                else:
                    counts = erase(
                        keys, reason="erasure re-applied after a backup restore", created_before=record.erased_at
                    )
                    found = counts.get(Customer._meta.db_table, 0)
                    if found or counts.get("compliance_subjectrequest_scrubbed"):
                        record.refresh_from_db()
                        record.reapplied_at = timezone.now()
                        record.reapplied_count += 1
                        record.save(update_fields=["reapplied_at", "reapplied_count"])
                reapplied += bool(found)
                rows += found
        verb = "would be erased again" if dry_run else "erased again"
        self.stdout.write(
            f"{subjects} erased subject(s) checked ({restored} restored from the ledger); "
            f"{reapplied} {verb}; {rows} customer row(s)."
        )
