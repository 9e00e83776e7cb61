"""The record of processing (Art. 30) generated from the models, its admin page and CSV, and the
system check that keeps personal data encrypted or explained (and refuses some fields outright)."""

import csv
import io

import pytest
from django.core.management import call_command
from django.db import models
from django.test.utils import isolate_apps

from accounts.policy import Role
from compliance import record_of_processing as rop
from compliance.processing_register import Category, LawfulBasis, NotPersonal, Personal, Processing
from portal.field_crypto import EncryptedCharField
from tests.factories import browser_login, make_user

PAGE = "/admin/compliance/recordofprocessing/"


def ids(errors) -> list[str]:
    return sorted(e.id for e in errors)


def test_the_project_passes_the_check():
    assert rop.check_personal_fields() == []
    call_command("check")  # raises SystemCheckError on any error


@isolate_apps("compliance")
def test_personal_looking_field_in_clear_fails():
    class Leaky(models.Model):
        contact_email = models.CharField(max_length=200)
        home_address = models.CharField(max_length=200)
        birth_date = models.DateField()
        mobile = models.CharField(max_length=20)
        title = models.CharField(max_length=20)  # not personal-looking

        class Meta:
            app_label = "compliance"

        def __str__(self):
            return "test model"

    errors = rop._check_model(Leaky)
    assert ids(errors) == ["compliance.E001"] * 4
    text = " ".join(e.msg for e in errors)
    for field in ("contact_email", "home_address", "birth_date", "mobile"):
        assert field in text
    assert "title" not in text


@isolate_apps("compliance")
def test_encrypted_or_declared_fields_pass():
    class Tidy(models.Model):
        full_name = EncryptedCharField(max_length=200)
        ip_address = models.GenericIPAddressField()
        team_name = models.CharField(max_length=50)

        PROCESSING = Processing(
            purpose="test",
            lawful_basis=LawfulBasis.CONTRACT,
            subjects="staff",
            fields={
                "ip_address": Personal(Category.ONLINE_IDENTIFIER, "security logging"),
                "team_name": NotPersonal("a team's name"),
            },
        )

        class Meta:
            app_label = "compliance"

        def __str__(self):
            return "test model"

    assert rop._check_model(Tidy) == []


@isolate_apps("compliance")
def test_declared_personal_without_reason_and_stale_declarations_fail():
    class Sloppy(models.Model):
        phone = models.CharField(max_length=20)

        PROCESSING = Processing(
            purpose="test",
            lawful_basis=LawfulBasis.CONSENT,
            subjects="customers",
            fields={"phone": Personal(Category.CONTACT), "fax": NotPersonal("gone")},
        )

        class Meta:
            app_label = "compliance"

        def __str__(self):
            return "test model"

    assert ids(rop._check_model(Sloppy)) == ["compliance.E003", "compliance.E004"]


@pytest.mark.parametrize(
    "name",
    ["ssn", "national_id", "passport_number", "tax_id", "security_answer", "mother_maiden_name", "card_number", "cvv"],
)
def test_forbidden_fields_are_refused_even_encrypted(name):
    with isolate_apps("compliance"):
        attrs = {
            name: EncryptedCharField(max_length=100),
            "__module__": __name__,
            "Meta": type("Meta", (), {"app_label": "compliance"}),
        }
        model = type(f"Forbidden_{name}", (models.Model,), attrs)
        # Not even a declaration makes it acceptable.
        model.PROCESSING = Processing(
            purpose="x", lawful_basis=LawfulBasis.CONSENT, subjects="x", fields={name: NotPersonal("trust me")}
        )
        assert ids(rop._check_model(model)) == ["compliance.E002"]


def test_name_heuristics():
    assert rop.looks_personal("full_name") == "name"
    assert rop.looks_personal("username") == "name"
    assert rop.looks_personal("actor_email") == "email"
    assert rop.looks_personal("remote_addr") == "address"
    assert rop.looks_personal("card_last4") == "card"
    assert rop.looks_personal("created_at") is None
    assert rop.looks_personal("amount") is None
    assert rop.refused("span") is None and rop.refused("company") is None


@pytest.mark.django_db
def test_record_lists_every_personal_field_with_encryption_masking_and_retention():
    rows = {(r.model, r.field): r for r in rop.rows()}
    name = rows[("datasets.Customer", "name")]
    assert name.encrypted and name.category == "identity" and name.lawful_basis == "contract"
    assert name.masking == {"Analyst": "initial", "Manager": "clear", "Admin": "clear", "Executive": "no rows"}
    assert rows[("datasets.Customer", "email")].masking["Analyst"] == "email"
    assert rows[("datasets.Customer", "card_last4")].masking["Analyst"] == "card"
    card = rows[("datasets.Customer", "card_last4")]
    assert not card.encrypted and "last four digits" in card.clear_reason and card.status == "ok"
    assert rows[("accounts.User", "email")].masking == {}  # staff data: the customer masking does not apply
    assert rows[("audit.AuditEvent", "ip_address")].status == "ok"
    # Retention comes from the retention policies where one covers the model.
    assert rows[("datasets.PageView", "customer")].retention.startswith("Delete after 730 days")
    assert rows[("datasets.Order", "customer")].retention.startswith("Archive, then delete after 2555 days")
    assert rows[("datasets.Customer", "email")].retention.startswith("For the customer relationship")
    # Not personal, by declaration: not listed.
    assert ("accounts.Team", "name") not in rows
    # Library models declared for completeness appear too.
    assert ("auditlog.LogEntry", "remote_addr") in rows
    assert all(r.status.startswith("ok") for r in rows.values()), [r for r in rows.values() if r.status != "ok"]
    summary = rop.encryption_summary()
    assert summary.problems == [] and summary.encrypted >= 6


@pytest.mark.django_db
def test_csv_export_and_command(capsys):
    content = rop.as_csv()
    table = list(csv.DictReader(io.StringIO(content)))
    assert list(table[0]) == rop.COLUMNS
    assert any(r["model"] == "datasets.Customer" and r["field"] == "phone" for r in table)
    call_command("record_of_processing")
    assert capsys.readouterr().out == content


def test_csv_cells_cannot_run_as_formulas():
    assert rop._cell("=HYPERLINK(1)") == "'=HYPERLINK(1)"
    assert rop._cell("plain") == "plain"


@pytest.mark.django_db
def test_admin_page_and_csv_for_governance_roles_only(org):
    admin = browser_login(org.admin)
    page = admin.get(PAGE)
    assert page.status_code == 200
    body = page.content.decode()
    assert "datasets.Customer" in body and "yes (AES-256-GCM)" in body
    download = admin.get(PAGE + "csv/")
    assert download.status_code == 200 and download["Content-Type"].startswith("text/csv")
    assert "attachment;" in download["Content-Disposition"]
    manager = browser_login(org.manager)
    assert manager.get(PAGE).status_code == 403
    assert manager.get(PAGE + "csv/").status_code == 403
    # The admin index lists the page only for those who may open it.
    assert "Record of processing" in admin.get("/admin/").content.decode()
    assert "Record of processing" not in manager.get("/admin/").content.decode()


@pytest.mark.django_db
def test_dpo_with_a_staff_role_sees_the_record():
    from django.contrib.auth.models import Group

    dpo = make_user(Role.MANAGER)
    dpo.groups.add(Group.objects.get(name="DPO"))
    assert browser_login(dpo).get(PAGE).status_code == 200


def test_a_customers_direct_identifier_in_clear_fails_whatever_the_reason():
    row = rop.RecordRow(
        model="x.Customer",
        table="x_customer",
        field="name",
        data_subjects="customers",
        category="identity",
        purpose="p",
        lawful_basis="contract",
        encrypted=False,
        clear_reason="convenient",
        masking={},
        retention="",
        recipients="",
        status="ok",
    )
    assert rop.encryption_summary([row]).problems == ["x.Customer.name: a customer's identity data in clear"]
