"""Load test: concurrent API clients against the portal served by gunicorn, vs. the unsecured baseline.

What runs:

- the database ``<DATABASE_URL name>_load`` (``--db-suffix``), migrated and seeded by the demo
  seed that ``make run`` uses (``manage.py seed_demo``; reruns reuse the rows while the keys stay the same);
- the portal as production serves it: ``gunicorn portal.wsgi:application -c
  portal/gunicorn_conf.py`` (HTTPS, TLS 1.3, the workers and threads the conf picks), in its
  own process group, with the bench-only settings ``bench.load_settings`` that also route the
  unsecured baseline (``bench/baseline.py``; the portal itself never routes it);
- real API tokens (``accounts.services.issue_token``, as ``POST /api/v1/auth/token/`` issues
  them) for analysts of five teams and both managers, revoked at the end;
- ``--clients`` keep-alive HTTPS clients (threads, ``http.client``) in this process, which
  does nothing else meanwhile: each sends its next request as soon as the answer is in.  The
  secured phase mixes the customer list, customer detail, exact email search and the order
  list over the users; the baseline phase asks ``/bench/unsecured-customers/`` for the teams.
  The phases run interleaved in slices (ABBA order), ``--seconds`` each, after a warm-up.

It prints requests, errors, throughput, p50/p90/p99 latency per phase (and per endpoint), the
CPU of the generator, the server and the database backends, and ``secured/baseline``
throughput.  Any non-2xx answer or failed request (warm-up included) is an error: the exit
status is then 1.  ``--json PATH`` writes the figures for tests.

Run: ``DATABASE_URL=postgres://postgres@127.0.0.1:5432/portal REDIS_URL=redis://127.0.0.1:6379/11
.venv/bin/python scripts/services.py -- .venv/bin/python bench/load_api.py [--seconds 60]``.
"""

import argparse
import http.client
import io
import json
import os
import random
import resource
import runpy
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
BIN = Path(sys.executable).parent
VAR = Path(os.environ.get("PORTAL_VAR_DIR", ROOT / "var"))

HOST = "127.0.0.1"
DOMAIN = "demo.portal.test"
# Analysts of five teams in both departments, and both managers (department scope, clear contact data).
USERS = [
    f"analyst1.north@{DOMAIN}",
    f"analyst2.south@{DOMAIN}",
    f"analyst1.brand@{DOMAIN}",
    f"analyst2.growth@{DOMAIN}",
    f"analyst1.events@{DOMAIN}",
    f"manager.sales@{DOMAIN}",
    f"manager.marketing@{DOMAIN}",
]
PAGE_SIZE = 50  # the API's default page, asked of both paths
SEARCH_SAMPLE = 20  # emails per user for the exact-match search
# The secured mix, cycled by every client from its own offset (so that even a short run
# exercises every endpoint): 40% customer list, 30% detail, 20% order list, 10% email search.
SECURED_CYCLE = ["list", "detail", "orders", "list", "detail", "search", "list", "detail", "orders", "list"]
BASELINE_PATH = "/bench/unsecured-customers/"


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60, help="measured seconds per phase (default 60)")
    parser.add_argument("--clients", type=int, default=50, help="concurrent keep-alive clients (default 50)")
    parser.add_argument("--slice", type=float, default=10, help="seconds per interleaved slice (default 10)")
    parser.add_argument("--warmup", type=float, default=5, help="unmeasured seconds per phase first (default 5)")
    parser.add_argument("--customers", type=int, default=10_000, help="demo customers (seed_demo's default 10000)")
    parser.add_argument(
        "--mix",
        choices=["full", "customers"],
        default="full",
        help="secured requests: the full mix, or only the customer list (like for like with the baseline)",
    )
    parser.add_argument("--db-suffix", default="_load", help="database name suffix (default _load)")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args(argv)
    if args.seconds <= 0 or args.slice <= 0 or args.clients < 1 or args.warmup < 0:
        parser.error("--seconds and --slice must be positive, --clients at least 1, --warmup not negative")
    return args


# --- Data and tokens (Django, in this process, before the load) -------------------------------


@dataclass
class Target:
    """What one simulated client may ask for; paths carry no secret, headers do."""

    label: str
    headers: dict
    customer_ids: list[int] = field(default_factory=list)
    customer_pages: int = 1
    order_pages: int = 1
    emails: list[str] = field(default_factory=list)
    team_id: int | None = None


def prepare(customers: int) -> dict:
    """Migrate, seed the demo data; return team ids and row counts."""
    from django.core.management import call_command
    from django.db import connections
    from psycopg import sql

    call_command("migrate", database="owner", verbosity=0)
    out = io.StringIO()  # seed_demo prints the demo password when it creates the accounts
    call_command("seed_demo", customers=customers, stdout=out)
    summary = [line for line in out.getvalue().splitlines() if line.startswith("Demo data ready")]
    print(f"seed_demo: {summary[0] if summary else 'done'}", flush=True)
    # Freshly seeded rows have no planner statistics yet; a live table has (autovacuum).
    with connections["owner"].cursor() as cursor:
        for table in ("datasets_customer", "datasets_order"):
            cursor.execute(sql.SQL("VACUUM (ANALYZE) {}").format(sql.Identifier(table)))
    from accounts.models import Team
    from datasets.models import Customer
    from portal.security_context import scoped

    with scoped(system=True):
        teams = {
            team_id: Customer.objects.filter(team_id=team_id).count()
            for team_id in Team.objects.order_by("id").values_list("id", flat=True)
        }
        total = Customer.objects.count()
    return {"teams": teams, "customers": total}


def issue_tokens(rng: random.Random) -> tuple[list[Target], list]:
    """One real token per demo user, and what that user's scope holds (read under that scope)."""
    from accounts import policy, services
    from accounts.models import User
    from datasets.models import Customer, Order
    from portal.security_context import scoped

    targets, rows = [], []
    for email in USERS:
        user = User.objects.get(email=email)
        grant = policy.access(user, policy.Action.VIEW)
        if grant.role not in (policy.Role.ANALYST, policy.Role.MANAGER):
            sys.exit(f"{email} should be an analyst or a manager; got {grant.role}")
        with scoped(user):
            ids = list(Customer.objects.restrict(user, policy.Action.VIEW).values_list("id", flat=True))
            orders = Order.objects.restrict(user, policy.Action.VIEW).count()
            picked = rng.sample(ids, min(SEARCH_SAMPLE, len(ids)))
            emails = [c.email for c in Customer.objects.restrict(user, policy.Action.VIEW).filter(id__in=picked)]
        if not ids or not orders:
            sys.exit(f"{email} sees no customers or no orders: is the demo data there?")
        # Marked as the token endpoint would mark it: MFA-verified where the role requires it.
        row, token = services.issue_token(user, mfa_verified=policy.requires_mfa(user), ip=HOST)
        rows.append((row, user))
        targets.append(
            Target(
                label=f"{grant.role.lower()}:{email.split('@')[0]}",
                headers={"Authorization": f"Token {token}"},
                customer_ids=ids,
                customer_pages=-(-len(ids) // PAGE_SIZE),
                order_pages=-(-orders // PAGE_SIZE),
                emails=emails,
            )
        )
    return targets, rows


def revoke_tokens(rows) -> None:
    from accounts import services

    for row, user in rows:
        services.revoke_token(row, actor=user, reason="load test finished")


# --- The server ---------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


class Server:
    """gunicorn with the production conf, in its own process group, logging to ``log_path``."""

    def __init__(self, tls_dir: Path, log_path: Path):
        from portal.tls import ensure_certificate

        self.cert, key = ensure_certificate(tls_dir, HOST)
        self.port = free_port()
        self.log_path = log_path
        self.env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "bench.load_settings",
            "PORTAL_HOST": HOST,
            "PORTAL_PORT": str(self.port),
            "PORTAL_TLS_CERT": str(self.cert),
            "PORTAL_TLS_KEY": str(key),
        }
        # What the conf picks in this environment (it reads the same variables gunicorn will).
        saved = dict(os.environ)
        os.environ.update(self.env)
        try:
            conf = runpy.run_path(str(ROOT / "portal" / "gunicorn_conf.py"))
        finally:
            os.environ.clear()
            os.environ.update(saved)
        self.workers, self.threads, self.worker_class = conf["workers"], conf["threads"], conf["worker_class"]
        self.process = None

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "wb")  # noqa: SIM115 - lives as long as the server
        argv = [str(BIN / "gunicorn"), "portal.wsgi:application", "-c", "portal/gunicorn_conf.py"]
        self.process = subprocess.Popen(  # noqa: S603 - the venv's gunicorn, fixed arguments
            argv, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        log.close()

    def ssl_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.cert))  # verifies the IP in the certificate

    def wait_ready(self, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                sys.exit(f"gunicorn exited with status {self.process.returncode}; see {self.log_path}")
            conn = http.client.HTTPSConnection(HOST, self.port, context=self.ssl_context(), timeout=2)
            try:
                conn.request("GET", "/healthz")
                if conn.getresponse().status == 200:
                    return
            except OSError:
                time.sleep(0.3)
            finally:
                conn.close()
        sys.exit(f"gunicorn did not answer within {timeout:.0f}s; see {self.log_path}")

    def processes(self):
        import psutil

        try:
            master = psutil.Process(self.process.pid)
            return [master, *master.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def log_findings(self) -> dict:
        """Statuses from the access log, and the warnings and errors of the server's own log lines
        (the portal's JSON records, gunicorn's ``[LEVEL]`` lines, tracebacks)."""
        statuses, levels, firsts = Counter(), Counter(), {"ERROR": [], "WARNING": []}
        for line in self.log_path.read_text(errors="replace").splitlines():
            level = ""
            if line.startswith("{"):
                try:
                    record = json.loads(line)
                except ValueError:
                    record = {}
                if "status" in record and "path" in record:
                    statuses[record["status"]] += 1
                    continue
                level = str(record.get("level", ""))
            elif "Traceback" in line:
                level = "ERROR"
            else:
                level = next((name for name in ("CRITICAL", "ERROR", "WARNING") if f"[{name}]" in line), "")
            level = "ERROR" if level == "CRITICAL" else level
            if level in firsts:
                levels[level] += 1
                if len(firsts[level]) < 5:
                    firsts[level].append(line[:300])
        return {
            "status_counts": {str(k): v for k, v in sorted(statuses.items())},
            "status_5xx": sum(v for k, v in statuses.items() if k >= 500),
            "error_lines": levels["ERROR"],
            "warning_lines": levels["WARNING"],
            "first_errors": firsts["ERROR"],
            "first_warnings": firsts["WARNING"],
        }


# --- CPU accounting -------------------------------------------------------------------------------


def _cpu_of(processes) -> dict[int, float]:
    import psutil

    seconds = {}
    for process in processes:
        try:
            times = process.cpu_times()
            seconds[process.pid] = times.user + times.system
        except psutil.Error:
            pass
    return seconds


def database_backends(db_name: str):
    """PostgreSQL backends serving this database (process titles ``postgres: user db ...``)."""
    import psutil

    found = []
    for process in psutil.process_iter(["cmdline"]):
        cmdline = process.info.get("cmdline") or []
        title = " ".join(cmdline)
        if title.startswith("postgres: ") and f" {db_name} " in f"{title} ":
            found.append(process)
    return found


class CpuMeter:
    """CPU seconds over a slice: this process (the load generator), gunicorn, the DB backends, the machine."""

    def __init__(self, server: Server, db_name: str):
        self.server, self.db_name = server, db_name

    def snapshot(self) -> dict:
        import psutil

        usage = resource.getrusage(resource.RUSAGE_SELF)
        machine = psutil.cpu_times()
        return {
            "generator": usage.ru_utime + usage.ru_stime,
            "server": _cpu_of(self.server.processes()),
            "database": _cpu_of(database_backends(self.db_name)),
            "machine_busy": sum(machine) - machine.idle - getattr(machine, "iowait", 0.0),
            "machine_total": sum(machine),
        }

    @staticmethod
    def delta(before: dict, after: dict) -> dict:
        def grown(a, b):  # a process that started within the slice counts from zero
            return sum(seconds - a.get(pid, 0.0) for pid, seconds in b.items())

        total = after["machine_total"] - before["machine_total"]
        return {
            "generator": after["generator"] - before["generator"],
            "server": grown(before["server"], after["server"]),
            "database": grown(before["database"], after["database"]),
            "machine_busy_fraction": (after["machine_busy"] - before["machine_busy"]) / total if total else 0.0,
        }


# --- The load generator ---------------------------------------------------------------------------


def secured_path(target: Target, kind: str, rng: random.Random) -> str:
    if kind == "list":
        return f"/api/v1/customers/?page={rng.randint(1, target.customer_pages)}"
    if kind == "detail":
        return f"/api/v1/customers/{rng.choice(target.customer_ids)}/"
    if kind == "orders":
        return f"/api/v1/orders/?page={rng.randint(1, target.order_pages)}"
    return f"/api/v1/customers/?email={quote(rng.choice(target.emails), safe='')}"


def baseline_path(target: Target, kind: str, rng: random.Random) -> str:
    return f"{BASELINE_PATH}?team={target.team_id}&page={rng.randint(1, target.customer_pages)}"


@dataclass
class ClientResult:
    latencies: dict = field(default_factory=dict)  # kind -> [seconds]
    errors: Counter = field(default_factory=Counter)  # "kind status" or "kind ExceptionName" -> count
    examples: list = field(default_factory=list)


def run_client(server: Server, context, target, cycle, path_for, seed, deadline, result: ClientResult) -> None:
    """One keep-alive HTTPS client: request after request until the deadline."""
    rng = random.Random(seed)  # picking pages, not secrets
    headers = {**target.headers, "Accept": "application/json", "User-Agent": "portal-load-test/1"}
    conn = None
    step = seed
    while time.monotonic() < deadline:
        kind = cycle[step % len(cycle)]
        step += 1
        path = path_for(target, kind, rng)
        started = time.perf_counter()
        try:
            if conn is None:
                conn = http.client.HTTPSConnection(HOST, server.port, context=context, timeout=60)
            conn.request("GET", path, headers=headers)
            response = conn.getresponse()
            body = response.read()
            elapsed = time.perf_counter() - started
            if 200 <= response.status < 300:
                result.latencies.setdefault(kind, []).append(elapsed)
            else:
                result.errors[f"{kind} {response.status}"] += 1
                if len(result.examples) < 3:
                    # The path without its query string: a search carries an email address.
                    result.examples.append(f"{response.status} {path.split('?')[0]}: {body[:200]!r}")
            if response.will_close:
                conn.close()
                conn = None
        except (OSError, http.client.HTTPException) as exc:
            result.errors[f"{kind} {type(exc).__name__}"] += 1
            if len(result.examples) < 3:
                result.examples.append(f"{type(exc).__name__} {path.split('?')[0]}: {exc}")
            if conn is not None:
                conn.close()
            conn = None
    if conn is not None:
        conn.close()


def run_slice(server: Server, targets, cycle, path_for, clients: int, seconds: float, offset: int) -> dict:
    """``clients`` concurrent clients for ``seconds``; returns merged results and the wall time."""
    context = server.ssl_context()
    results = [ClientResult() for _ in range(clients)]
    started = time.monotonic()
    deadline = started + seconds
    threads = [
        threading.Thread(
            target=run_client,
            args=(server, context, targets[i % len(targets)], cycle, path_for, offset + i, deadline, results[i]),
            daemon=True,
        )
        for i in range(clients)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    merged = ClientResult()
    for result in results:
        for kind, samples in result.latencies.items():
            merged.latencies.setdefault(kind, []).extend(samples)
        merged.errors.update(result.errors)
        merged.examples.extend(result.examples[: max(0, 5 - len(merged.examples))])
    return {"result": merged, "wall": time.monotonic() - started}


class Phase:
    """Accumulates the slices of one phase."""

    def __init__(self, name: str):
        self.name = name
        self.result = ClientResult()
        self.wall = 0.0
        self.cpu = {"generator": 0.0, "server": 0.0, "database": 0.0}
        self.machine_busy = []

    def add(self, outcome: dict, cpu: dict) -> None:
        for kind, samples in outcome["result"].latencies.items():
            self.result.latencies.setdefault(kind, []).extend(samples)
        self.result.errors.update(outcome["result"].errors)
        self.result.examples.extend(outcome["result"].examples[: max(0, 5 - len(self.result.examples))])
        self.wall += outcome["wall"]
        for name in self.cpu:
            self.cpu[name] += cpu[name]
        self.machine_busy.append(cpu["machine_busy_fraction"])

    def figures(self) -> dict:
        samples = [s for kind in self.result.latencies.values() for s in kind]
        errors = sum(self.result.errors.values())
        requests = len(samples) + errors
        wall = self.wall or 1.0
        return {
            "requests": requests,
            "ok": len(samples),
            "errors": errors,
            "error_kinds": dict(self.result.errors),
            "error_examples": self.result.examples,
            "seconds": round(self.wall, 2),
            "rps": len(samples) / wall,
            **latency(samples),
            "by_kind": {kind: {"requests": len(s), **latency(s)} for kind, s in sorted(self.result.latencies.items())},
            "cpu_seconds": {name: round(value, 2) for name, value in self.cpu.items()},
            "cpu_cores": {name: value / wall for name, value in self.cpu.items()},
            "machine_busy": statistics.mean(self.machine_busy) if self.machine_busy else 0.0,
        }


def latency(samples: list[float]) -> dict:
    if not samples:
        return {"p50_ms": None, "p90_ms": None, "p99_ms": None, "max_ms": None}
    ms = sorted(s * 1000 for s in samples)

    def pct(p):
        return ms[min(len(ms) - 1, int(p * len(ms)))]

    return {"p50_ms": statistics.median(ms), "p90_ms": pct(0.90), "p99_ms": pct(0.99), "max_ms": ms[-1]}


def slice_plan(seconds: float, slice_seconds: float) -> list[tuple[str, float]]:
    """Alternating slices, ABBA (secured, baseline, baseline, secured, ...): drift hits both alike."""
    count = max(1, round(seconds / slice_seconds))
    length = seconds / count
    plan = []
    for i in range(count):
        pair = ["secured", "baseline"] if i % 2 == 0 else ["baseline", "secured"]
        plan.extend((name, length) for name in pair)
    return plan


# --- Main ---------------------------------------------------------------------------------------------


def main(argv=None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    from bench.bench_db import use_bench_database

    db_name = use_bench_database(args.db_suffix)
    # This process prepares data as the portal (production settings); the server gets the bench's.
    os.environ["DJANGO_SETTINGS_MODULE"] = "portal.settings"
    import django

    django.setup()
    from django.db import connections

    rng = random.Random(20250119)  # demo picks, not secrets
    data = prepare(args.customers)
    targets, token_rows = issue_tokens(rng)
    if args.mix == "customers":
        secured_cycle = ["list"]
    else:
        secured_cycle = SECURED_CYCLE
    baseline_targets = [
        Target(label=f"team:{team_id}", headers={}, team_id=team_id, customer_pages=-(-rows // PAGE_SIZE))
        for team_id, rows in data["teams"].items()
        if rows
    ]
    connections.close_all()  # nothing of Django runs in this process during the load

    with tempfile.TemporaryDirectory(prefix="portal-load-tls-") as tls_dir:
        server = Server(Path(tls_dir), VAR / "log" / f"load-web-{db_name}.log")
        print(
            f"database {db_name}: {data['customers']} customers in {len(data['teams'])} teams;"
            f" gunicorn {server.worker_class}: {server.workers} workers x {server.threads} threads"
            f" on https://{HOST}:{server.port}/ ({os.cpu_count()} CPUs);"
            f" {args.clients} clients, {args.seconds:g}s per phase in {args.slice:g}s slices"
            f" after {args.warmup:g}s warm-up each; secured mix: {args.mix}",
            flush=True,
        )
        try:
            server.start()
            server.wait_ready()
            report = run_load(server, db_name, targets, secured_cycle, baseline_targets, args)
        finally:
            server.stop()
            try:
                revoke_tokens(token_rows)
            finally:
                connections.close_all()
        report["server"] = server.log_findings()
        report["server"]["log"] = str(server.log_path)
    report["config"] = {
        "database": db_name,
        "customers": data["customers"],
        "clients": args.clients,
        "seconds": args.seconds,
        "mix": args.mix,
        "workers": server.workers,
        "threads": server.threads,
        "cpus": os.cpu_count(),
        "users": [t.label for t in targets],
    }
    print_report(report)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2, default=str))
    failed = (
        report["warmup_errors"]
        or report["secured"]["errors"]
        or report["baseline"]["errors"]
        or report["server"]["status_5xx"]
        or not report["secured"]["ok"]
        or not report["baseline"]["ok"]
    )
    return 1 if failed else 0


def run_load(server: Server, db_name: str, targets, secured_cycle, baseline_targets, args) -> dict:
    paths = {
        "secured": (targets, secured_cycle, secured_path),
        "baseline": (baseline_targets, ["baseline"], baseline_path),
    }
    warmup_errors = Counter()
    if args.warmup:
        for name in ("secured", "baseline"):
            outcome = run_slice(server, *paths[name], args.clients, args.warmup, offset=0)
            warmup_errors.update(outcome["result"].errors)
            for example in outcome["result"].examples[:3]:
                print(f"  warm-up {name} error: {example}", flush=True)
    meter = CpuMeter(server, db_name)
    phases = {"secured": Phase("secured"), "baseline": Phase("baseline")}
    for number, (name, seconds) in enumerate(slice_plan(args.seconds, args.slice)):
        before = meter.snapshot()
        outcome = run_slice(server, *paths[name], args.clients, seconds, offset=number * args.clients)
        phases[name].add(outcome, CpuMeter.delta(before, meter.snapshot()))
        done = len([s for k in outcome["result"].latencies.values() for s in k])
        print(
            f"  slice {number + 1:>2} {name:<8} {done / outcome['wall']:7.1f} req/s"
            f"  errors {sum(outcome['result'].errors.values())}",
            flush=True,
        )
    secured, baseline = phases["secured"].figures(), phases["baseline"].figures()
    return {
        "secured": secured,
        "baseline": baseline,
        "ratio": secured["rps"] / baseline["rps"] if baseline["rps"] else None,
        "warmup_errors": sum(warmup_errors.values()),
        "warmup_error_kinds": dict(warmup_errors),
    }


def print_report(report: dict) -> None:
    config = report["config"]
    print(
        f"\n{config['clients']} clients, {config['seconds']:g}s per phase, {config['workers']} workers x"
        f" {config['threads']} threads, {config['cpus']} CPUs; users: {', '.join(config['users'])}"
    )
    header = f"{'phase':<16} {'requests':>9} {'errors':>6} {'req/s':>8} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8}"
    print(header)
    for name in ("secured", "baseline"):
        f = report[name]
        print(
            f"{name:<16} {f['requests']:>9} {f['errors']:>6} {f['rps']:>8.1f} {fmt(f['p50_ms'])} {fmt(f['p90_ms'])}"
            f" {fmt(f['p99_ms'])}"
        )
        if name == "secured":
            for kind, k in f["by_kind"].items():
                print(
                    f"  {kind:<14} {k['requests']:>9} {'':>6} {'':>8} {fmt(k['p50_ms'])} {fmt(k['p90_ms'])}"
                    f" {fmt(k['p99_ms'])}"
                )
    ratio = report["ratio"]
    print(f"secured/baseline throughput = {ratio:.2f}" if ratio is not None else "secured/baseline: no baseline")
    print("\nCPU (cores busy on average over the phase; the machine has", config["cpus"], "CPUs):")
    for name in ("secured", "baseline"):
        cores = report[name]["cpu_cores"]
        print(
            f"  {name:<9} load generator {cores['generator']:.2f}, gunicorn {cores['server']:.2f},"
            f" PostgreSQL backends of this database {cores['database']:.2f};"
            f" whole machine {report[name]['machine_busy']:.0%} busy"
        )
    server = report["server"]
    print(
        f"\nserver: statuses {server['status_counts']}, log lines with errors {server['error_lines']},"
        f" with warnings {server['warning_lines']} ({server['log']})"
    )
    for line in server["first_errors"] + server["first_warnings"]:
        print(f"  {line}")
    problems = report["warmup_errors"] + report["secured"]["errors"] + report["baseline"]["errors"]
    if problems or server["status_5xx"]:
        print(f"\nFAILED: {problems} failed requests, {server['status_5xx']} server 5xx")
        for name in ("secured", "baseline"):
            for kind, count in report[name]["error_kinds"].items():
                print(f"  {name} {kind}: {count}")
            for example in report[name]["error_examples"]:
                print(f"    {example}")
        for kind, count in report["warmup_error_kinds"].items():
            print(f"  warm-up {kind}: {count}")


def fmt(value) -> str:
    return f"{value:>8.1f}" if value is not None else f"{'-':>8}"


if __name__ == "__main__":
    sys.exit(main())
