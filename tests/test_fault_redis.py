"""Redis down: reads keep working, work that needs the queue is refused cleanly, nothing is lost.

The portal (broker, result backend, cache and alert tracker: everything that reads REDIS_URL) is
pointed at a private ``redis-server`` started for this test, which is then stopped:

* pages (signing in included) and API reads answer 200: the cache is an aid only;
* asking for queued work (an export from the API or a page, running a GDPR request in the admin)
  answers 503 / an error message naming the queue, and creates or changes nothing;
* when Redis dies between the check and the send (after the row committed), the request still
  answers at once and the row stays queued; once Redis is back, the beat's re-send tasks (run by
  a real worker, as the beat would send them) finish the work, once.
"""

import copy
import shutil
import socket
import subprocess
import time
from datetime import timedelta
from pathlib import Path

import pytest
import redis
from django.utils import timezone

from audit.choices import AuditAction
from audit.models import AuditEvent
from compliance import admin as compliance_admin
from compliance.models import SubjectRequest
from compliance.requests_choices import RequestStatus
from datasets.api import export_views
from datasets.choices import ExportStatus
from datasets.models import Export
from portal.celery import app
from portal.task_queue import QueueUnavailable
from tests import worker_process
from tests.conftest import BOTH_DATABASES, Org, token_client
from tests.factories import browser_login
from tests.gdpr_support import ADMIN_URL, admin_act, file_request, make_subject

pytestmark = [pytest.mark.django_db(transaction=True, databases=BOTH_DATABASES), pytest.mark.worker]
PURPOSE = "Quarterly churn review for the Sales board"
REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class PrivateRedis:
    """A ``redis-server`` of this test's own, on a free port, keeping nothing on disk."""

    def __init__(self, directory: Path):
        if not Path(REDIS_SERVER).exists():
            pytest.fail(f"redis-server not found ({REDIS_SERVER}): this test needs a real Redis to stop")
        self.port = _free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.directory = directory
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
            + ["--dir", str(self.directory), "--logfile", str(self.directory / "redis.log")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
        )
        client = redis.Redis.from_url(self.url, socket_connect_timeout=0.5)
        deadline = time.monotonic() + 15
        while True:
            try:
                client.ping()
                return
            except redis.ConnectionError:
                assert self.process.poll() is None, (self.directory / "redis.log").read_text(errors="replace")
                assert time.monotonic() < deadline, "the private redis-server did not start"
                time.sleep(0.05)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=15)
        with pytest.raises(redis.ConnectionError):
            redis.Redis.from_url(self.url, socket_connect_timeout=0.5).ping()

    def queued_messages(self) -> int:
        return redis.Redis.from_url(self.url).llen(app.conf.task_default_queue)


def _point_celery_at(url: str) -> None:
    """The in-process Celery app (``ensure_available``, ``enqueue``) connects to ``url`` from now on."""
    app.conf.broker_url = url
    app.conf.result_backend = url
    # Drop (not close) the pools: kombu keeps one per URL and hands the same one back later.
    app._pool = None
    app.amqp._producer_pool = None
    app._backend_cache = None
    app._local.__dict__.pop("backend", None)


@pytest.fixture
def private_redis(tmp_path, settings):
    """The private Redis, running, with every Redis user of the portal pointed at it."""
    server = PrivateRedis(tmp_path)
    server.start()
    suite_broker, suite_backend = app.conf.broker_url, app.conf.result_backend
    settings.REDIS_URL = settings.CELERY_BROKER_URL = settings.CELERY_RESULT_BACKEND = server.url
    caches = copy.deepcopy(settings.CACHES)
    caches["default"]["LOCATION"] = server.url
    settings.CACHES = caches  # (the setting_changed signal rebuilds Django's cache handler)
    _point_celery_at(server.url)
    try:
        yield server
    finally:
        server.stop()
        _point_celery_at(suite_broker)
        app.conf.result_backend = suite_backend


def redis_dies_after_the_check(real_check, server: PrivateRedis):
    """Redis passes ``ensure_available`` and dies right after: the request's row commits, then its
    message cannot be sent."""

    def check(*args, **kwargs):
        real_check(*args, **kwargs)
        server.stop()

    return check


def test_redis_down_reads_work_queued_work_is_refused_or_kept_and_runs_when_redis_returns(
    private_redis, tmp_path, monkeypatch, settings
):
    settings.PORTAL_EXPORT_DIR = str(tmp_path / "exports")
    org = Org(customers_per_team=2)
    subject = make_subject(org, "R")
    admin_api, dpo_api = token_client(org.admin), token_client(org.dpo)
    request_id = file_request(dpo_api, "erasure", subject).json()["id"]
    dpo_pages = browser_login(org.dpo)
    for action in ("verify", "approve"):
        assert admin_act(dpo_pages, request_id, action).status_code == 302
    admin_pages = browser_login(org.admin)
    # The South team's customers: the erasure below touches none of them.
    api_export = {"dataset": "customers", "format": "csv", "purpose": PURPOSE, "filters": {"team": org.south.pk}}
    page_export = {"dataset": "customers", "format": "csv", "purpose": PURPOSE, "team": org.south.pk}

    private_redis.stop()

    # --- Reads keep working ------------------------------------------------------------------
    for path in ("/", "/customers/", "/exports/"):
        assert admin_pages.get(path, follow=True).status_code == 200, path
    assert dpo_pages.get(ADMIN_URL).status_code == 200  # the queue with its progress bars
    assert dpo_pages.get(f"{ADMIN_URL}{request_id}/change/").status_code == 200
    customers = admin_api.get("/api/v1/customers/")
    assert customers.status_code == 200 and customers.json()["count"] == 4 * 2 + 2
    assert admin_api.get("/api/v1/exports/").status_code == 200
    status = dpo_api.get(f"/api/v1/privacy-requests/{request_id}/")
    assert status.status_code == 200 and status.json()["status"] == RequestStatus.APPROVED
    browser_login(org.manager)  # signing in works too (sessions and lockout live in PostgreSQL)

    # --- Work that needs the queue is refused, and nothing is created or changed --------------
    response = admin_api.post("/api/v1/exports/", api_export, format="json")
    assert response.status_code == 503
    assert response.json()["detail"] == QueueUnavailable.default_detail
    response = admin_pages.post("/exports/start/", page_export)
    assert response.status_code == 503 and QueueUnavailable.default_detail in response.content.decode()
    assert not Export.objects.exists()
    response = admin_act(dpo_pages, request_id, "run")
    assert response.status_code == 302
    assert [m.message for m in response.wsgi_request._messages] == [QueueUnavailable.default_detail]
    request = SubjectRequest.objects.get(pk=request_id)
    assert (request.status, request.run_started_at, request.attempts) == (RequestStatus.APPROVED, None, 0)
    # Filing a new request needs no queue: it is taken (and waits for the DPO like any other).
    assert file_request(dpo_api, "erasure", subject).status_code == 201

    # --- Redis dies between the check and the send: the committed row stays queued -------------
    private_redis.start()
    monkeypatch.setattr(
        export_views, "ensure_available", redis_dies_after_the_check(export_views.ensure_available, private_redis)
    )
    started = time.monotonic()
    response = admin_api.post("/api/v1/exports/", api_export, format="json")
    assert response.status_code == 202
    assert time.monotonic() - started < 10  # the lost send costs no long retry inside the request
    export = Export.objects.get(pk=response.json()["id"])
    assert export.status == ExportStatus.QUEUED

    private_redis.start()
    monkeypatch.setattr(
        compliance_admin,
        "ensure_available",
        redis_dies_after_the_check(compliance_admin.ensure_available, private_redis),
    )
    started = time.monotonic()
    response = admin_act(dpo_pages, request_id, "run")
    assert response.status_code == 302 and time.monotonic() - started < 10
    assert SubjectRequest.objects.get(pk=request_id).status == RequestStatus.IN_PROGRESS

    # --- Redis returns (empty: neither message reached it); the beat's re-send finishes both ---
    private_redis.start()
    assert private_redis.queued_messages() == 0
    # The re-send tasks pick work older than their threshold (120 s, 15 min): age the two rows.
    Export.objects.using("owner").filter(pk=export.pk).update(created_at=timezone.now() - timedelta(minutes=5))
    SubjectRequest.objects.using("owner").filter(pk=request_id).update(
        run_started_at=timezone.now() - timedelta(hours=1)
    )
    log = tmp_path / "worker.log"
    with worker_process.running(
        log, name="redis-back", env={"REDIS_URL": private_redis.url, "PORTAL_EXPORT_DIR": settings.PORTAL_EXPORT_DIR}
    ) as worker:
        for entry in ("requeue-stale-exports", "compliance-requeue-stalled-requests"):
            scheduled = settings.CELERY_BEAT_SCHEDULE[entry]
            # What the beat does with an entry (its task, its arguments); the result is not read.
            app.tasks[scheduled["task"]].apply_async(
                scheduled.get("args", ()), scheduled.get("kwargs", {}), ignore_result=True
            )
        worker_process.wait_for(
            lambda: (
                Export.objects.get(pk=export.pk).status != ExportStatus.QUEUED
                and SubjectRequest.objects.get(pk=request_id).status != RequestStatus.IN_PROGRESS
            ),
            timeout=120,
            what="the re-sent export and erasure to finish",
            alive=worker,
            log=log,
        )
    export.refresh_from_db()
    assert (export.status, export.row_count) == (ExportStatus.DONE, 2)
    assert AuditEvent.objects.filter(action=AuditAction.EXPORT_DATA, object_ids__contains=[str(export.pk)]).count() == 1
    request = SubjectRequest.objects.get(pk=request_id)
    assert request.status == RequestStatus.COMPLETED, (request.error_step, request.error_detail)
    assert AuditEvent.objects.filter(action=AuditAction.USER_DELETED).count() == 1
    assert admin_api.get(f"/api/v1/exports/{export.pk}/").json()["progress"]["percent"] == 100
