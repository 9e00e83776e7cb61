"""``make run``: migrate, seed demo data, then serve HTTPS (gunicorn) with a Celery worker and beat.

Runs in the foreground until Ctrl-C (or SIGTERM), then stops all three cleanly.  Expects the
environment that scripts/services.py prepares (secrets, DATABASE_URL, REDIS_URL).
"""

import os
import signal
import ssl
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
BIN = Path(sys.executable).parent
VAR = Path(os.environ.get("PORTAL_VAR_DIR", ROOT / "var"))
LOGS = VAR / "log"


def manage(*args: str, log=None) -> None:
    result = subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    if result.returncode != 0:
        where = f" (see {log.name})" if log else ""
        sys.exit(f"manage.py {args[0]} failed with status {result.returncode}{where}")


def start(name: str, argv: list[str]) -> subprocess.Popen:
    log = open(LOGS / f"{name}.log", "ab")  # noqa: SIM115 - lives as long as the process
    # Own session: Ctrl-C reaches only this script, which then stops the children in order.
    return subprocess.Popen(argv, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def wait_ready(url: str, cert: Path, processes: list[subprocess.Popen], timeout: float = 90) -> None:
    context = ssl.create_default_context(cafile=str(cert))
    context.check_hostname = False  # the certificate names the host; the probe may use an IP
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for process in processes:
            if process.poll() is not None:
                sys.exit(f"{process.args[0]} exited with status {process.returncode}; see {LOGS}")
        try:
            with urllib.request.urlopen(f"{url}healthz", context=context, timeout=2) as response:  # noqa: S310
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    sys.exit(f"the portal did not answer on {url} within {timeout:.0f}s; see {LOGS}")


def stop(processes: list[subprocess.Popen]) -> None:
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 25
    for process in processes:
        try:
            process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def main() -> int:
    from portal.tls import ensure_certificate

    host = os.environ.setdefault("PORTAL_HOST", "127.0.0.1")
    port = os.environ.setdefault("PORTAL_PORT", "8443")
    if not (os.environ.get("PORTAL_TLS_CERT") and os.environ.get("PORTAL_TLS_KEY")):
        cert, key = ensure_certificate(VAR / "tls", host)
        os.environ["PORTAL_TLS_CERT"], os.environ["PORTAL_TLS_KEY"] = str(cert), str(key)
    cert = Path(os.environ["PORTAL_TLS_CERT"])
    LOGS.mkdir(parents=True, exist_ok=True)
    with open(LOGS / "setup.log", "ab") as setup_log:
        manage("migrate", "--database", "owner", "--noinput", log=setup_log)
        manage("collectstatic", "--noinput", log=setup_log)
    manage("seed_demo")

    processes = [
        start("web", [str(BIN / "gunicorn"), "portal.wsgi:application", "-c", "portal/gunicorn_conf.py"]),
        start("worker", [str(BIN / "celery"), "-A", "portal", "worker", "-l", "INFO", "--concurrency", "2"]),
        start("beat", [str(BIN / "celery"), "-A", "portal", "beat", "-l", "INFO", "-s", str(VAR / "celerybeat")]),
    ]
    stopping = False

    def request_stop(signum, frame):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    url = f"https://{host}:{port}/"
    try:
        wait_ready(url, cert, processes)
        print(f"Portal ready: {url}", flush=True)
        while not stopping:
            if any(p.poll() is not None for p in processes):
                print(f"a portal process exited; stopping (logs in {LOGS})", file=sys.stderr)
                return 1
            time.sleep(0.5)
        return 0
    finally:
        stop(processes)


if __name__ == "__main__":
    sys.exit(main())
