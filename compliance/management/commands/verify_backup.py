"""``manage.py verify_backup [--sample N] [--json]``: exit 0 when the restore test passes, 1 otherwise."""

import json

from django.core.management.base import BaseCommand, CommandError

from compliance import backup_check


class Command(BaseCommand):
    help = "Dump the database, restore it into a scratch database, compare row counts and decrypted samples."

    def add_arguments(self, parser):
        parser.add_argument("--sample", type=int, default=None, help="values sampled per encrypted column")
        parser.add_argument("--json", action="store_true")

    def handle(self, *args, **options):
        record = backup_check.verify(sample_size=options["sample"])
        result = {
            "verification": record.pk,
            "ok": record.ok,
            "server_version": record.server_version,
            "tool_version": record.tool_version,
            "tables": record.tables,
            "rows": record.rows,
            "table_mismatches": record.mismatches,
            "sampled_values": record.sampled_values,
            "sample_mismatches": record.sample_mismatches,
            "dump_bytes": record.dump_bytes,
            "dump_sha256": record.dump_sha256,
            "detail": record.detail,
        }
        if options["json"]:
            self.stdout.write(json.dumps(result, indent=2, default=str))
        else:
            self.stdout.write(
                f"backup verification {record.pk}: {'OK' if record.ok else 'FAILED'} - {record.tables} tables, "
                f"{record.rows} rows, {record.sampled_values} sampled values ({record.detail})"
            )
        if not record.ok:
            raise CommandError("backup restoration test failed", returncode=1)
