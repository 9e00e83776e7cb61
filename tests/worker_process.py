"""Real ``celery worker`` processes for the fault tests (kill the worker, Redis down).

A worker runs in its own process on the test database (the owner's URL with the test database's
name) and, unless told otherwise, the suite's Redis; the caller adds environment overrides (a
private Redis, a batch size, a test-only pause point).  Helpers kill it (SIGKILL, as a crash or
the OOM killer would), stop it (SIGTERM), and wait for a condition while checking that it lives.
"""

import os
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

from django.db import connections

from portal import fault_points
from portal.celery import app

ROOT = Path(__file__).resolve().parent.parent


def worker_database_url() -> str:
    """The owner's URL with the test database's name (what the workers connect to)."""
    url = urlsplit(os.environ["DATABASE_URL"])
    return url._replace(path="/" + connections["owner"].settings_dict["NAME"]).geturl()


def start(
    log: Path,
    *,
    name: str = "fault",
    env: dict[str, str | None] | None = None,
    pause_after: str = "",
    visibility_timeout: int | None = None,
) -> subprocess.Popen:
    """Start a worker writing to ``log``.  ``env`` overrides the environment (None removes a
    variable); ``pause_after`` makes it sleep at that pause point (``portal.fault_points``);
    ``visibility_timeout`` is how many seconds after delivery an unacknowledged message (its
    worker was killed) is delivered again (default: an hour)."""
    environment = {**os.environ, "DATABASE_URL": worker_database_url(), "DJANGO_SETTINGS_MODULE": "tests.settings"}
    environment.pop(fault_points.PAUSE_ENV, None)
    if pause_after:
        environment[fault_points.PAUSE_ENV] = pause_after
        environment[fault_points.PAUSE_SECONDS_ENV] = "300"
    if visibility_timeout is not None:
        environment["CELERY_VISIBILITY_TIMEOUT_SECONDS"] = str(visibility_timeout)
    for key, value in (env or {}).items():
        if value is None:
            environment.pop(key, None)
        else:
            environment[key] = value
    command = [
        str(Path(sys.executable).parent / "celery"),
        "-A",
        "portal",
        "worker",
        "--pool",
        "solo",
        "--loglevel",
        "WARNING",
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
        "--hostname",
        f"{name}-{os.getpid()}-{time.monotonic_ns()}@localhost",
    ]
    with log.open("ab") as out:
        return subprocess.Popen(command, cwd=ROOT, env=environment, stdout=out, stderr=subprocess.STDOUT)


def kill(process: subprocess.Popen) -> None:
    """SIGKILL: no clean-up, no acknowledgement; PostgreSQL rolls the open transaction back."""
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)


def stop(process: subprocess.Popen) -> None:
    """SIGTERM (warm shutdown), then SIGKILL if it does not go within 30 seconds."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        kill(process)


@contextmanager
def running(log: Path, **options):
    """A worker for the ``with`` block; stopped however the block ends."""
    process = start(log, **options)
    try:
        yield process
    finally:
        stop(process)


def wait_for(condition, *, timeout: float, what: str, alive: subprocess.Popen | None = None, log: Path | None = None):
    """Poll ``condition`` until it returns something true (returned); fail if ``alive`` exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        if alive is not None and alive.poll() is not None:
            raise AssertionError(f"the worker exited ({alive.returncode}) before {what}" + _tail(log))
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}" + _tail(log))


def kill_when(condition, *, log: Path, what: str, then=lambda: None, timeout: float = 90, **options):
    """Start a worker (``start``'s options), call ``then`` (what gives it work), wait until
    ``condition()`` holds, SIGKILL the worker whatever happened; return (then's result, condition's)."""
    process = start(log, **options)
    try:
        given = then()
        seen = wait_for(lambda: condition(given), timeout=timeout, what=what, alive=process, log=log)
    finally:
        kill(process)
    return given, seen


def paused_at(log: Path, step: str) -> bool:
    """Whether a worker logging to ``log`` has reached the pause point ``step``."""
    return log.exists() and f"pausing after step {step}" in log.read_text(errors="replace")


def _tail(log: Path | None) -> str:
    return ("\n" + log.read_text(errors="replace")[-3000:]) if log is not None and log.exists() else ""


def forget_pending_messages() -> None:
    """Start from an empty queue: no message left by an earlier run (or a killed worker's
    unacknowledged one, which Redis would deliver again) may reach this test's worker."""
    app.control.purge()
    with app.connection_for_write() as connection:
        connection.default_channel.client.delete("unacked", "unacked_index")
