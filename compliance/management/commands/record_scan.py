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


def parse_pip_audit(document: dict) -> tuple[int, int, list[dict], list[str]]:
    """(packages audited, findings, [{name, version, ids}], skipped names) from pip-audit's JSON."""
    dependencies = document.get("dependencies", document if isinstance(document, list) else [])
    vulnerable, skipped = [], []
    for dep in dependencies:
        if dep.get("skip_reason"):
            skipped.append(str(dep.get("name", ""))[:100])
            continue
        ids = [str(v.get("id", "")) for v in dep.get("vulns", []) if v.get("id")]
        if ids:
            vulnerable.append(
                {"name": str(dep.get("name", ""))[:100], "version": str(dep.get("version", ""))[:50], "ids": ids[:20]}
            )
    audited = len(dependencies) - len(skipped)
    return audited, sum(len(v["ids"]) for v in vulnerable), vulnerable, skipped


def result_of(audited: int, findings: int, skipped: list[str]) -> str:
    """Never a silent pass: nothing audited is an error, unaudited packages fail like findings."""
    if audited == 0:
        return ScanResult.ERROR
    return ScanResult.FAIL if findings or skipped else ScanResult.PASS


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
