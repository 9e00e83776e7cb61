"""A retention run on a real Celery worker (a subprocess on the test database and real Redis) is
killed with SIGKILL in the middle of archiving orders, restarted, and must end in exactly the
state of an uninterrupted run of the same data: same rows left, same archive, same counts and
the same digest of the ids handled."""

from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from django.db import connections
from django.utils import timezone

from compliance import retention
from compliance.governance_choices import RunStatus
from compliance.governance_models import ArchivedOrder, RetentionPolicy, RetentionProof, RetentionRun
from compliance.governance_tasks import apply_retention
from datasets.models import Order, PageView
from portal.security_context import scoped
from tests import worker_process
from tests.conftest import BOTH_DATABASES
from tests.factories import CustomerFactory, TeamFactory
from tests.worker_process import wait_for

pytestmark = [pytest.mark.django_db(transaction=True, databases=BOTH_DATABASES), pytest.mark.worker]

BATCH = 250
PAGE_VIEWS, ORDERS = 600, 3000  # expired rows; a few fresh ones of each stay
ARCHIVE_COLUMNS = ("id", "customer_id", "team_id", "amount", "currency", "status", "created_at")


def seed(customers, base) -> None:
    """The same rows, with the same ids, every time it is called."""
    day = timedelta(days=1)
    views = [
        PageView(
            pk=10_000 + i,
            customer=customers[i % len(customers)],
            team_id=customers[0].team_id,
            page=f"/p/{i}",
            city="Porto",
            timestamp=base - (800 if i < PAGE_VIEWS else 100) * day - timedelta(minutes=i),
        )
        for i in range(PAGE_VIEWS + 5)
    ]
    orders = [
        Order(
            pk=50_000 + i,
            customer=customers[i % len(customers)],
            team_id=customers[0].team_id,
            amount=Decimal("5.00") + i,
            currency="EUR",
            status="paid",
            created_at=base - (2600 if i < ORDERS else 30) * day - timedelta(hours=i),
        )
        for i in range(ORDERS + 7)
    ]
    with scoped(system=True):
        PageView.objects.bulk_create(views)
        Order.objects.bulk_create(orders)


def reset() -> None:
    """Empty the tables the runs wrote (TRUNCATE: the reloaded rows get the same heap layout)."""
    with connections["owner"].cursor() as cursor:
        cursor.execute(
            "TRUNCATE compliance_retentionproof, compliance_retentionrun, compliance_archivedorder,"
            " datasets_pageview, datasets_order"
        )


def end_state() -> dict:
    owner = "owner"
    runs = {}
    for run in RetentionRun.objects.using(owner).filter(rows_deleted__gt=0).order_by("id"):
        proof = RetentionProof.objects.using(owner).get(run=run)
        runs[run.rule["dataset"]] = {
            "status": run.status,
            "deleted": run.rows_deleted,
            "archived": run.rows_archived,
            "batches": run.batches,
            "largest_batch": run.largest_batch_rows,
            "digest": run.digest,
            "left": proof.document["rows_older_than_cutoff_after_run"],
        }
    return {
        "page_views": sorted(PageView.objects.using(owner).values_list("pk", flat=True)),
        "orders": sorted(Order.objects.using(owner).values_list("pk", flat=True)),
        "archive": sorted(ArchivedOrder.objects.using(owner).values_list(*ARCHIVE_COLUMNS)),
        "runs": runs,
    }


def worker_options(log: Path) -> dict:
    # The throttle between batches keeps the run going long enough to be killed mid-way.
    env = {"RETENTION_BATCH_SIZE": str(BATCH), "RETENTION_BATCH_PAUSE_MS": "250"}
    return {"log": log, "name": "retention-kill", "env": env}


def orders_run():
    return RetentionRun.objects.using("owner").filter(rule__dataset="orders").order_by("-id").first()


def advisory_locks_held() -> int:
    with connections["owner"].cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND classid = %s", [retention.LOCK_CLASS]
        )
        return cursor.fetchone()[0]


def test_killed_worker_resumes_to_the_state_of_an_uninterrupted_run(tmp_path, settings):
    team = TeamFactory(name="Kill")
    customers = [CustomerFactory(team=team) for _ in range(4)]
    for rule in retention.ensure_default_policies():
        retention.preview(rule)
        retention.enable(rule)
    base = timezone.now()
    seed(customers, base)
    log = tmp_path / "worker.log"

    # Page views finish first; kill while orders are being archived.
    worker_process.kill_when(
        lambda _: (r := orders_run()) and r.batches >= 3 and r,
        then=apply_retention.apply_async,
        what="orders being archived",
        timeout=120,
        **worker_options(log),
    )
    # PostgreSQL ends the dead worker's session: its transaction rolls back, its lock goes.
    wait_for(lambda: advisory_locks_held() == 0, timeout=30, what="the killed worker's session to end")
    run = orders_run()
    assert run.status == RunStatus.RUNNING and 0 < run.rows_archived < ORDERS
    # The crash point is consistent: every order is either live or archived, never both or neither.
    live = set(Order.objects.using("owner").values_list("pk", flat=True))
    archived = set(ArchivedOrder.objects.using("owner").values_list("pk", flat=True))
    assert not live & archived and len(live | archived) == ORDERS + 7
    assert len(archived) == run.rows_archived == run.rows_deleted

    worker = worker_process.start(**worker_options(log))
    try:
        apply_retention.apply_async()
        wait_for(
            lambda: (
                RetentionPolicy.objects.using("owner").count()
                == RetentionRun.objects.using("owner")
                .filter(status=RunStatus.COMPLETED)
                .values("policy")
                .distinct()
                .count()
            ),
            timeout=120,
            what="the resumed run to complete",
            alive=worker,
            log=log,
        )
    finally:
        worker_process.stop(worker)
        # The killed worker's message is unacknowledged; Redis would deliver it again after the
        # visibility timeout (to some later test's worker).  Drop it: the run it carried is finished.
        worker_process.forget_pending_messages()
    resumed = RetentionRun.objects.using("owner").get(pk=run.pk)
    assert resumed.status == RunStatus.COMPLETED and resumed.resumed == 1
    interrupted = end_state()

    # The same data, run without interruption in this process with the same batch size.
    reset()
    seed(customers, base)
    settings.RETENTION_BATCH_SIZE = BATCH
    retention.run_due()
    uninterrupted = end_state()

    assert interrupted == uninterrupted
    assert uninterrupted["runs"]["orders"]["archived"] == ORDERS
    assert uninterrupted["runs"]["pageviews"]["deleted"] == PAGE_VIEWS
    assert len(uninterrupted["orders"]) == 7 and len(uninterrupted["page_views"]) == 5
    assert all(r["left"] == 0 and r["status"] == RunStatus.COMPLETED for r in uninterrupted["runs"].values())
    assert all(0 < r["largest_batch"] <= BATCH for r in uninterrupted["runs"].values())
