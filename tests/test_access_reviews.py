"""Quarterly access reviews: one per manager listing their people's role, object grants and
temporary grants; the manager confirms or revokes each line in the admin; overdue reviews are
flagged; each review exports as CSV evidence."""

import csv
import io
from datetime import date, timedelta

import pytest
from django.apps import apps
from django.test import Client
from django.utils import timezone
from guardian.models import UserObjectPermission
from guardian.shortcuts import assign_perm

from accounts import policy, selectors, services
from accounts.choices import ReviewDecision, ReviewLineKind
from accounts.models import AccessReview, AccessReviewLine, UserSession
from accounts.policy import Role
from accounts.tasks import create_access_reviews
from audit.models import AuditEvent
from tests.conftest import token_client
from tests.factories import DepartmentFactory, browser_login, make_user

CHANGE = "/admin/accounts/accessreview/{}/change/"
CSV = "/admin/accounts/accessreview/{}/csv/"
CHANGELIST = "/admin/accounts/accessreview/"


def _temporary_grant(user, team):
    AccessGrant = apps.get_model("datasets", "AccessGrant")
    return AccessGrant.objects.create(
        requester=user,
        kind="team_access",
        team=team,
        reason="Covering for a colleague this week",
        status="approved",
        expires_at=timezone.now() + timedelta(hours=8),
    )


@pytest.fixture
def review_org(org):
    """The org plus: an object grant and a temporary grant for the Sales analyst, a second
    manager for Ops, and an admin filed under Sales (whom a manager never reviews)."""
    org.ops_manager = make_user(Role.MANAGER, department=org.ops)
    org.sales_admin = make_user(Role.ADMIN, department=org.sales)
    assign_perm("accounts.view_team", org.analyst, org.south)
    org.object_grant = UserObjectPermission.objects.get(user=org.analyst)
    org.temporary_grant = _temporary_grant(org.analyst, org.east)
    return org


def test_the_policy_says_who_reviews(org):
    assert policy.ACCESS_REVIEWER_ROLES == {Role.MANAGER}
    assert policy.is_access_reviewer(org.manager) and not policy.is_access_reviewer(org.admin)
    assert policy.may_oversee_access_reviews(org.admin) and not policy.may_oversee_access_reviews(org.manager)


def test_a_managers_lines_cover_role_object_grants_and_temporary_grants(review_org):
    org = review_org
    items = selectors.access_review_lines(org.manager)
    assert {i.subject for i in items} == {org.analyst}
    by_kind = {i.kind: i for i in items}
    assert by_kind[ReviewLineKind.ROLE].grant_ref == "Analyst"
    assert by_kind[ReviewLineKind.OBJECT_PERMISSION].grant_ref == f"uop:{org.object_grant.pk}"
    assert "view_team" in by_kind[ReviewLineKind.OBJECT_PERMISSION].description
    assert by_kind[ReviewLineKind.TEMPORARY_GRANT].grant_ref == f"datasets.accessgrant:{org.temporary_grant.pk}"
    # The Ops manager reviews Ops people only; nobody reviews an admin or a fellow manager here.
    assert {i.subject for i in selectors.access_review_lines(org.ops_manager)} == {org.other_analyst}


def test_other_apps_can_add_review_lines(review_org):
    org = review_org
    source = lambda people: [selectors.ReviewItem(p, "vpn", "vpn:all", "VPN access") for p in people]  # noqa: E731
    selectors.register_review_source(source)
    try:
        kinds = {i.kind for i in selectors.access_review_lines(org.manager)}
    finally:
        selectors._REVIEW_SOURCES.remove(source)
    assert "vpn" in kinds


def test_the_beat_task_creates_one_review_per_manager_per_quarter(review_org):
    org = review_org
    result = create_access_reviews.apply()
    assert result.successful(), result.traceback
    assert result.get() == 2
    today = timezone.localdate()
    period, start = services.quarter_of(today)
    reviews = {r.reviewer_id: r for r in AccessReview.objects.filter(period=period)}
    assert set(reviews) == {org.manager.pk, org.ops_manager.pk}
    review = reviews[org.manager.pk]
    # Due 30 days after the quarter began (or after creation, for a review made late in it).
    assert review.period_start == start and review.due_on == max(start, today) + timedelta(days=30)
    assert review.lines.count() == 3 and not review.is_overdue
    # Idempotent: running again (it runs daily) adds nothing.
    assert create_access_reviews.apply().get() == 0
    assert AccessReview.objects.count() == 2


def test_quarters_and_due_dates():
    assert services.quarter_of(date(2026, 11, 5)) == ("2026-Q4", date(2026, 10, 1))
    assert services.quarter_of(date(2026, 1, 1)) == ("2026-Q1", date(2026, 1, 1))
    assert services.quarter_of(date(2026, 6, 30)) == ("2026-Q2", date(2026, 4, 1))


def test_a_review_with_nobody_to_review_is_complete_at_once(org):
    lonely = make_user(Role.MANAGER, department=DepartmentFactory(name="Empty"))
    services.create_access_reviews()
    review = AccessReview.objects.get(reviewer=lonely)
    assert review.lines.count() == 0 and review.completed_at is not None


def test_overdue_reviews_are_flagged(review_org):
    org = review_org
    services.create_access_reviews(today=date(2020, 2, 1))
    old = AccessReview.objects.get(reviewer=org.manager, period="2020-Q1")
    assert old.is_overdue and AccessReview.objects.overdue().filter(pk=old.pk).exists()
    services.create_access_reviews()
    current = AccessReview.objects.exclude(period="2020-Q1").get(reviewer=org.manager)
    assert not current.is_overdue
    admin = browser_login(org.admin)
    listed = admin.get(CHANGELIST, {"overdue": "yes"})
    assert listed.status_code == 200
    assert list(listed.context["cl"].result_list) == list(AccessReview.objects.overdue().order_by("-period_start"))


def _review(org) -> AccessReview:
    services.create_access_reviews()
    return AccessReview.objects.get(reviewer=org.manager)


def _decide(client, review, decisions: dict[int, str], notes: dict[int, str] | None = None):
    page = client.get(CHANGE.format(review.pk))
    assert page.status_code == 200
    formset = page.context["inline_admin_formsets"][0].formset
    data = {f"{formset.prefix}-{k}": v for k, v in formset.management_form.initial.items()}
    for i, form in enumerate(formset.forms):
        line = form.instance
        data[f"{formset.prefix}-{i}-id"] = line.pk
        data[f"{formset.prefix}-{i}-review"] = review.pk
        data[f"{formset.prefix}-{i}-decision"] = decisions.get(line.pk, line.decision)
        data[f"{formset.prefix}-{i}-note"] = (notes or {}).get(line.pk, line.note)
    return client.post(CHANGE.format(review.pk), data)


def test_the_manager_confirms_and_revokes_lines_in_the_admin(review_org):
    org = review_org
    review = _review(org)
    lines = {line.kind: line for line in review.lines.all()}
    analyst_browser = browser_login(org.analyst)
    analyst_api = token_client(org.analyst)
    manager = browser_login(org.manager)

    response = _decide(
        manager,
        review,
        {
            lines[ReviewLineKind.OBJECT_PERMISSION].pk: ReviewDecision.CONFIRMED,
            lines[ReviewLineKind.TEMPORARY_GRANT].pk: ReviewDecision.REVOKED,
        },
        notes={lines[ReviewLineKind.OBJECT_PERMISSION].pk: "still needed for the South handover"},
    )
    assert response.status_code == 302, response.content
    org.temporary_grant.refresh_from_db()
    assert org.temporary_grant.status == "revoked" and org.temporary_grant.decided_by_id == org.manager.pk
    assert UserObjectPermission.objects.filter(pk=org.object_grant.pk).exists()
    review.refresh_from_db()
    assert review.completed_at is None  # the role line is still pending

    response = _decide(manager, review, {lines[ReviewLineKind.ROLE].pk: ReviewDecision.REVOKED})
    assert response.status_code == 302
    org.analyst.refresh_from_db()
    org.analyst._portal_role = False
    assert selectors.role_of(org.analyst) is None and not policy.can(org.analyst, policy.Action.VIEW)
    assert analyst_browser.get("/accounts/").status_code == 302  # sessions ended with the role
    assert analyst_api.get("/api/v1/customers/").status_code == 401
    assert not UserSession.objects.filter(user_id=org.analyst.pk).exists()

    review.refresh_from_db()
    assert review.completed_at is not None
    decided = {line.kind: line for line in review.lines.all()}
    assert decided[ReviewLineKind.OBJECT_PERMISSION].note == "still needed for the South handover"
    assert all(line.decided_by_id == org.manager.pk and line.decided_at for line in decided.values())
    revoked = AuditEvent.objects.filter(action="ACCESS_REVOKED", actor_id=org.manager.pk)
    assert {e.resource for e in revoked} == {"access_review:temporary_grant", "access_review:role"}
    reviewed = AuditEvent.objects.filter(action="ACCESS_REVIEWED", actor_id=org.manager.pk)
    assert reviewed.filter(resource="access_review_line").count() == 3
    assert reviewed.filter(resource="access_review", object_ids=[str(review.pk)]).count() == 1


def test_revoking_an_object_grant_removes_it(review_org):
    org = review_org
    review = _review(org)
    line = review.lines.get(kind=ReviewLineKind.OBJECT_PERMISSION)
    services.decide_review_line(org.manager, line.pk, ReviewDecision.REVOKED)
    assert not UserObjectPermission.objects.filter(pk=org.object_grant.pk).exists()


def test_a_decision_is_final(review_org):
    org = review_org
    review = _review(org)
    line = review.lines.get(kind=ReviewLineKind.ROLE)
    services.decide_review_line(org.manager, line.pk, ReviewDecision.CONFIRMED)
    with pytest.raises(services.ReviewError):
        services.decide_review_line(org.manager, line.pk, ReviewDecision.REVOKED)
    manager = browser_login(org.manager)
    _decide(manager, review, {line.pk: ReviewDecision.REVOKED})
    assert AccessReviewLine.objects.get(pk=line.pk).decision == ReviewDecision.CONFIRMED
    assert selectors.role_of(type(org.analyst).objects.get(pk=org.analyst.pk)) == Role.ANALYST


@pytest.mark.parametrize("decision", ["", "maybe", "pending"])
def test_bad_decisions_are_refused_by_the_service(review_org, decision):
    org = review_org
    line = _review(org).lines.get(kind=ReviewLineKind.ROLE)
    with pytest.raises(services.ReviewError):
        services.decide_review_line(org.manager, line.pk, decision)
    assert AccessReviewLine.objects.get(pk=line.pk).decision == ReviewDecision.PENDING


@pytest.mark.parametrize("decision", ["", "maybe", "<script>"])
def test_bad_decisions_in_the_admin_change_nothing(review_org, decision):
    org = review_org
    review = _review(org)
    line = review.lines.get(kind=ReviewLineKind.ROLE)
    response = _decide(browser_login(org.manager), review, {line.pk: decision})
    assert response.status_code == 200  # the form comes back with its errors, nothing stored
    assert "errorlist" in response.content.decode()
    assert AccessReviewLine.objects.get(pk=line.pk).decision == ReviewDecision.PENDING


def test_only_the_reviewer_decides(review_org):
    org = review_org
    review = _review(org)
    line = review.lines.first()
    for other in (org.ops_manager, org.admin, org.analyst):
        with pytest.raises(services.ReviewError):
            services.decide_review_line(other, line.pk, ReviewDecision.REVOKED)
    # Another manager does not even see the review; an admin reads it but cannot change it.
    ops = browser_login(org.ops_manager)
    assert ops.get(CHANGE.format(review.pk)).status_code == 404
    assert ops.get(CSV.format(review.pk)).status_code == 404
    assert review.pk not in [r.pk for r in ops.get(CHANGELIST).context["cl"].result_list]
    admin = browser_login(org.admin)
    page = admin.get(CHANGE.format(review.pk))
    assert page.status_code == 200 and 'name="lines-0-decision"' not in page.content.decode()
    assert admin.post(CHANGE.format(review.pk), {}).status_code == 403
    assert AccessReviewLine.objects.get(pk=line.pk).decision == ReviewDecision.PENDING


def test_roles_without_reviews_cannot_reach_them(review_org):
    org = review_org
    review = _review(org)
    for who in (org.analyst, org.executive):
        response = browser_login(who).get(CHANGE.format(review.pk))
        assert response.status_code == 302 and "/admin/login/" in response["Location"]
    assert Client().get(CSV.format(review.pk)).status_code == 302


def test_each_review_exports_as_csv_evidence(review_org):
    org = review_org
    review = _review(org)
    line = review.lines.get(kind=ReviewLineKind.ROLE)
    services.decide_review_line(org.manager, line.pk, ReviewDecision.CONFIRMED, note="=HYPERLINK(evil)")
    for who in (org.manager, org.admin):
        response = browser_login(who).get(CSV.format(review.pk))
        assert response.status_code == 200
        assert response["Content-Type"].startswith("text/csv")
        assert f"access-review-{review.period}-{review.pk}-" in response["Content-Disposition"]
        rows = list(csv.reader(io.StringIO(response.content.decode())))
        assert rows[0] == services.CSV_COLUMNS
        assert len(rows) == 1 + review.lines.count()
        role_row = next(r for r in rows[1:] if r[7] == ReviewLineKind.ROLE)
        assert role_row[2] == org.manager.email and role_row[5] == org.analyst.email
        assert role_row[10] == "confirmed" and role_row[11] == org.manager.email
        assert role_row[13] == "'=HYPERLINK(evil)"  # never a live formula in a spreadsheet
    exports = AuditEvent.objects.filter(action="EXPORT_DATA", resource="access_review")
    assert exports.count() == 2 and all(e.rows == 3 for e in exports)


def test_unknown_review_ids_are_404(review_org):
    admin = browser_login(review_org.admin)
    for path in (CSV.format(999999), CHANGE.format(999999)):
        assert admin.get(path).status_code in (302, 404)
    assert admin.get(CSV.format(999999)).status_code == 404
    assert admin.get("/admin/accounts/accessreview/abc/csv/").status_code in (302, 404)
