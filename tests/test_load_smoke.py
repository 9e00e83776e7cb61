"""Smoke run of the load test (``bench/load_api.py``): the same code path, small and short.

Real gunicorn with the production conf, real tokens, real HTTPS clients; 10 clients for 5
seconds per phase on a database of its own (``<DATABASE_URL name>_load_smoke``, seeded once,
reused).  No timing is asserted (shared machines are noisy; ratios belong in the benchmark):
only that nothing failed and that every endpoint of both phases served requests.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_load_smoke_serves_both_phases_without_errors(tmp_path):
    report_path = tmp_path / "load.json"
    env = dict(os.environ)
    env.pop("DJANGO_SETTINGS_MODULE", None)  # the script picks its own settings (production's)
    result = subprocess.run(
        [
            sys.executable,
            "bench/load_api.py",
            "--clients",
            "10",
            "--seconds",
            "5",
            "--slice",
            "5",
            "--warmup",
            "1",
            "--customers",
            "1000",
            "--db-suffix",
            "_load_smoke",
            "--json",
            str(report_path),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    output = result.stdout[-4000:] + result.stderr[-4000:]
    assert result.returncode == 0, output
    report = json.loads(report_path.read_text())

    assert report["warmup_errors"] == 0, output
    for phase in ("secured", "baseline"):
        assert report[phase]["errors"] == 0, (phase, report[phase]["error_kinds"], report[phase]["error_examples"])
        assert report[phase]["ok"] > 0, (phase, output)
    # Every secured endpoint of the mix was exercised, and only with answers that counted.
    assert set(report["secured"]["by_kind"]) == {"list", "detail", "orders", "search"}, report["secured"]["by_kind"]
    assert all(kind["requests"] > 0 for kind in report["secured"]["by_kind"].values())
    # The server saw the same: only 2xx in its access log, no error records, and as many
    # requests as the clients counted (health probes aside).
    server = report["server"]
    assert server["status_5xx"] == 0 and server["error_lines"] == 0, server
    assert set(server["status_counts"]) == {"200"}, server
    served = report["secured"]["ok"] + report["baseline"]["ok"]
    assert server["status_counts"]["200"] >= served, (server, served)
    assert report["config"]["workers"] >= 2, report["config"]


def test_the_portal_never_routes_the_unsecured_baseline():
    # Only the load test's own urlconf (bench.load_urls) adds it; the portal's answers 404.
    from django.urls import Resolver404, resolve

    from bench.baseline import BASELINE_ORDERS_PATH, BASELINE_PATH

    for path in (BASELINE_PATH, BASELINE_ORDERS_PATH):
        with pytest.raises(Resolver404):
            resolve(path)
    assert resolve(BASELINE_PATH, urlconf="bench.load_urls").url_name == "bench-unsecured-customers"
