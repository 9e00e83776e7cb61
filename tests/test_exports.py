"""Exports: the roles table decides who may export what; a real worker writes the masked,
encrypted file; the download link is the requester's alone and expires."""

import csv
import hashlib
import io
import json

import pytest
from celery.contrib.testing.worker import start_worker

from audit.models import AuditEvent
from datasets import exports
from datasets.models import Export
from portal.celery import app
from tests.conftest import BOTH_DATABASES, Org, token_client

pytestmark = pytest.mark.django_db(transaction=True, databases=BOTH_DATABASES)
PURPOSE = "Quarterly churn review for the Sales board"


@pytest.fixture(scope="module")
def worker(django_db_blocker):
    with django_db_blocker.unblock(), start_worker(app, perform_ping_check=False, pool="solo", loglevel="WARNING"):
        yield


def wait_done(client, export_id, tries=100):
    import time

    for _ in range(tries):
        body = client.get(f"/api/v1/exports/{export_id}/").json()
        if body["status"] in ("done", "failed"):
            return body
        time.sleep(0.1)
    raise AssertionError(f"export {export_id} did not finish: {body}")


def start(client, **body):
    payload = {"dataset": "customers", "format": "csv", "purpose": PURPOSE, **body}
    return client.post("/api/v1/exports/", payload, format="json")


def test_export_rights_follow_the_table(worker):
    org = Org(customers_per_team=2)
    assert start(token_client(org.analyst)).status_code == 403
    assert start(token_client(org.executive)).status_code == 403
    manager = token_client(org.manager)
    response = start(manager)
    assert response.status_code == 202, response.content
    body = wait_done(manager, response.json()["id"])
    assert body["status"] == "done" and body["progress"]["percent"] == 100
    # Manager exports "team data": the teams they manage, not the whole department they view.
    managed = {t.pk for t in org.teams if t.manager_id == org.manager.pk}
    assert body["row_count"] == 2 * len(managed)


def test_export_file_is_masked_encrypted_and_fingerprinted(worker):
    org = Org(customers_per_team=3)
    admin = token_client(org.admin)
    body = wait_done(admin, start(admin, format="json").json()["id"])
    assert body["row_count"] == 12
    export = Export.objects.get(pk=body["id"])
    raw = (exports.export_dir() / export.file_name).read_bytes()
    some = org.customers["North"][0]
    assert some.email.encode() not in raw  # encrypted at rest
    download = admin.get(body["download_url"].replace("http://testserver", ""))
    assert download.status_code == 200
    content = download.content
    assert hashlib.sha256(content).hexdigest() == body["sha256"] == export.sha256
    rows = json.loads(content)
    assert {r["card_last4"] for r in rows} == {
        f"XXXX-XXXX-XXXX-{c.card_last4}" for t in org.customers.values() for c in t
    }
    event = AuditEvent.objects.filter(action="EXPORT_DATA", actor_id=org.admin.pk).latest("id")
    assert event.rows == 12 and event.as_record()["rows_exported"] == 12 and event.reason == PURPOSE


def test_download_link_is_single_user_and_tamper_proof(worker, settings):
    org = Org(customers_per_team=1)
    admin = token_client(org.admin)
    body = wait_done(admin, start(admin).json()["id"])
    path = body["download_url"].replace("http://testserver", "")
    rows = list(csv.reader(io.StringIO(admin.get(path).content.decode())))
    assert rows[0][:3] == ["id", "team_id", "name"] and len(rows) == 5
    other_admin = token_client(_another_admin())
    assert other_admin.get(path).status_code == 404
    assert admin.get(path[:-3] + "xyz").status_code == 404
    assert admin.get(f"/api/v1/exports/{body['id']}/download/").status_code == 404
    settings.EXPORT_LINK_SECONDS = -1
    assert admin.get(path).status_code == 404


def _another_admin():
    from accounts.policy import Role
    from tests.factories import make_user

    return make_user(Role.ADMIN)


@pytest.mark.parametrize(
    "body,field",
    [
        ({"dataset": "salaries"}, "dataset"),
        ({"format": "xlsx"}, "format"),
        ({"purpose": "x"}, "purpose"),
        ({"filters": {"email": "a@b.c"}}, "filters"),
    ],
)
def test_bad_export_requests_are_400_and_store_nothing(body, field):
    org = Org(customers_per_team=1)
    response = start(token_client(org.admin), **body)
    assert response.status_code == 400
    assert field in response.json()
    assert Export.objects.count() == 0
