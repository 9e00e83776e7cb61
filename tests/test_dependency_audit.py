"""`make audit` never passes silently: unreachable service, findings and gaps each fail."""

import importlib.util
from pathlib import Path

spec = importlib.util.spec_from_file_location(
    "dependency_audit", Path(__file__).resolve().parent.parent / "scripts" / "dependency_audit.py"
)
dependency_audit = importlib.util.module_from_spec(spec)
spec.loader.exec_module(dependency_audit)


def dep(name, vulns=(), skip=None):
    entry = {"name": name, "version": "1.0", "vulns": [{"id": v} for v in vulns]}
    if skip:
        entry["skip_reason"] = skip
    return entry


def test_unreachable_service_is_an_error_not_a_pass():
    code, lines = dependency_audit.verdict({"dependencies": [dep("a", skip="not found"), dep("b", skip="not found")]})
    assert code == 3 and "could not be reached" in lines[0]


def test_findings_fail():
    code, lines = dependency_audit.verdict({"dependencies": [dep("a", vulns=["PYSEC-1"]), dep("b")]})
    assert code == 1 and "VULNERABLE a 1.0: PYSEC-1" in lines


def test_partial_audit_fails_and_names_the_gaps():
    code, lines = dependency_audit.verdict({"dependencies": [dep("a"), dep("b", skip="not found")]})
    assert code == 1 and any("b" in line and "could not be audited" in line for line in lines)


def test_complete_clean_run_passes():
    assert dependency_audit.verdict({"dependencies": [dep("a"), dep("b")]})[0] == 0
