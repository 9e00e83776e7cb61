"""Which models django-auditlog records, and which of their fields are masked in diffs."""

from auditlog.registry import auditlog


def register_models() -> None:
    from accounts.models import Department, Team, User
    from datasets.models import Customer

    auditlog.register(
        Customer, mask_fields=list(Customer.PERSONAL_FIELDS), exclude_fields=["email_index", "phone_index"]
    )
    auditlog.register(User, exclude_fields=["password", "last_login"], m2m_fields={"groups"})
    auditlog.register(Team, m2m_fields={"members"})
    auditlog.register(Department)
