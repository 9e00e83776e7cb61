"""Supply chain: every requirements file is fully pinned with hashes and agrees with its .in file,
and the secrets baseline admits no known secret (false positives are allow-listed inline, so a new
secret anywhere fails `make lint`)."""

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LOCKED = ["requirements.txt", "requirements-dev.txt", "requirements-tools.txt"]
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?==([^\s;\\]+)")


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirements(path: Path) -> dict[str, tuple[str, int]]:
    """{package: (version, number of hashes)} of a compiled requirements file; fails on an unpinned line."""
    pins: dict[str, tuple[str, int]] = {}
    current = None
    for line in path.read_text().splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.startswith("--hash=sha256:"):
            assert current, f"{path.name}: a hash before any package"
            version, hashes = pins[current]
            pins[current] = (version, hashes + 1)
            continue
        assert not stripped.startswith("-"), f"{path.name}: unexpected option line {stripped!r}"
        match = PIN.match(stripped)
        assert match, f"{path.name}: {stripped!r} is not pinned with =="
        current = canonical(match.group(1))
        pins[current] = (match.group(2), 0)
    return pins


def declared(path: Path) -> dict[str, str]:
    """{package: version} of the direct pins in a .in file."""
    found = {}
    for line in path.read_text().splitlines():
        match = PIN.match(line.strip())
        if match:
            found[canonical(match.group(1))] = match.group(2)
    return found


@pytest.mark.parametrize("name", LOCKED)
def test_every_requirement_is_pinned_with_a_hash(name):
    pins = requirements(ROOT / name)
    assert len(pins) > 10
    unhashed = sorted(package for package, (_, hashes) in pins.items() if hashes == 0)
    assert unhashed == [], f"{name}: pinned without a hash: {unhashed}"


@pytest.mark.parametrize("name", LOCKED)
def test_compiled_pins_are_the_declared_versions(name):
    source = ROOT / name.replace(".txt", ".in")
    compiled = requirements(ROOT / name)
    for package, version in declared(source).items():
        assert package in compiled, f"{package} from {source.name} is missing in {name}"
        locked = compiled[package][0]
        assert locked == version, f"{package}: {source.name} says {version}, {name} has {locked}"


def test_dev_set_installs_the_same_runtime_versions():
    runtime = requirements(ROOT / "requirements.txt")
    dev = requirements(ROOT / "requirements-dev.txt")
    differing = {p: (v, dev.get(p, ("missing",))[0]) for p, (v, _) in runtime.items() if dev.get(p, ("",))[0] != v}
    assert differing == {}


def test_secrets_baseline_holds_no_secret_and_excludes_only_the_hash_files():
    baseline = json.loads((ROOT / ".secrets.baseline").read_text())
    assert baseline["results"] == {}
    patterns = [f for f in baseline["filters_used"] if f["path"].endswith("should_exclude_file")]
    assert [f["pattern"] for f in patterns] == [["^requirements.*\\.txt$"]]
    assert any(plugin["name"] == "KeywordDetector" for plugin in baseline["plugins_used"])
