"""Demo data: departments, teams, one account per role and fake customers (fixed Faker seed)."""

import random
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal

from django.db import transaction
from django.utils import timezone
from faker import Faker

from accounts import services as accounts
from accounts.models import Department, Team, User
from accounts.policy import Duty, Role
from datasets.choices import Device, OrderStatus
from datasets.models import Customer, Order, PageView
from portal import bulk_rows
from portal.security_context import scoped

DEPARTMENTS = {"Sales": ["North", "South", "West"], "Marketing": ["Brand", "Growth", "Events"]}
DOMAIN = "demo.portal.test"
BATCH = 2000


@dataclass
class DemoAccount:
    email: str
    role: str
    team: str = ""
    department: str = ""


def demo_accounts() -> list[DemoAccount]:
    rows = [DemoAccount(f"admin@{DOMAIN}", Role.ADMIN), DemoAccount(f"executive@{DOMAIN}", Role.EXECUTIVE)]
    rows.append(DemoAccount(f"dpo@{DOMAIN}", Duty.DPO))
    for department, teams in DEPARTMENTS.items():
        rows.append(DemoAccount(f"manager.{department.lower()}@{DOMAIN}", Role.MANAGER, department=department))
        for team in teams:
            for n in (1, 2):
                rows.append(
                    DemoAccount(f"analyst{n}.{team.lower()}@{DOMAIN}", Role.ANALYST, team=team, department=department)
                )
    return rows


@transaction.atomic
def seed_organisation(password: str) -> list[DemoAccount]:
    """Create what is missing; return the accounts created now."""
    for department, teams in DEPARTMENTS.items():
        dept, _ = Department.objects.get_or_create(name=department)
        for team in teams:
            Team.objects.get_or_create(name=team, defaults={"department": dept})
    created = []
    for account in demo_accounts():
        if User.objects.filter(email=account.email).exists():
            continue
        accounts.create_user(
            account.email,
            account.role,
            password=password,
            team=account.team or None,
            department=account.department or None,
            full_name=account.email.split("@")[0].title(),
        )
        created.append(account)
    for department in DEPARTMENTS:
        manager = User.objects.get(email=f"manager.{department.lower()}@{DOMAIN}")
        Team.objects.filter(department__name=department, manager__isnull=True).update(manager=manager)
    return created


def seed_customers(total: int, seed: int = 20250119) -> int:
    """Top the customer table up to ``total`` rows, spread over the teams; return rows added."""
    teams = list(Team.objects.order_by("id").values_list("id", flat=True))
    added = 0
    with scoped(system=True):
        existing = Customer.objects.count()
    if existing >= total:
        return 0
    fake = Faker()
    Faker.seed(seed + existing)
    rng = random.Random(seed + existing)  # noqa: S311 - demo data, not security
    while existing + added < total:
        size = min(BATCH, total - existing - added)
        batch = []
        for _ in range(size):
            customer = Customer(
                team_id=teams[rng.randrange(len(teams))],
                name=fake.name(),
                email=fake.unique.email(),
                phone=fake.numerify("+1-###-###-####"),
                card_last4=f"{rng.randrange(10000):04d}",
                card_token=f"tok_{rng.getrandbits(64):016x}",
            )
            batch.append(customer)
        with scoped(system=True):
            insert_customers(batch)
            seed_activity(batch, rng)
        added += size
    return added


def insert_customers(customers: list[Customer]) -> list[Customer]:
    """Insert unsaved customers fast; call it under ``scoped(system=True)``.  The blind indexes and
    the ciphertext are computed here (each value through its field: encrypted under the current
    key and bound to its column, as ``save()`` does), then the rows go in as one statement
    (``portal.bulk_rows``), about twice as fast as ``bulk_create``.  Sets the primary keys.

    Shared by the demo seeder, the benchmarks (through ``seed_customers``) and the tests that need
    a large table (key rotation at 100,000 rows)."""
    for customer in customers:
        customer.refresh_blind_indexes()
    return bulk_rows.insert(Customer, customers)


PAGES = ["/", "/pricing", "/product", "/blog", "/signup", "/checkout", "/support"]
CITIES = ["Berlin", "Paris", "Madrid", "Lisbon", "Dublin", "Vienna", "Prague", "Oslo"]


def seed_activity(customers: list[Customer], rng: random.Random) -> None:
    """A few orders and page views per new customer (amounts and pages are not personal data)."""
    now = timezone.now()
    orders, views = [], []
    for customer in customers:
        for _ in range(rng.randrange(4)):
            orders.append(
                Order(
                    customer=customer,
                    team_id=customer.team_id,
                    amount=Decimal(rng.randrange(500, 50000)) / 100,
                    currency=rng.choice(["EUR", "EUR", "USD", "GBP"]),
                    status=rng.choice(list(OrderStatus)),
                    created_at=now - timedelta(days=rng.randrange(720)),
                )
            )
        for _ in range(rng.randrange(6)):
            views.append(
                PageView(
                    customer=customer if rng.random() < 0.8 else None,
                    session_id=f"s{rng.getrandbits(48):012x}",
                    team_id=customer.team_id,
                    page=rng.choice(PAGES),
                    referrer=rng.choice(["", "search", "newsletter", "partner"]),
                    city=rng.choice(CITIES),
                    device=rng.choice(list(Device)),
                    timestamp=now - timedelta(days=rng.randrange(720), seconds=rng.randrange(86400)),
                )
            )
    Order.objects.bulk_create(orders, batch_size=5000)
    PageView.objects.bulk_create(views, batch_size=5000)
