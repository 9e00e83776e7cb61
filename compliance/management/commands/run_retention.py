"""``manage.py run_retention [--dry-run] [--dataset KEY ...] [--all] [--json]``."""

import json

from django.core.management.base import BaseCommand, CommandError

from compliance import retention
from compliance.governance_choices import RunTrigger
from compliance.retention_datasets import DATASETS


class Command(BaseCommand):
    help = "Apply the enabled retention policies now (resuming interrupted runs), or preview them."

    def add_arguments(self, parser):
        parser.add_argument("--dry-run", action="store_true", help="count what would be handled; change nothing")
        parser.add_argument("--dataset", action="append", choices=sorted(DATASETS), help="only this dataset")
        parser.add_argument("--all", action="store_true", help="with --dry-run: disabled policies too")
        parser.add_argument("--json", action="store_true", help="machine-readable output")

    def handle(self, *args, **options):
        dry_run, dataset, emit_json = options["dry_run"], options["dataset"], options["json"]
        if dry_run:
            previews = retention.dry_run(include_disabled=options["all"], datasets=dataset)
            if emit_json:
                self.stdout.write(_dumps(previews))
                return
            if not previews:
                self.stdout.write("No enabled retention policy (use --all to preview disabled ones).")
            for entry in previews:
                state = "legal hold" if entry["legal_hold"] else ("enabled" if entry["enabled"] else "disabled")
                oldest = f"oldest #{entry['oldest_id']} at {entry['oldest_at']}" if entry["oldest_id"] else "none"
                self.stdout.write(
                    f"{entry['dataset']}: would {entry['action']} {entry['rows']} row(s) older than "
                    f"{entry['cutoff']} ({state}); {oldest}"
                )
            return
        try:
            runs = retention.run_due(trigger=RunTrigger.COMMAND, datasets=dataset)
        except retention.RetentionError as exc:
            raise CommandError(str(exc)) from None
        summary = [
            {
                "run": run.pk,
                "dataset": run.rule["dataset"],
                "status": run.status,
                "deleted": run.rows_deleted,
                "archived": run.rows_archived,
                "anonymised": run.rows_anonymised,
                "batches": run.batches,
                "resumed": run.resumed,
                "longest_batch_ms": run.longest_batch_ms,
            }
            for run in runs
        ]
        if emit_json:
            self.stdout.write(_dumps(summary))
            return
        if not summary:
            self.stdout.write("Nothing to do: no enabled policy (or another worker holds it).")
        for entry in summary:
            self.stdout.write(
                f"run {entry['run']} {entry['dataset']} {entry['status']}: {entry['deleted']} deleted, "
                f"{entry['archived']} archived, {entry['anonymised']} anonymised in {entry['batches']} batch(es)"
            )


def _dumps(value) -> str:
    return json.dumps(value, indent=2, sort_keys=True, default=str)
