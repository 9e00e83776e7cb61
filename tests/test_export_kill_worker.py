"""Killing the worker in the middle of an export (twice), then letting a restarted worker finish,
ends exactly like an uninterrupted export: one export row, done, one file, the right SHA-256, the
masked content, no partial or duplicate file, and one audit event.

The workers are real ``celery worker`` processes on the test database and the test Redis; the
message is acknowledged late, so a killed worker's message is delivered again.  The first worker
is SIGKILLed right after writing the ``.partial`` file (before the rename), the second right after
the rename (the file is in place, the row's transaction not committed): the two crash points that
can leave a file behind.  The test-only pause points are ``portal.fault_points``."""

import csv
import hashlib
import io
import time

import pytest

from audit import chain
from audit.choices import AuditAction
from audit.models import AuditEvent
from datasets import exports
from datasets.choices import ExportStatus
from datasets.models import Export
from tests import worker_process
from tests.conftest import BOTH_DATABASES, Org, token_client

pytestmark = [pytest.mark.django_db(transaction=True, databases=BOTH_DATABASES), pytest.mark.worker]
PURPOSE = "Quarterly churn review for the Sales board"
VISIBILITY = 5  # seconds until a killed worker's message is delivered again (default: an hour)


def worker_options(log, env: dict, **extra) -> dict:
    return {"log": log, "name": "export-kill", "env": env, "visibility_timeout": VISIBILITY, **extra}


def request_export(client) -> str:
    body = {"dataset": "customers", "format": "csv", "purpose": PURPOSE}
    response = client.post("/api/v1/exports/", body, format="json")
    assert response.status_code == 202, response.content
    return response.json()["id"]


def files() -> list[str]:
    return sorted(path.name for path in exports.export_dir().iterdir())


def export_events(export_id: str) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(action=AuditAction.EXPORT_DATA, object_ids__contains=[export_id]))


def crash_state(export_id: str) -> dict:
    export = Export.objects.get(pk=export_id)
    return {
        "status": export.status,
        "row_count": export.row_count,
        "sha256": export.sha256,
        "events": len(export_events(export_id)),
    }


def end_state(client, export_id: str) -> dict:
    """What an export leaves, with its own id written as ``ID`` (so that two exports compare)."""
    body = client.get(f"/api/v1/exports/{export_id}/").json()
    download = client.get(body["download_url"].replace("http://testserver", ""))
    assert download.status_code == 200
    return {
        "status": body["status"],
        "progress": body["progress"],
        "rows": body["row_count"],
        "sha256": body["sha256"],
        "downloaded_sha256": hashlib.sha256(download.content).hexdigest(),
        "content": download.content,
        "files": [name.replace(export_id, "ID") for name in files() if name.startswith(export_id)],
        "events": [(e.rows, e.reason, e.extra, e.actor_id) for e in export_events(export_id)],
    }


def test_killing_the_worker_mid_export_then_restarting_ends_like_an_uninterrupted_export(tmp_path, settings):
    export_dir = tmp_path / "exports"
    settings.PORTAL_EXPORT_DIR = str(export_dir)
    worker_env = {"PORTAL_EXPORT_DIR": str(export_dir)}
    worker_process.forget_pending_messages()
    org = Org(customers_per_team=3)
    admin = token_client(org.admin)
    log = tmp_path / "workers.log"

    # 1. Killed after writing the .partial file, before renaming it.
    killed_id, _ = worker_process.kill_when(
        lambda _: worker_process.paused_at(log, "export_partial"),
        then=lambda: request_export(admin),
        what="the first worker to write the partial file",
        **worker_options(log, worker_env, pause_after="export_partial"),
    )
    assert files() == [f"{killed_id}.csv.partial"]  # the crash leaves a partial file ...
    assert crash_state(killed_id) == {"status": ExportStatus.QUEUED, "row_count": None, "sha256": "", "events": 0}

    # 2. The message comes back; the second worker is killed after the rename, before the commit.
    time.sleep(VISIBILITY + 1)
    worker_process.kill_when(
        lambda _: worker_process.paused_at(log, "export_file"),
        what="the second worker to put the file in place",
        **worker_options(log, worker_env, pause_after="export_file"),
    )
    assert files() == [f"{killed_id}.csv.enc"]  # ... which the rerun replaced
    assert crash_state(killed_id) == {"status": ExportStatus.QUEUED, "row_count": None, "sha256": "", "events": 0}

    # 3. A third worker takes the message back and finishes; an uninterrupted twin runs on it too.
    time.sleep(VISIBILITY + 1)
    with worker_process.running(**worker_options(log, worker_env)) as third:
        twin_id = request_export(admin)
        for export_id in (killed_id, twin_id):
            worker_process.wait_for(
                lambda export_id=export_id: Export.objects.get(pk=export_id).status != ExportStatus.QUEUED,
                timeout=90,
                what=f"export {export_id} to finish",
                alive=third,
                log=log,
            )
    worker_process.forget_pending_messages()

    after_kill, uninterrupted = end_state(admin, killed_id), end_state(admin, twin_id)
    assert after_kill == uninterrupted, log.read_text(errors="replace")[-3000:]
    assert after_kill["status"] == ExportStatus.DONE and after_kill["rows"] == 12
    assert after_kill["downloaded_sha256"] == after_kill["sha256"]
    assert after_kill["files"] == ["ID.csv.enc"]  # one file, no .partial left, no duplicate
    assert files() == sorted([f"{killed_id}.csv.enc", f"{twin_id}.csv.enc"])
    assert Export.objects.count() == 2
    # One EXPORT_DATA event per export (not one per attempt), with the file's fingerprint, and the
    # audit chain intact across the crashes.
    [(rows, reason, extra, actor)] = after_kill["events"]
    assert (rows, reason, extra["sha256"], actor) == (12, PURPOSE, after_kill["sha256"], org.admin.pk)
    assert chain.verify().ok
    # The content is the admin's export scope, masked per the policy's masking table.
    header, *rows = list(csv.reader(io.StringIO(after_kill["content"].decode())))
    assert header == exports.COLUMNS["customers"]
    assert {int(row[0]) for row in rows} == org.all_ids()
    cards = {row[header.index("card_last4")] for row in rows}
    assert cards == {f"XXXX-XXXX-XXXX-{c.card_last4}" for team in org.customers.values() for c in team}
    some = org.customers["North"][0]
    for name in files():  # encrypted at rest
        assert some.email.encode() not in (export_dir / name).read_bytes()
