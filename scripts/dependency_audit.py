"""``make audit``: pip-audit over the pinned requirements, and never a silent pass.

pip-audit reports a package it could not look up as "skipped" and still exits 0; here a run in
which the vulnerability service answered for no package is an error of its own (exit 3), a run
with findings fails (exit 1), and only a complete clean run passes.  The JSON report is kept in
var/pip-audit.json for ``manage.py record_scan`` (the monthly checklist).
"""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # compliance/scan_report.py is plain Python, shared with record_scan

from compliance import scan_report  # noqa: E402

REPORT = ROOT / "var" / "pip-audit.json"


def main() -> int:
    REPORT.parent.mkdir(exist_ok=True)
    tool = Path(sys.executable).parent / "pip-audit"
    command = [str(tool), "--no-deps", "--disable-pip", "--progress-spinner", "off", "--format", "json"]
    for requirements in ("requirements.txt", "requirements-dev.txt"):
        command += ["-r", str(ROOT / requirements)]
    result = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
    try:
        document = json.loads(result.stdout or "{}")
    except json.JSONDecodeError:
        print(f"pip-audit failed (status {result.returncode}): {result.stderr.strip()[:300]}", file=sys.stderr)
        return 3
    REPORT.write_text(json.dumps(document, indent=1))
    code, lines = verdict(document)
    for line in lines:
        print(line, file=sys.stderr if code == 3 else sys.stdout)
    return code


def verdict(document: dict) -> tuple[int, list[str]]:
    """(exit status, lines to print) for one pip-audit JSON report (the rule: compliance/scan_report.py)."""
    audited, _, vulnerable, skipped = scan_report.parse_pip_audit(document)
    result = scan_report.result_of(audited, sum(len(v["ids"]) for v in vulnerable), skipped)
    if result == scan_report.ERROR:
        return 3, [
            f"pip-audit: the vulnerability service could not be reached ({len(skipped)} of {len(skipped) + audited}"
            " packages unaudited); no result. Run again where PyPI's JSON API or OSV is reachable."
        ]
    lines = [f"VULNERABLE {v['name']} {v['version']}: {advisory}" for v in vulnerable for advisory in v["ids"]]
    if skipped:
        lines.append(f"warning: {len(skipped)} packages could not be audited: {', '.join(skipped)}")
    findings = sum(len(v["ids"]) for v in vulnerable)
    lines.append(f"pip-audit: {audited} packages audited, {findings} findings; report in var/pip-audit.json")
    return (1 if result == scan_report.FAIL else 0), lines


if __name__ == "__main__":
    sys.exit(main())
