"""Factories for tests: organisation, users with roles, customers (written under the system scope)."""

import factory
from faker import Faker

from accounts import services
from accounts.models import Department, Team, User
from datasets.models import Customer
from portal.security_context import scoped

PASSWORD = "correct-horse-battery-staple"  # pragma: allowlist secret
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


# --- MFA and the real browser sign-in ---------------------------------------------------------


def give_authenticator(user):
    """A confirmed TOTP authenticator for the user (as if enrolled)."""
    from django_otp.plugins.otp_totp.models import TOTPDevice

    device = TOTPDevice.objects.filter(user=user, confirmed=True).first()
    return device or TOTPDevice.objects.create(user=user, name="Authenticator", confirmed=True)


def totp_code(device) -> str:
    """The device's current code.  A code is accepted once per 30-second step; a test that signs
    the same user in twice within one step rewinds the device's last step (a person would wait)."""
    import time

    from django_otp.oath import TOTP

    device.refresh_from_db()
    type(device).objects.filter(pk=device.pk).update(last_t=-1, throttling_failure_count=0)
    totp = TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift)
    totp.time = time.time()
    return f"{totp.token():0{device.digits}d}"


def browser_login(user, *, client=None, password=PASSWORD, verify: bool = True):
    """Sign in through the real pages: password at /accounts/login/, then (for roles that need
    MFA) a TOTP code at /accounts/mfa/verify/.  Returns the client."""
    from django.test import Client

    from accounts import policy

    client = client or Client()
    response = client.post("/accounts/login/", {"username": user.email, "password": password})
    assert response.status_code == 302, response.content
    if verify and policy.requires_mfa(user):
        device = give_authenticator(user)
        response = client.post("/accounts/mfa/verify/", {"code": totp_code(device)})
        assert response.status_code == 302, response.content
    return client
