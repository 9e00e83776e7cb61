"""Factories for tests: organisation, users with roles, customers (written under the system scope)."""

import factory
from faker import Faker

from accounts import services
from accounts.models import Department, Team, User
from datasets.models import Customer
from portal.security_context import scoped

PASSWORD = "correct-horse-battery-staple"
_fake = Faker()


class DepartmentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Department
        django_get_or_create = ("name",)

    name = factory.Sequence(lambda n: f"Department {n}")


class TeamFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Team
        django_get_or_create = ("name",)

    name = factory.Sequence(lambda n: f"Team {n}")
    department = factory.SubFactory(DepartmentFactory)


def make_user(role: str, *, team: Team | None = None, department: Department | None = None, email=None) -> User:
    """A user with a role through the real service (groups, staff flag)."""
    email = email or f"{role.lower()}.{_fake.unique.user_name()}@example.test"
    user = services.create_user(
        email,
        role,
        password=PASSWORD,
        team=team.name if team else None,
        department=department.name if department else None,
    )
    return user


class CustomerFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Customer

    team = factory.SubFactory(TeamFactory)
    name = factory.Faker("name")
    email = factory.Sequence(lambda n: f"customer{n}.{_fake.user_name()}@mail.example")
    phone = factory.Faker("numerify", text="+1-###-###-####")
    card_last4 = factory.Faker("numerify", text="####")
    card_token = factory.Sequence(lambda n: f"tok_{n:08d}")

    @classmethod
    def _create(cls, model_class, *args, **kwargs):
        # Customers are written by the system role; portal roles only read them.
        with scoped(system=True):
            return super()._create(model_class, *args, **kwargs)


class OrderFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = "datasets.Order"

    customer = factory.SubFactory(CustomerFactory)
    amount = factory.Faker("pydecimal", left_digits=3, right_digits=2, positive=True)
    currency = "EUR"
    status = "paid"

    @classmethod
    def _create(cls, model_class, *args, **kwargs):
        with scoped(system=True):
            return super()._create(model_class, *args, **kwargs)


class PageViewFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = "datasets.PageView"

    customer = factory.SubFactory(CustomerFactory)
    team = factory.LazyAttribute(lambda o: o.customer.team if o.customer else None)
    page = "/pricing"
    city = "Berlin"
    device = "mobile"

    @classmethod
    def _create(cls, model_class, *args, **kwargs):
        with scoped(system=True):
            return super()._create(model_class, *args, **kwargs)


class ReportFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = "datasets.Report"

    title = factory.Sequence(lambda n: f"Report {n}")
    definition = factory.LazyFunction(lambda: {"dataset": "orders", "aggregate": "count", "group_by": "team"})

    @classmethod
    def _create(cls, model_class, *args, **kwargs):
        with scoped(system=True):
            return super()._create(model_class, *args, **kwargs)
