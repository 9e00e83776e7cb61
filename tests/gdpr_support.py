"""Shared pieces of the GDPR subject-request tests: a subject with canary values, the admin and
API steps of a request, waiting for the worker, and the every-table trace scan."""

import time
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal

from django.contrib.auth.models import Group
from django.db import connections
from django.utils import timezone
from psycopg import sql

from accounts.policy import Duty
from compliance import consent
from compliance.models import SubjectRequest
from datasets.models import AccessGrant
from portal.field_crypto import DecryptionError, decrypt_value
from portal.security_context import scoped
from tests.factories import CustomerFactory, OrderFactory, PageViewFactory, browser_login, make_user

REQUESTS_URL = "/api/v1/privacy-requests/"
ADMIN_URL = "/admin/compliance/subjectrequest/"


@dataclass
class Subject:
    """One person with two customer rows (two teams, same email), orders, page views, consent."""

    tag: str
    name: str
    email: str
    phone: str
    customers: list = field(default_factory=list)
    orders: list = field(default_factory=list)
    page_views: int = 0

    @property
    def ids(self) -> list[int]:
        return [c.pk for c in self.customers]

    def canaries(self) -> list[str]:
        digits = "".join(ch for ch in self.phone if ch.isdigit())
        return [self.name, f"Quixotic{self.tag}", self.email, self.email.split("@")[0], self.phone, digits]


def make_subject(org, tag: str, *, page_views: int = 4, old_order: bool = True) -> Subject:
    """A subject whose name, email and phone appear nowhere else (canaries for the trace scan)."""
    subject = Subject(
        tag=tag,
        name=f"Zelda Quixotic{tag}",
        email=f"zelda.quixotic.{tag.lower()}@canary.example",
        phone=f"+44 7700 9{sum(map(ord, tag)) % 100000:05d}",
    )
    for team in (org.north, org.east):
        customer = CustomerFactory(team=team, name=subject.name, email=subject.email, phone=subject.phone)
        subject.customers.append(customer)
        subject.orders.append(OrderFactory(customer=customer, amount=Decimal("42.50"), status="paid"))
        for _ in range(page_views // 2):
            PageViewFactory(customer=customer, page="/pricing", city="Lisbon")
            subject.page_views += 1
    if old_order:
        aged = OrderFactory(customer=subject.customers[0], amount=Decimal("9.99"), status="paid")
        with scoped(system=True):
            type(aged).objects.filter(pk=aged.pk).update(created_at=timezone.now() - timedelta(days=9 * 365))
        subject.orders.append(aged)
    with scoped(system=True):
        consent.grant(subject.ids, "analytics", notice_version="2024-01")
        AccessGrant.objects.create(
            requester=org.analyst,
            kind="unmask_customer",
            customer=subject.customers[0],
            reason=f"Call back {subject.name} about order, email {subject.email}",
        )
    return subject


def intake_user():
    """An integration account given the intake right (the PrivacyIntake duty group)."""
    user = make_user(Duty.PRIVACY_INTAKE.value)
    assert Group.objects.filter(name=Duty.PRIVACY_INTAKE.value, user=user).exists()
    return user


def file_request(client, kind: str, subject: Subject, **extra):
    body = {"type": kind, "email": subject.email, "channel": "web_form", **extra}
    return client.post(REQUESTS_URL, body, format="json")


def admin_act(client, request_id: int, action: str, **data):
    return client.post(f"{ADMIN_URL}{request_id}/act/{action}/", data)


def dpo_admin(dpo):
    return browser_login(dpo)


def wait_status(request_id: int, statuses, timeout: float = 30.0) -> SubjectRequest:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        request = SubjectRequest.objects.get(pk=request_id)
        if request.status in statuses:
            return request
        time.sleep(0.1)
    raise AssertionError(f"request {request_id} stayed {request.status}: {request.error_step} {request.error_detail}")


def run_through_admin(client, request_id: int) -> None:
    """verify -> approve -> run, as the DPO presses the buttons."""
    for action in ("verify", "approve", "run"):
        response = admin_act(client, request_id, action)
        assert response.status_code == 302, response.content
        messages = [m.message for m in response.wsgi_request._messages]
        assert not any("cannot" in m for m in messages), messages


# --- The trace scan -------------------------------------------------------------------------
_COLUMNS = """
SELECT c.table_name, c.column_name, c.data_type
FROM information_schema.columns c
JOIN information_schema.tables t ON t.table_schema = c.table_schema AND t.table_name = c.table_name
WHERE c.table_schema = 'public' AND t.table_type = 'BASE TABLE'
  AND c.data_type IN ('text', 'character varying', 'character', 'bytea', 'json', 'jsonb')
ORDER BY c.table_name, c.column_name
"""


def traces(values: list[str]) -> list[tuple[str, str]]:
    """(table, column) of every text, JSON and bytea value in the public schema that contains one of
    ``values`` (case-insensitive); bytea is decrypted with the field key where it decrypts (the
    column's own context), else searched as raw bytes.  Read as the owner: no row is hidden."""
    wanted = [v.lower() for v in values if v]
    found = []
    with connections["owner"].cursor() as cursor:
        cursor.execute(_COLUMNS)
        columns = cursor.fetchall()
        for table, column, data_type in columns:
            selector = (
                sql.Identifier(column) if data_type == "bytea" else sql.SQL("{}::text").format(sql.Identifier(column))
            )
            cursor.execute(
                sql.SQL("SELECT {} FROM {} WHERE {} IS NOT NULL").format(
                    selector, sql.Identifier(table), sql.Identifier(column)
                )
            )
            for (value,) in cursor.fetchall():
                if data_type == "bytea":
                    blob = bytes(value)
                    try:
                        text = decrypt_value(blob, f"{table}.{column}".encode())
                    except (DecryptionError, ValueError):
                        text = blob.decode("latin-1")
                else:
                    text = value
                lowered = text.lower()
                if any(v in lowered for v in wanted):
                    found.append((table, column))
                    break
    return found
