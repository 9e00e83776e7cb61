"""``manage.py portal_user create|disable``: roles, teams, departments, passwords, refusals, tokens."""

import io
import sys

import pytest
from django.core.management import call_command
from knox.models import AuthToken

from accounts.models import User
from tests.factories import DepartmentFactory, TeamFactory


class TtyInput(io.StringIO):
    """A terminal: the command must not try to read a password from it."""

    def isatty(self):
        return True


class Result:
    def __init__(self, code, out, err):
        self.code, self.out, self.err = code, out, err


def portal_user(*args) -> Result:
    out, err = io.StringIO(), io.StringIO()
    code = 0
    try:
        call_command("portal_user", *args, stdout=out, stderr=err)
    except SystemExit as exc:
        code = exc.code
    return Result(code, out.getvalue(), err.getvalue())


@pytest.fixture
def no_stdin(monkeypatch):
    """Stdin redirected from an empty file (not a terminal, nothing to read)."""
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))


@pytest.fixture
def org(db):
    sales = DepartmentFactory(name="Sales")
    ops = DepartmentFactory(name="Ops")
    return {"sales": sales, "ops": ops, "north": TeamFactory(name="North", department=sales)}


def groups_of(user) -> set[str]:
    return set(user.groups.values_list("name", flat=True))


def test_create_analyst_in_team(org, no_stdin):
    result = portal_user("create", "Ann.Analyst@Example.test", "--role", "Analyst", "--team", "North")
    assert result.code == 0, result.err
    user = User.objects.get(email="ann.analyst@example.test")
    assert groups_of(user) == {"Analyst"}
    assert list(user.teams.all()) == [org["north"]]
    assert user.department == org["sales"]  # taken from the team
    assert user.is_active
    assert not user.is_staff
    assert not user.is_superuser
    assert "created ann.analyst@example.test" in result.out
    assert result.err == ""


def test_role_name_is_case_insensitive(org, no_stdin):
    assert portal_user("create", "low@example.test", "--role", "analyst").code == 0
    assert groups_of(User.objects.get(email="low@example.test")) == {"Analyst"}


def test_explicit_department_wins_over_team(org, no_stdin):
    result = portal_user("create", "x@example.test", "--role", "Analyst", "--team", "North", "--department", "Ops")
    assert result.code == 0, result.err
    assert User.objects.get(email="x@example.test").department == org["ops"]


def test_manager_is_staff(org, no_stdin):
    assert portal_user("create", "mgr@example.test", "--role", "Manager", "--department", "Sales").code == 0
    user = User.objects.get(email="mgr@example.test")
    assert groups_of(user) == {"Manager"}
    assert user.department == org["sales"]
    assert user.is_staff
    assert not user.is_superuser


def test_admin_is_staff_but_not_superuser(org, no_stdin):
    assert portal_user("create", "adm@example.test", "--role", "Admin").code == 0
    user = User.objects.get(email="adm@example.test")
    assert groups_of(user) == {"Admin"}
    assert user.is_staff
    assert not user.is_superuser


def test_executive_is_not_staff(org, no_stdin):
    assert portal_user("create", "e@example.test", "--role", "Executive").code == 0
    user = User.objects.get(email="e@example.test")
    assert groups_of(user) == {"Executive"}
    assert not user.is_staff
    assert not user.is_superuser


def test_dpo_is_staff_but_not_superuser(org, no_stdin):
    # The DPO works subject requests in the admin site.
    assert portal_user("create", "dpo@example.test", "--role", "DPO").code == 0
    user = User.objects.get(email="dpo@example.test")
    assert groups_of(user) == {"DPO"}
    assert user.is_staff
    assert not user.is_superuser


@pytest.mark.parametrize(
    "args,reason",
    [
        (["bad-role@example.test", "--role", "Wizard"], "unknown role"),
        (["bad-role@example.test", "--role", "superuser"], "unknown role"),
        (["team@example.test", "--role", "Analyst", "--team", "Nowhere"], "unknown team"),
        (["dept@example.test", "--role", "Manager", "--department", "Nowhere"], "unknown department"),
        (["not-an-email", "--role", "Analyst"], "invalid email"),
        (["two@@example.test", "--role", "Analyst"], "invalid email"),
        (["", "--role", "Analyst"], "invalid email"),
    ],
)
def test_refusals_exit_2_with_one_line_and_create_nobody(org, no_stdin, args, reason):
    before = User.objects.count()
    result = portal_user("create", *args)
    assert result.code == 2
    lines = result.err.splitlines()
    assert len(lines) == 1, result.err
    assert reason in lines[0]
    assert "Traceback" not in result.err
    assert "password" not in result.out
    assert User.objects.count() == before


@pytest.mark.parametrize("second", ["dup@example.test", "DUP@Example.TEST"])
def test_duplicate_email_is_refused(org, no_stdin, second):
    assert portal_user("create", "dup@example.test", "--role", "Analyst").code == 0
    before = User.objects.count()
    result = portal_user("create", second, "--role", "Admin")
    assert result.code == 2
    assert len(result.err.splitlines()) == 1
    assert "already exists" in result.err
    assert User.objects.count() == before
    # The existing account is untouched: no role change to Admin.
    assert groups_of(User.objects.get(email="dup@example.test")) == {"Analyst"}


def generated_password(out: str) -> str:
    lines = [line for line in out.splitlines() if "password" in line.lower()]
    assert len(lines) == 1, out
    return lines[0].rsplit(" ", 1)[-1]


def test_password_is_generated_and_shown_once_when_stdin_is_empty(org, no_stdin):
    result = portal_user("create", "gen@example.test", "--role", "Analyst")
    assert result.code == 0
    password = generated_password(result.out)
    assert len(password) >= 16
    assert result.out.count(password) == 1
    user = User.objects.get(email="gen@example.test")
    assert user.check_password(password)
    assert password not in user.password  # stored hashed


def test_password_is_generated_when_stdin_is_a_terminal(org, monkeypatch):
    terminal = TtyInput("typed-but-not-read-password\n")
    monkeypatch.setattr(sys, "stdin", terminal)
    result = portal_user("create", "tty@example.test", "--role", "Analyst")
    assert result.code == 0
    password = generated_password(result.out)
    assert terminal.tell() == 0  # nothing was read from the terminal
    assert User.objects.get(email="tty@example.test").check_password(password)


def test_generated_passwords_differ(org, no_stdin):
    first = generated_password(portal_user("create", "one@example.test", "--role", "Analyst").out)
    second = generated_password(portal_user("create", "two@example.test", "--role", "Analyst").out)
    assert first != second


def test_password_is_read_from_stdin_and_never_printed(org, monkeypatch):
    secret = "piped-in-Password-2718"  # pragma: allowlist secret
    monkeypatch.setattr(sys, "stdin", io.StringIO(secret + "\n"))
    result = portal_user("create", "piped@example.test", "--role", "Manager", "--department", "Sales")
    assert result.code == 0, result.err
    assert secret not in result.out + result.err
    assert "password" not in result.out.lower()
    user = User.objects.get(email="piped@example.test")
    assert user.check_password(secret)
    assert not user.check_password(secret + "\n")


def test_disable_deactivates_and_revokes_tokens(org, no_stdin):
    assert portal_user("create", "leaver@example.test", "--role", "Analyst", "--team", "North").code == 0
    user = User.objects.get(email="leaver@example.test")
    AuthToken.objects.create(user)
    AuthToken.objects.create(user)
    bystander = User.objects.create_user("stays@example.test", "irrelevant-password-123")
    AuthToken.objects.create(bystander)

    result = portal_user("disable", "Leaver@Example.test")
    assert result.code == 0, result.err
    assert "disabled leaver@example.test" in result.out
    user.refresh_from_db()
    assert not user.is_active
    assert AuthToken.objects.filter(user=user).count() == 0
    assert AuthToken.objects.filter(user=bystander).count() == 1  # only the leaver's tokens go


def test_disable_unknown_email_exits_2(org):
    before = set(User.objects.values_list("email", "is_active"))
    result = portal_user("disable", "nobody@example.test")
    assert result.code == 2
    assert len(result.err.splitlines()) == 1
    assert "no user" in result.err
    assert set(User.objects.values_list("email", "is_active")) == before


@pytest.mark.parametrize(
    "weak,reason",
    [("kq7zp", "too short"), ("password1234", "too common"), ("123456789012345", "entirely numeric")],
)
def test_weak_password_from_stdin_is_refused(org, monkeypatch, weak, reason):
    monkeypatch.setattr(sys, "stdin", io.StringIO(weak + "\n"))
    before = User.objects.count()
    result = portal_user("create", "weak@example.test", "--role", "Admin")
    assert result.code == 2
    lines = result.err.splitlines()
    assert len(lines) == 1, result.err
    assert "password refused" in lines[0]
    assert reason in lines[0]
    assert weak not in result.err + result.out
    assert User.objects.count() == before
