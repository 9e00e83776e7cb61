"""Time-bound access grants and reveal-with-reason."""

from datetime import timedelta

import pytest
from django.utils import timezone

from audit.models import AuditEvent
from datasets import services
from datasets.models import AccessGrant

GRANTS = "/api/v1/access-grants/"
REASON = "Investigating a billing complaint ticket #4411"


def ask_team(client, team, **extra):
    return client.post(GRANTS, {"kind": "team_access", "team": team.pk, "reason": REASON, **extra}, format="json")


def test_team_grant_widens_view_until_it_expires(org, api_as):
    analyst = api_as(org.analyst)
    east_ids = org.ids(org.east)
    response = ask_team(analyst, org.east)
    assert response.status_code == 201, response.content
    grant_id = response.json()["id"]
    # A manager of another department cannot see or decide it; the admin can.
    assert api_as(org.manager).post(f"{GRANTS}{grant_id}/approve/").status_code == 404
    assert api_as(org.admin).post(f"{GRANTS}{grant_id}/approve/", {"note": "ok"}).status_code == 200
    seen = {r["id"] for r in api_as(org.analyst).get("/api/v1/customers/", {"page_size": 200}).json()["results"]}
    assert east_ids <= seen
    # Past its expiry the grant stops working at once (checked on use), and the beat task closes it.
    AccessGrant.objects.filter(pk=grant_id).update(expires_at=timezone.now() - timedelta(seconds=1))
    seen = {r["id"] for r in api_as(org.analyst).get("/api/v1/customers/", {"page_size": 200}).json()["results"]}
    assert not east_ids & seen
    assert services.expire_grants() == 1
    assert AccessGrant.objects.get(pk=grant_id).status == "expired"


def test_grant_needs_a_reason_and_sane_duration(org, api_as):
    analyst = api_as(org.analyst)
    assert ask_team(analyst, org.east, reason="because").status_code == 400
    assert ask_team(analyst, org.east, duration_hours=1000).status_code == 400
    bad_team = analyst.post(GRANTS, {"kind": "team_access", "team": 999999, "reason": REASON}, format="json")
    assert bad_team.status_code == 400
    assert analyst.post(GRANTS, {"kind": "superuser", "reason": REASON}, format="json").status_code == 400
    assert AccessGrant.objects.count() == 0


def test_nobody_approves_their_own_request_and_decisions_are_final(org, api_as):
    admin = api_as(org.admin)
    own = admin.post(GRANTS, {"kind": "team_access", "team": org.east.pk, "reason": REASON}, format="json")
    # Admin's view scope is "all": temporary grants only extend team-scoped roles.
    assert own.status_code == 403
    grant_id = ask_team(api_as(org.analyst), org.south).json()["id"]
    assert api_as(org.manager).post(f"{GRANTS}{grant_id}/refuse/", {"note": "no"}).status_code == 200
    again = admin.post(f"{GRANTS}{grant_id}/approve/")
    assert again.status_code == 400
    assert AccessGrant.objects.get(pk=grant_id).status == "refused"


def test_executive_cannot_ask_for_rows(org, api_as):
    assert ask_team(api_as(org.executive), org.north).status_code == 403


def reveal(client, customer, field="email", reason=REASON):
    return client.post(f"/api/v1/customers/{customer.pk}/reveal/", {"field": field, "reason": reason}, format="json")


def test_reveal_needs_an_approved_grant_and_is_audited(org, api_as):
    customer = org.customers["North"][0]
    analyst = api_as(org.analyst)
    assert reveal(analyst, customer).status_code == 403
    response = analyst.post(
        GRANTS, {"kind": "unmask_customer", "customer": customer.pk, "reason": REASON}, format="json"
    )
    assert response.status_code == 201
    assert api_as(org.manager).post(f"{GRANTS}{response.json()['id']}/approve/").status_code == 200
    revealed = reveal(analyst, customer)
    assert revealed.status_code == 200
    assert revealed.json() == {"field": "email", "value": customer.email}
    # Only that customer: another one stays masked.
    assert reveal(analyst, org.customers["North"][1]).status_code == 403
    events = AuditEvent.objects.filter(action="UNMASK", actor_id=org.analyst.pk)
    assert events.filter(success=True, object_ids=[str(customer.pk)]).count() == 1
    assert events.filter(success=False).count() >= 1


def test_reveal_bad_input_and_out_of_scope(org, api_as):
    analyst = api_as(org.analyst)
    assert reveal(analyst, org.customers["North"][0], field="card_token").status_code == 400
    assert reveal(analyst, org.customers["North"][0], reason="x").status_code == 400
    assert reveal(analyst, org.customers["East"][0]).status_code == 404


@pytest.mark.parametrize("who", ["manager", "admin"])
def test_roles_seeing_clear_values_reveal_without_grant(org, api_as, who):
    customer = org.customers["North"][0]
    assert reveal(api_as(getattr(org, who)), customer, field="phone").json()["value"] == customer.phone
