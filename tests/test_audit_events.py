"""Each security action leaves exactly one well-formed event, with actor, ip and request id,
including refused requests whose transaction was rolled back."""

import pytest
from django.test import Client
from rest_framework.test import APIClient

from audit import services
from audit.choices import AuditAction
from audit.models import AuditEvent
from audit.signals import username_hash
from tests.conftest import BOTH_DATABASES, Org, token_client
from tests.factories import PASSWORD, browser_login

pytestmark = pytest.mark.django_db(transaction=True, databases=BOTH_DATABASES)
LIST = "/api/v1/customers/"


@pytest.fixture
def org_tx():
    return Org(customers_per_team=3)


def new_events(since_id: int, **filters) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(id__gt=since_id, **filters).order_by("id"))


def last_id() -> int:
    return AuditEvent.objects.order_by("-id").values_list("id", flat=True).first() or 0


def test_api_list_is_one_view_event_with_the_row_count(org_tx):
    client = token_client(org_tx.analyst)
    start = last_id()
    response = client.get(LIST, REMOTE_ADDR="192.0.2.10")
    assert response.status_code == 200
    [event] = new_events(start, action=AuditAction.VIEW)
    assert event.actor_id == org_tx.analyst.pk and event.actor_email == org_tx.analyst.email
    assert event.resource == "customer" and event.rows == 3
    assert sorted(event.object_ids) == sorted(str(i) for i in org_tx.ids(org_tx.north))
    assert event.ip_address == "192.0.2.10"
    assert event.request_id == response["X-Request-ID"]
    assert event.success and len(event.hash) == 64
    record = event.as_record()
    assert {"timestamp", "user", "action", "resource", "ip_address", "success"} <= set(record)


def test_api_search_and_detail(org_tx):
    client = token_client(org_tx.manager)
    customer = org_tx.customers["South"][0]
    start = last_id()
    assert client.get(LIST, {"email": customer.email}).status_code == 200
    assert client.get(f"{LIST}{customer.pk}/").status_code == 200
    search, view = new_events(start, resource="customer")
    assert (search.action, search.rows, search.object_ids) == (AuditAction.SEARCH, 1, [str(customer.pk)])
    assert (view.action, view.rows, view.object_ids) == (AuditAction.VIEW, 1, [str(customer.pk)])
    # The searched email is not in the trail, only the id that matched.
    assert customer.email not in str(search.as_export())


def test_refused_api_request_keeps_exactly_one_denial_after_its_rollback(org_tx):
    client = token_client(org_tx.executive)
    start = last_id()
    response = client.get(LIST, REMOTE_ADDR="192.0.2.11")
    assert response.status_code == 403
    [event] = new_events(start, action=AuditAction.PERMISSION_DENIED)
    assert event.actor_id == org_tx.executive.pk
    assert event.resource == "customer" and not event.success
    assert event.ip_address == "192.0.2.11"
    assert not new_events(start, action=AuditAction.VIEW)


def test_out_of_scope_detail_is_404_and_no_view_event(org_tx):
    client = token_client(org_tx.analyst)
    start = last_id()
    assert client.get(f"{LIST}{org_tx.customers['East'][0].pk}/").status_code == 404
    assert not new_events(start, action=AuditAction.VIEW)


def test_failed_token_login_is_one_event_without_the_password(org_tx):
    start = last_id()
    secret = "Wrong-Password-Canary-1"  # pragma: allowlist secret
    response = APIClient().post(
        "/api/v1/auth/token/", {"email": org_tx.analyst.email, "password": secret}, REMOTE_ADDR="192.0.2.12"
    )
    assert response.status_code == 400
    [event] = new_events(start, action=AuditAction.LOGIN_FAILED)
    assert event.actor_id == org_tx.analyst.pk  # an existing account was tried
    assert event.extra == {"username_hash": username_hash(org_tx.analyst.email)}
    assert event.ip_address == "192.0.2.12" and not event.success
    assert secret not in str(event.as_export())


def test_failed_login_for_an_unknown_name_keeps_only_a_keyed_hash(org_tx):
    start = last_id()
    typed = "nobody.here@example.test"
    response = APIClient().post("/api/v1/auth/token/", {"email": typed, "password": "whatever-it-was"})
    assert response.status_code == 400
    [event] = new_events(start, action=AuditAction.LOGIN_FAILED)
    assert event.actor_id is None and event.actor_email == ""
    assert typed not in str(event.as_export())
    assert event.extra["username_hash"] == username_hash(typed) != username_hash("other@example.test")


def test_token_login_records_login_and_token_created(org_tx):
    start = last_id()
    response = APIClient().post("/api/v1/auth/token/", {"email": org_tx.analyst.email, "password": PASSWORD})
    assert response.status_code == 200, response.content
    events = new_events(start, actor_id=org_tx.analyst.pk)
    assert [e.action for e in events].count(AuditAction.LOGIN) == 1
    assert [e.action for e in events].count(AuditAction.TOKEN_CREATED) == 1
    assert response.json()["token"] not in str([e.as_export() for e in events])


def test_browser_login_and_logout(org_tx):
    start = last_id()
    client = browser_login(org_tx.analyst)
    [login] = new_events(start, action=AuditAction.LOGIN)
    assert login.actor_id == org_tx.analyst.pk and login.resource == "session"
    client.post("/accounts/logout/")
    [logout] = new_events(start, action=AuditAction.LOGOUT)
    assert logout.actor_id == org_tx.analyst.pk


def test_browser_login_failure(org_tx):
    start = last_id()
    response = Client().post("/accounts/login/", {"username": org_tx.manager.email, "password": "not-the-password"})
    assert response.status_code in (200, 400)
    [event] = new_events(start, action=AuditAction.LOGIN_FAILED)
    assert event.actor_id == org_tx.manager.pk and event.resource == "session"


def test_admin_changelist_search_and_detail_are_one_event_each(org_tx):
    client = browser_login(org_tx.manager)
    north = org_tx.customers["North"][0]
    start = last_id()
    assert client.get("/admin/datasets/customer/").status_code == 200
    assert client.get("/admin/datasets/customer/", {"q": north.email}).status_code == 200
    assert client.get(f"/admin/datasets/customer/{north.pk}/change/").status_code == 200
    listed, searched, detail = new_events(start, resource="customer")
    assert (listed.action, listed.rows) == (AuditAction.VIEW, 6)
    assert sorted(listed.object_ids) == sorted(str(i) for i in org_tx.ids(org_tx.north, org_tx.south))
    assert (searched.action, searched.object_ids) == (AuditAction.SEARCH, [str(north.pk)])
    assert (detail.action, detail.object_ids) == (AuditAction.VIEW, [str(north.pk)])


def test_a_denied_admin_page_is_one_denial(org_tx):
    client = browser_login(org_tx.manager)
    start = last_id()
    response = client.get("/admin/accounts/user/")
    assert response.status_code == 403
    [event] = new_events(start, action=AuditAction.PERMISSION_DENIED)
    assert event.actor_id == org_tx.manager.pk


def test_outside_a_request_an_event_is_written_at_once():
    start = last_id()
    event = services.record(AuditAction.KEY_ROTATED, resource="keys", reason="scheduled")
    assert event.pk is not None
    assert new_events(start)[0].pk == event.pk


def test_inside_a_unit_events_wait_for_its_end_and_survive_its_rollback():
    from django.db import transaction

    start = last_id()
    with pytest.raises(RuntimeError), services.unit_of_work():
        with transaction.atomic():
            services.record(AuditAction.PERMISSION_DENIED, resource="report", success=False)
            assert not new_events(start)  # buffered, not yet written
            raise RuntimeError("the work failed")
    [event] = new_events(start)
    assert event.action == AuditAction.PERMISSION_DENIED


def test_a_scoped_task_carries_actor_request_id_and_buffers_its_events(org_tx):
    from celery import shared_task

    from portal.tasks import ScopedTask

    @shared_task(base=ScopedTask, bind=True, name="tests.audit_probe")
    def probe(self):
        from portal.tasks import current_user

        services.record(AuditAction.REPORT_RUN, actor=current_user(), resource="report", rows=2)
        return AuditEvent.objects.filter(action=AuditAction.REPORT_RUN).count()

    start = last_id()
    seen_inside = probe.apply(
        kwargs={"acting_user_id": org_tx.analyst.pk}, headers={"portal_request_id": "req-task-12345678"}
    ).get()
    assert seen_inside == 0  # appended after the task's transaction, not inside it
    [event] = new_events(start, action=AuditAction.REPORT_RUN)
    assert event.actor_id == org_tx.analyst.pk
    assert event.request_id == "req-task-12345678"


def test_task_arguments_with_personal_data_are_refused_before_the_broker():
    from audit.task_context import PersonalDataInTaskArguments
    from datasets.tasks import run_export

    with pytest.raises(PersonalDataInTaskArguments):
        run_export.apply_async(args=["someone@example.org"], kwargs={"acting_user_id": 1})
