"""``manage.py compliance_checklist [--json] [--verify-chain] [--snapshot]``."""

import json

from django.core.management.base import BaseCommand

from compliance import checklist
from compliance.governance_choices import SnapshotTrigger


class Command(BaseCommand):
    help = "Compute the monthly compliance checklist (the seed's ten items) from live state."

    def add_arguments(self, parser):
        parser.add_argument("--json", action="store_true", help="machine-readable output")
        parser.add_argument("--verify-chain", action="store_true", help="walk the audit hash chain now")
        parser.add_argument("--snapshot", action="store_true", help="store the result as a snapshot (evidence)")

    def handle(self, *args, **options):
        if options["snapshot"]:
            snapshot = checklist.take_snapshot(trigger=SnapshotTrigger.MANUAL, verify_chain=options["verify_chain"])
            items = snapshot.items
        else:
            items = [item.as_dict() for item in checklist.evaluate(verify_chain=options["verify_chain"])]
        if options["json"]:
            self.stdout.write(json.dumps({"items": items}, indent=2, default=str))
            return
        width = max(len(i["label"]) for i in items)
        for item in items:
            how = "measured" if item["measured"] else "attested"
            self.stdout.write(f"[{item['status']:^9}] {item['label']:<{width}}  ({how}) {item['summary']}")
        passed = sum(1 for i in items if i["status"] == "pass")
        self.stdout.write(f"{passed}/{len(items)} pass")
