"""Reading a pip-audit JSON report: the one rule for what a dependency scan proves.

Plain Python (no Django): ``scripts/dependency_audit.py`` runs it in the tools' virtualenv, and
``manage.py record_scan`` in the portal's.  Never a silent pass: a report in which no package was
audited is an error, and an unaudited package fails the scan like a finding does.
"""

PASS, FAIL, ERROR = "pass", "fail", "error"  # the values of compliance.governance_choices.ScanResult


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
    """PASS, FAIL or ERROR (nothing audited)."""
    if audited == 0:
        return ERROR
    return FAIL if findings or skipped else PASS
