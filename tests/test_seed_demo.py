"""``manage.py seed_demo``: the demo organisation and customers, idempotent, password shown once."""

import io

import pytest
from django.core.management import call_command
from django.db import connection
from django.db.models import Count
from psycopg import sql

from accounts.models import Department, Team, User
from datasets import demo
from datasets.models import Customer
from portal.security_context import scoped

DEMO_USERS = 17  # admin, executive, dpo, 2 managers, 2 analysts in each of 6 teams


def seed(**kwargs) -> str:
    out = io.StringIO()
    call_command("seed_demo", stdout=out, **kwargs)
    return out.getvalue()


def customer_count() -> int:
    with scoped(system=True):
        return Customer.objects.count()


def password_lines(out: str) -> list[str]:
    return [line for line in out.splitlines() if "password" in line.lower()]


@pytest.fixture
def no_demo_password(monkeypatch):
    monkeypatch.delenv("DEMO_PASSWORD", raising=False)


def test_demo_account_list_matches_its_description():
    accounts = demo.demo_accounts()
    assert len(accounts) == DEMO_USERS
    assert len({a.email for a in accounts}) == DEMO_USERS


def test_seed_creates_the_organisation_and_customers(db, no_demo_password):
    seed(customers=60)
    assert Department.objects.count() == 2
    assert Team.objects.count() == 6
    assert User.objects.count() == DEMO_USERS
    assert customer_count() == 60
    # Customers are RLS-protected: the login role with no scope sees none of them.
    assert Customer.objects.count() == 0


def test_every_team_has_customers_and_a_manager(db, no_demo_password):
    seed(customers=60)
    with scoped(system=True):
        per_team = dict(Customer.objects.values_list("team__name").annotate(n=Count("id")))
    assert set(per_team) == set(Team.objects.values_list("name", flat=True))
    assert all(n > 0 for n in per_team.values())
    assert sum(per_team.values()) == 60
    for team in Team.objects.select_related("manager", "department"):
        assert team.manager is not None
        assert team.manager.department == team.department
        assert team.manager.groups.filter(name="Manager").exists()


def test_demo_roles(db, no_demo_password):
    seed(customers=0)
    by_role = dict(User.objects.values_list("groups__name").annotate(n=Count("id")))
    assert by_role == {"Admin": 1, "Executive": 1, "DPO": 1, "Manager": 2, "Analyst": 12}
    assert not User.objects.filter(is_superuser=True).exists()
    staff = set(User.objects.filter(is_staff=True).values_list("groups__name", flat=True))
    assert staff == {"Admin", "Manager", "DPO"}  # the DPO works subject requests in the admin
    for team in Team.objects.all():
        members = team.members.all()
        assert len(members) == 2
        assert all(m.department_id == team.department_id for m in members)


def test_second_run_adds_nothing(db, no_demo_password):
    seed(customers=60)
    users_before = set(User.objects.values_list("pk", "password"))
    with scoped(system=True):
        customers_before = set(Customer.objects.values_list("pk", flat=True))

    out = seed(customers=60)

    assert "0 customers added" in out
    assert "Demo accounts" not in out
    assert password_lines(out) == []
    assert set(User.objects.values_list("pk", "password")) == users_before  # no new user, no reset password
    with scoped(system=True):
        assert set(Customer.objects.values_list("pk", flat=True)) == customers_before
    assert (Department.objects.count(), Team.objects.count()) == (2, 6)


def test_second_run_tops_up_to_a_larger_total(db, no_demo_password):
    seed(customers=60)
    out = seed(customers=75)
    assert "15 customers added" in out
    assert customer_count() == 75
    assert User.objects.count() == DEMO_USERS


def test_smaller_total_removes_nothing(db, no_demo_password):
    seed(customers=60)
    seed(customers=10)
    assert customer_count() == 60


def test_generated_password_is_printed_once_and_works(db, no_demo_password):
    out = seed(customers=0)
    lines = password_lines(out)
    assert len(lines) == 1, out
    password = lines[0].rsplit(" ", 1)[-1]
    assert out.count(password) == 1
    users = list(User.objects.all())
    assert len(users) == DEMO_USERS
    assert all(u.check_password(password) for u in users)


def test_generated_password_differs_between_fresh_databases(db, no_demo_password):
    first = password_lines(seed(customers=0))[0].rsplit(" ", 1)[-1]
    User.objects.all().delete()
    second = password_lines(seed(customers=0))[0].rsplit(" ", 1)[-1]
    assert first != second


def test_password_from_environment_is_used_and_not_printed(db, monkeypatch):
    chosen = "demo-Password-from-env-31415"
    monkeypatch.setenv("DEMO_PASSWORD", chosen)
    out = seed(customers=0)
    assert chosen not in out
    assert password_lines(out) == []
    assert "Demo accounts" in out  # the accounts are still listed
    admin = User.objects.get(email=f"admin@{demo.DOMAIN}")
    assert admin.check_password(chosen)


def test_customers_are_encrypted_and_indexed(db, no_demo_password):
    seed(customers=6)
    with scoped(system=True):
        customers = list(Customer.objects.all())
        with connection.cursor() as cursor:
            cursor.execute(sql.SQL("SELECT name, email, phone FROM {}").format(sql.Identifier(Customer._meta.db_table)))
            stored = b"".join(bytes(value) for row in cursor.fetchall() for value in row)
    assert len(customers) == 6
    for customer in customers:
        for plain in (customer.name, customer.email, customer.phone):
            assert plain.encode() not in stored
    assert len({c.email for c in customers}) == 6
    for customer in customers:
        assert customer.email_index and customer.phone_index
        assert len(customer.card_last4) == 4 and customer.card_last4.isdigit()
        assert customer.card_token.startswith("tok_")


def test_negative_total_is_refused(db):
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="zero or more"):
        seed(customers=-1)
