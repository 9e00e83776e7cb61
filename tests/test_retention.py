"""Retention: preview before enabling, batched runs (archive-then-delete atomic per batch),
resumption, legal hold, proof of deletion, audit, and row-level security on the archive."""

import json
import math
from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.db import connections
from django.utils import timezone

from accounts.policy import Role
from audit.models import AuditEvent
from compliance import retention
from compliance.admin_governance import proof_state
from compliance.governance_choices import RetentionAction, RunStatus, RunTrigger
from compliance.governance_hooks import anonymise_archives
from compliance.governance_models import ArchivedOrder, RetentionPolicy, RetentionProof, RetentionRun
from datasets.models import Order, PageView
from portal.security_context import scoped
from tests.conftest import BOTH_DATABASES
from tests.factories import CustomerFactory, TeamFactory, make_user

pytestmark = pytest.mark.django_db(transaction=True, databases=BOTH_DATABASES)
DAY = timedelta(days=1)


@pytest.fixture(autouse=True)
def default_policies():
    # Transactional tests flush the tables; the migration's defaults are put back here.
    return retention.ensure_default_policies()


@pytest.fixture
def customers():
    team = TeamFactory(name="Retention")
    return [CustomerFactory(team=team) for _ in range(3)]


def add_page_views(customers, *, days_old: int, count: int) -> list[int]:
    moment = timezone.now() - days_old * DAY
    rows = [
        PageView(
            customer=customers[i % len(customers)],
            team_id=customers[0].team_id,
            page=f"/p/{i}",
            session_id=f"s{i}",
            referrer="https://ref.example",
            city="Porto",
            timestamp=moment - timedelta(minutes=i),
        )
        for i in range(count)
    ]
    with scoped(system=True):
        return [row.pk for row in PageView.objects.bulk_create(rows)]


def add_orders(customers, *, days_old: int, count: int) -> list[int]:
    moment = timezone.now() - days_old * DAY
    rows = [
        Order(
            customer=customers[i % len(customers)],
            team_id=customers[0].team_id,
            amount=Decimal("10.00") + i,
            currency="EUR",
            status="paid",
            created_at=moment - timedelta(hours=i),
        )
        for i in range(count)
    ]
    with scoped(system=True):
        return [row.pk for row in Order.objects.bulk_create(rows)]


def one_batch(run, limit):
    """One batch as a worker would run it (on the run's private batch connection)."""
    with retention._batch_connection() as connection:
        return retention._one_batch(run, limit, connection)


def owner_ids(model) -> set[int]:
    return set(model.objects.using("owner").values_list("pk", flat=True))


def enabled(dataset: str, **changes) -> RetentionPolicy:
    rule = RetentionPolicy.objects.get(dataset=dataset)
    for key, value in changes.items():
        setattr(rule, key, value)
    rule.save()
    retention.preview(rule)
    retention.enable(rule)
    return rule


def test_seed_defaults_exist_disabled():
    rules = {p.dataset: p for p in RetentionPolicy.objects.all()}
    assert rules["pageviews"].action == RetentionAction.DELETE and rules["pageviews"].max_age_days == 730
    assert rules["orders"].action == RetentionAction.ARCHIVE and rules["orders"].max_age_days == 7 * 365
    assert not any(rule.enabled for rule in rules.values())
    # Disabled policies do nothing, even when data is expired.
    assert retention.run_due() == []


def test_preview_counts_and_oldest_row_then_enable(customers):
    old = add_page_views(customers, days_old=800, count=5)
    add_page_views(customers, days_old=10, count=4)
    rule = RetentionPolicy.objects.get(dataset="pageviews")
    with pytest.raises(retention.RetentionError, match="Preview"):
        retention.enable(rule)
    result = retention.preview(rule)
    assert result.rows == 5
    assert result.oldest_id == max(old)  # the oldest timestamp was given to the last row created
    assert result.oldest_at < timezone.now() - 800 * DAY
    retention.enable(rule)
    assert RetentionPolicy.objects.get(pk=rule.pk).enabled
    # A preview does not delete anything.
    assert owner_ids(PageView) >= set(old)


def test_changed_rule_is_disabled_until_previewed_again(customers, settings):
    rule = enabled("pageviews")
    rule.max_age_days = 365
    assert retention.save_policy(rule, {"max_age_days"}) is True
    rule.refresh_from_db()
    assert not rule.enabled
    with pytest.raises(retention.RetentionError, match="Preview"):
        retention.enable(rule)
    retention.preview(rule)
    RetentionPolicy.objects.filter(pk=rule.pk).update(previewed_at=timezone.now() - timedelta(hours=25))
    rule.refresh_from_db()
    with pytest.raises(retention.RetentionError, match="older than 24 hours"):
        retention.enable(rule)


def test_invalid_rules_are_refused_by_validation():
    from django.core.exceptions import ValidationError

    rule = RetentionPolicy(dataset="orders", age_field="timestamp", max_age_days=10, action="anonymise", basis="x")
    with pytest.raises(ValidationError) as caught:
        rule.full_clean(exclude=["dataset"])
    assert set(caught.value.message_dict) == {"age_field", "action"}
    hold = RetentionPolicy(dataset="pageviews", age_field="timestamp", max_age_days=10, action="delete", basis="x")
    hold.legal_hold = True
    with pytest.raises(ValidationError) as caught:
        hold.full_clean(exclude=["dataset"])
    assert "legal_hold_reason" in caught.value.message_dict


def test_page_views_purged_in_batches_with_proof_and_audit(customers, settings):
    settings.RETENTION_BATCH_SIZE = 7
    old = add_page_views(customers, days_old=731, count=30)
    fresh = add_page_views(customers, days_old=700, count=6)
    enabled("pageviews")
    [run] = retention.run_due(trigger=RunTrigger.COMMAND)
    assert run.status == RunStatus.COMPLETED
    assert owner_ids(PageView) == set(fresh)
    run = RetentionRun.objects.get(pk=run.pk)
    assert run.rows_deleted == 30 and run.rows_archived == 0
    assert run.batches == math.ceil(30 / 7) and run.largest_batch_rows == 7
    # The fingerprint is a set digest of the ids handled: recomputable from the ids alone.
    assert run.digest == retention.fingerprint(old) != retention.fingerprint(old[1:])
    proof = RetentionProof.objects.get(run=run)
    assert proof.document["rows"] == {"deleted": 30, "archived": 0, "anonymised": 0}
    assert proof.document["rows_older_than_cutoff_after_run"] == 0
    assert proof.document["batch_size_limit"] == 7 and proof.document["largest_batch_rows"] == 7
    assert proof.document["id_fingerprint"] == run.digest
    assert proof_state(proof).startswith("intact: matches")
    event = AuditEvent.objects.get(pk=proof.audit_event_id)
    assert event.action == "RETENTION_PURGE" and event.rows == 30 and event.success
    assert event.extra["proof_sha256"] == proof.sha256 and event.extra["id_fingerprint"] == run.digest
    # The proof document holds ids, counts and digests: nothing about a person.
    text = json.dumps(proof.document)
    assert all(c.email not in text and c.name not in text for c in customers)
    # Tampering with the stored proof is detected.
    RetentionProof.objects.filter(pk=proof.pk).update(document={**proof.document, "rows": {"deleted": 1}})
    assert proof_state(RetentionProof.objects.get(pk=proof.pk)).startswith("ALTERED")


def test_orders_archived_then_deleted_atomically_per_batch(customers, settings):
    settings.RETENTION_BATCH_SIZE = 4
    old = add_orders(customers, days_old=7 * 365 + 5, count=10)
    fresh = add_orders(customers, days_old=30, count=3)
    with scoped(system=True):
        before = {o.pk: o for o in Order.objects.filter(pk__in=old)}
    enabled("orders")
    [run] = retention.run_due()
    assert run.status == RunStatus.COMPLETED
    assert run.rows_archived == run.rows_deleted == 10 and run.batches == 3
    assert owner_ids(Order) == set(fresh)
    with scoped(system=True):
        archived = {a.pk: a for a in ArchivedOrder.objects.all()}
    assert set(archived) == set(old)
    for pk, original in before.items():
        copy = archived[pk]
        assert (copy.customer_id, copy.team_id, copy.amount, copy.currency, copy.status, copy.created_at) == (
            original.customer_id,
            original.team_id,
            original.amount,
            original.currency,
            original.status,
            original.created_at,
        )
        assert copy.run_id == run.pk
    # A second run finds nothing and proves it.
    [again] = retention.run_due()
    assert again.rows_deleted == 0 and again.batches == 0 and again.status == RunStatus.COMPLETED


def test_failed_archive_batch_rolls_back_the_delete(customers, settings):
    """Archive-then-delete is one transaction: if the archive insert fails, nothing is deleted."""
    old = add_orders(customers, days_old=7 * 365 + 5, count=3)
    enabled("orders")
    with connections["owner"].cursor() as cursor:
        cursor.execute("ALTER TABLE compliance_archivedorder ADD CONSTRAINT test_refuse CHECK (amount < 0) NOT VALID")
    try:
        with pytest.raises(Exception, match="test_refuse"):
            retention.run_due()
        assert set(old) <= owner_ids(Order)
        assert owner_ids(ArchivedOrder) == set()
        run = RetentionRun.objects.get(policy__dataset="orders")
        assert run.status == RunStatus.RUNNING and run.error.startswith("interrupted")
    finally:
        with connections["owner"].cursor() as cursor:
            cursor.execute("ALTER TABLE compliance_archivedorder DROP CONSTRAINT test_refuse")
    # The next run resumes the same run (same cutoff) and completes it.
    [run] = retention.run_due()
    assert run.status == RunStatus.COMPLETED and run.resumed == 1 and run.rows_archived == 3
    assert owner_ids(ArchivedOrder) == set(old)


def test_anonymise_keeps_rows_without_the_link(customers):
    old = add_page_views(customers, days_old=900, count=5)
    enabled("pageviews", action=RetentionAction.ANONYMISE)
    [run] = retention.run_due()
    assert run.rows_anonymised == 5 and run.rows_deleted == 0
    with scoped(system=True):
        rows = list(PageView.objects.filter(pk__in=old).values("customer_id", "session_id", "referrer", "city"))
    assert rows == [{"customer_id": None, "session_id": "", "referrer": "", "city": "Porto"}] * 5
    [again] = retention.run_due()
    assert again.rows_anonymised == 0  # already anonymised rows are done


def test_legal_hold_stops_everything(customers):
    old = add_page_views(customers, days_old=900, count=4)
    rule = enabled("pageviews")
    rule.legal_hold, rule.legal_hold_reason = True, "Litigation hold, matter 2026-17"
    retention.save_policy(rule, {"legal_hold", "legal_hold_reason"})
    rule.refresh_from_db()
    assert rule.legal_hold_since is not None and rule.enabled
    assert retention.run_due() == []
    assert set(old) <= owner_ids(PageView)
    # The admin's "run now" for a held policy does nothing either.
    from compliance.governance_tasks import apply_retention

    assert apply_retention.apply(kwargs={"policy_id": rule.pk}).get() == []


def test_hold_placed_on_an_unfinished_run_closes_it_with_a_proof(customers, settings):
    settings.RETENTION_BATCH_SIZE = 2
    add_page_views(customers, days_old=900, count=6)
    rule = enabled("pageviews")
    run = retention._start_or_resume(rule, RunTrigger.SCHEDULE, None)
    one_batch(run, 2)  # one batch committed, then the worker "died"
    rule.legal_hold, rule.legal_hold_reason = True, "Regulator inquiry"
    retention.save_policy(rule, {"legal_hold"})
    [stopped] = retention.run_due()
    assert stopped.pk == run.pk and stopped.status == RunStatus.STOPPED
    proof = RetentionProof.objects.get(run=run)
    assert proof.document["rows"]["deleted"] == 2 and proof.document["rows_older_than_cutoff_after_run"] == 4
    assert "legal hold" in proof.document["note"]


def test_interrupted_run_resumes_with_the_same_cutoff_and_digest(customers, settings):
    settings.RETENTION_BATCH_SIZE = 3
    add_page_views(customers, days_old=900, count=10)
    rule = enabled("pageviews")
    run = retention._start_or_resume(rule, RunTrigger.SCHEDULE, None)
    one_batch(run, 3)
    one_batch(run, 3)
    cutoff = run.cutoff
    [resumed] = retention.run_due()
    assert resumed.pk == run.pk and resumed.resumed == 1 and resumed.cutoff == cutoff
    assert resumed.rows_deleted == 10 and resumed.batches == 4
    proof = RetentionProof.objects.get(run=run)
    assert proof.document["resumed"] == 1 and proof.document["rows_older_than_cutoff_after_run"] == 0


def test_rule_changed_while_unfinished_starts_a_new_run(customers, settings):
    settings.RETENTION_BATCH_SIZE = 2
    add_page_views(customers, days_old=900, count=6)
    rule = enabled("pageviews")
    run = retention._start_or_resume(rule, RunTrigger.SCHEDULE, None)
    one_batch(run, 2)
    rule = enabled("pageviews", max_age_days=1000)  # now only rows older than 1000 days go
    runs = retention.run_due()
    assert [r.status for r in runs] == [RunStatus.STOPPED, RunStatus.COMPLETED]
    assert runs[0].pk == run.pk and runs[1].rows_deleted == 0
    assert len(owner_ids(PageView)) == 4


def test_one_worker_per_policy(customers):
    add_page_views(customers, days_old=900, count=3)
    rule = enabled("pageviews")
    with connections["owner"].cursor() as cursor:
        cursor.execute("SELECT pg_advisory_lock(%s, %s)", [retention.LOCK_CLASS, rule.pk])
        try:
            assert retention.run_policy(rule) is None
        finally:
            cursor.execute("SELECT pg_advisory_unlock(%s, %s)", [retention.LOCK_CLASS, rule.pk])
    assert retention.run_policy(rule).rows_deleted == 3


def test_batch_size_is_capped_at_ten_thousand(settings):
    settings.RETENTION_BATCH_SIZE = 50_000
    assert retention.batch_size() == 10_000
    settings.RETENTION_BATCH_SIZE = 0
    assert retention.batch_size() == 1


def test_archive_is_readable_by_archive_readers_only(customers, org):
    add_orders(customers, days_old=7 * 365 + 5, count=2)
    enabled("orders")
    retention.run_due()
    assert owner_ids(ArchivedOrder)
    with scoped(org.admin):
        assert ArchivedOrder.objects.count() == 2
        # Readers read; they neither change nor remove archived rows.
        assert ArchivedOrder.objects.update(amount=0) == 0
        assert ArchivedOrder.objects.all()._raw_delete("default") == 0
    for user in (org.analyst, org.manager, org.executive, org.dpo):
        with scoped(user):
            assert ArchivedOrder.objects.count() == 0
    with scoped(None):
        assert ArchivedOrder.objects.count() == 0


def test_erasure_hook_unlinks_archived_orders(customers):
    add_orders(customers, days_old=7 * 365 + 5, count=3)
    enabled("orders")
    retention.run_due()
    target = customers[0].pk
    with scoped(system=True):
        counts = anonymise_archives([target], "default")
        assert counts == {"compliance_archivedorder": 1}
        assert not ArchivedOrder.objects.filter(customer_id=target).exists()
        assert ArchivedOrder.objects.filter(customer_id__isnull=True).count() == 1


def test_run_retention_command_dry_run_and_run(customers, capsys):
    add_page_views(customers, days_old=900, count=4)
    call_command("run_retention", "--dry-run")
    assert "No enabled retention policy" in capsys.readouterr().out
    call_command("run_retention", "--dry-run", "--all", "--json")
    previews = {p["dataset"]: p for p in json.loads(capsys.readouterr().out)}
    assert previews["pageviews"]["rows"] == 4 and previews["pageviews"]["enabled"] is False
    enabled("pageviews")
    call_command("run_retention", "--json")
    [summary] = json.loads(capsys.readouterr().out)
    assert summary["dataset"] == "pageviews" and summary["deleted"] == 4 and summary["status"] == "completed"
    assert RetentionRun.objects.get(pk=summary["run"]).trigger == RunTrigger.COMMAND


def test_retention_is_refused_inside_a_transaction(customers):
    from django.db import transaction

    rule = enabled("pageviews")
    with transaction.atomic(), pytest.raises(RuntimeError, match="own short transactions"):
        retention.run_policy(rule)


def test_governance_rights_come_from_the_policy(org):
    from accounts import policy

    assert policy.may_govern(org.admin, policy.Governance.RETENTION)
    assert policy.may_govern(org.dpo, policy.Governance.RETENTION)
    for user in (org.analyst, org.manager, org.executive):
        assert not policy.may_govern(user, policy.Governance.VIEW)
    viewer = make_user(Role.ADMIN)
    viewer.is_active = False
    viewer.save()
    assert not policy.may_govern(viewer, policy.Governance.VIEW)


def test_an_erasure_reaches_the_archive_through_its_hook(customers):
    from django.db import transaction

    from compliance import erasure

    add_orders(customers, days_old=7 * 365 + 5, count=3)
    enabled("orders")
    retention.run_due()
    target = customers[0]
    with transaction.atomic():
        counts = erasure.erase(erasure.SubjectKeys.of(email=target.email), reason="test")
    assert counts.get("compliance_archivedorder") == 1
    assert owner_ids(ArchivedOrder) and not ArchivedOrder.objects.using("owner").filter(customer_id=target.pk).exists()
    # Amounts stay: the archive keeps the order, without the person.
    assert ArchivedOrder.objects.using("owner").filter(customer_id__isnull=True).count() == 1


def test_nightly_schedule_and_tasks_are_registered(settings):
    from portal.celery import app

    entries = {v["task"] for v in settings.CELERY_BEAT_SCHEDULE.values()}
    ours = {
        "compliance.governance_tasks.apply_retention",
        "compliance.governance_tasks.take_monthly_snapshot",
        "compliance.governance_tasks.verify_backup",
    }
    assert ours <= entries and ours <= set(app.tasks)


def test_sparse_and_dense_regions_keep_every_batch_within_the_limit(customers, settings):
    """Windows grow over sparse regions and shrink (halving, then block order) over dense ones;
    no batch ever handles more than the limit."""
    settings.RETENTION_BATCH_SIZE = 100
    team = customers[0].team_id
    now = timezone.now()
    rows = [
        PageView(
            team_id=team,
            page="/",
            timestamp=now - timedelta(days=800 if (i % 7 == 0 or 2000 <= i < 2600) else 10),
        )
        for i in range(4000)
    ]
    with scoped(system=True):
        PageView.objects.bulk_create(rows)
    expired = sum(1 for i in range(4000) if i % 7 == 0 or 2000 <= i < 2600)
    enabled("pageviews")
    [run] = retention.run_due()
    assert run.rows_deleted == expired and 0 < run.largest_batch_rows <= 100
    assert run.batches >= expired // 100
    assert RetentionProof.objects.get(run=run).document["rows_older_than_cutoff_after_run"] == 0
    assert len(owner_ids(PageView)) == 4000 - expired
