"""``manage.py record_scan``: store a dependency vulnerability scan for the monthly checklist.

Either ``--pip-audit FILE`` (the JSON of ``pip-audit --format json``; ``make audit`` keeps it in
``var/pip-audit.json``), or ``--tool``, ``--result`` and ``--findings`` given by hand.  Only
package names, versions and advisory ids are kept.  A report in which no package could be
audited is an error, and unaudited packages fail the scan: never a silent pass.
"""

import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from compliance.governance_choices import ScanResult
from compliance.governance_models import VulnerabilityScan
from compliance.scan_report import parse_pip_audit, result_of


class Command(BaseCommand):
    help = "Record the result of a dependency vulnerability scan."

    def add_arguments(self, parser):
        parser.add_argument("--pip-audit", dest="report", help="pip-audit JSON report")
        parser.add_argument("--tool", default="pip-audit")
        parser.add_argument("--result", choices=ScanResult.values)
        parser.add_argument("--findings", type=int, default=0)
        parser.add_argument("--packages", type=int, default=0)

    def handle(self, *args, report, tool, result, findings, packages, **options):
        detail = {}
        if report:
            try:
                document = json.loads(Path(report).read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                raise CommandError(f"cannot read the report: {type(exc).__name__}") from None
            packages, findings, vulnerable, skipped = parse_pip_audit(document)
            result = result_of(packages, findings, skipped)
            detail = {"vulnerable": vulnerable, "skipped": skipped[:200]}
        elif result is None:
            raise CommandError("give --pip-audit FILE, or --result (and --findings)")
        scan = VulnerabilityScan.objects.create(
            tool=tool[:100], result=result, packages=packages, findings=findings, detail=detail
        )
        self.stdout.write(f"scan {scan.pk} recorded: {scan.result} ({scan.findings} finding(s))")
