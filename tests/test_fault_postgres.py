"""PostgreSQL restarted under a running portal: requests fail cleanly, then recover by themselves.

The machine's PostgreSQL is shared with other test runs, so this test starts a private server
(pgserver, in a temporary directory, reachable by its Unix socket only), migrates a database there
as the schema owner (which creates the ``portal_app`` login role, as in production), and runs the
portal as a real gunicorn server (threads, persistent database connections) against it.  Then:

* an authenticated API request succeeds;
* PostgreSQL stops (``pg_ctl stop -m fast``): API requests answer a 503 JSON body and pages a
  plain-text 503, each one short line: no stack trace, no debug page, no driver message, no
  personal data;
* PostgreSQL starts again: the next requests succeed on the same portal processes (the stale
  connections are noticed by Django's connection health checks and replaced).
"""

import http.client
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import quote

import psutil
import psycopg
import pytest
from psycopg import sql

from portal import outage

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent

SEED = """
import http.client
import json
from accounts import services
from accounts.policy import Role
from tests.factories import CustomerFactory, TeamFactory, make_user
user = make_user(Role.ADMIN)
customer = CustomerFactory(team=TeamFactory(name="Fault"))
_, token = services.issue_token(user, mfa_verified=True)
print(json.dumps({"token": token, "name": customer.name, "email": customer.email}))
"""


class PrivatePostgres:
    """A PostgreSQL server of this test's own (pgserver's binaries; as root it runs as the
    ``pgserver`` system user, as ``scripts/services.py``'s embedded server does)."""

    def __init__(self):
        import pgserver

        self.base = Path(tempfile.mkdtemp(prefix="portal-pg-fault-"))
        self.server = pgserver.get_server(self.base / "pgdata", cleanup_mode="delete")
        socket_dir = self.server.get_postmaster_info().socket_dir
        self.socket_dir = socket_dir
        self.url = f"postgres://postgres@{quote(str(socket_dir), safe='')}/portal"

    def create_database(self) -> None:
        with psycopg.connect(host=str(self.socket_dir), user="postgres", dbname="postgres", autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier("portal")))

    def stop(self) -> None:
        from pgserver._commands import pg_ctl

        pg_ctl(["-w", "-m", "fast", "stop"], pgdata=self.server.pgdata, user=self.server.system_user)

    def start(self) -> None:
        with self.server._lock:  # pgserver's start routine expects its lock held
            self.server.ensure_postgres_running()
        assert self.server.get_postmaster_info().socket_dir == self.socket_dir

    def remove(self) -> None:
        self.server.cleanup()  # stops the server (if running) and deletes its data directory
        shutil.rmtree(self.base, ignore_errors=True)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _portal_env(database_url: str) -> dict[str, str]:
    env = {**os.environ, "DATABASE_URL": database_url, "DJANGO_SETTINGS_MODULE": "portal.settings"}
    env.pop("DJANGO_DEBUG", None)  # production settings: DEBUG off
    env["PORTAL_SSL_REDIRECT"] = "false"  # plain HTTP on the loopback for this test
    return env


def _manage(env: dict[str, str], *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=180
    )
    assert result.returncode == 0, f"manage.py {args[0]} failed:\n{result.stderr[-3000:]}"
    return result.stdout


def _get(port: int, path: str, token: str = "") -> tuple[int, dict, str]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
    try:
        connection.request("GET", path, headers={"Authorization": f"Token {token}"} if token else {})
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read().decode()
    finally:
        connection.close()


@pytest.fixture
def private_postgres():
    server = PrivatePostgres()
    try:
        yield server
    finally:
        server.remove()


def test_postgres_restart_answers_a_clean_503_then_recovers_without_restarting_the_portal(private_postgres, tmp_path):
    private_postgres.create_database()
    env = _portal_env(private_postgres.url)
    _manage(env, "migrate", "--database", "owner", "--noinput")
    seeded = json.loads(_manage(env, "shell", "-c", SEED).strip().splitlines()[-1])

    port = _free_port()
    log = tmp_path / "gunicorn.log"
    command = [str(BIN / "gunicorn"), "portal.wsgi:application", "--bind", f"127.0.0.1:{port}"]
    command += ["--workers", "1", "--worker-class", "gthread", "--threads", "2", "--timeout", "30"]
    with log.open("ab") as out:
        portal = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    customers = "/api/v1/customers/"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert portal.poll() is None, log.read_text(errors="replace")[-3000:]
            try:
                if _get(port, "/healthz")[0] == 200:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, "the portal did not start"
            time.sleep(0.2)
        workers = {p.pid for p in psutil.Process(portal.pid).children()}

        status, _, body = _get(port, customers, seeded["token"])
        assert status == 200, body
        before = json.loads(body)
        assert before["count"] == 1 and before["results"][0]["name"] == seeded["name"]

        private_postgres.stop()
        for _ in range(3):  # every thread's connection is gone, whichever thread answers
            status, headers, body = _get(port, customers, seeded["token"])
            assert status == 503, body
            assert headers["Content-Type"] == "application/json"
            assert json.loads(body)["detail"] == outage.MESSAGE and headers["Retry-After"]
            for leak in ("Traceback", "psycopg", "connection", "<html", seeded["name"], seeded["email"]):
                assert leak.lower() not in body.lower(), leak
        status, headers, body = _get(port, "/accounts/login/")
        assert (status, headers["Content-Type"], body) == (503, "text/plain; charset=utf-8", outage.MESSAGE + "\n")

        private_postgres.start()
        for _ in range(4):  # both threads reconnect, on the same portal processes
            status, _, body = _get(port, customers, seeded["token"])
            assert status == 200, body
            assert json.loads(body) == before
        assert _get(port, "/accounts/login/")[0] == 200
        assert portal.poll() is None and {p.pid for p in psutil.Process(portal.pid).children()} == workers
    finally:
        portal.terminate()
        try:
            portal.wait(timeout=20)
        except subprocess.TimeoutExpired:
            portal.kill()
            portal.wait()
    # The portal's own log: one line per failed request, naming the error type, no personal data.
    text = log.read_text(errors="replace")
    assert "database unavailable: OperationalError" in text
    assert seeded["name"] not in text and seeded["email"] not in text


def test_a_database_outage_inside_an_api_view_is_the_same_503():
    """The DB can also go in the middle of a view (after the request's transaction began): the
    API's exception handler gives the same answer as ``handler500`` does for the middleware."""
    from django.db import OperationalError
    from rest_framework.test import APIRequestFactory

    from portal.api_errors import exception_handler

    request = APIRequestFactory().get("/api/v1/customers/")
    response = exception_handler(OperationalError("server closed the connection unexpectedly"), {"request": request})
    assert response.status_code == 503 and response["Retry-After"]
    assert json.loads(response.content)["detail"] == outage.MESSAGE
    assert b"server closed" not in response.content
    response = exception_handler(ValueError("no outage"), {"request": request})
    assert response.status_code == 500
