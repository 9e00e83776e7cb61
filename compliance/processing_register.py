"""What each model processes about people: the declarations the record of processing (Art. 30)
is generated from, and that the personal-data system check holds the models to.

A model declares itself either here (``REGISTER``, keyed by model label) or with a class
attribute ``PROCESSING = Processing(...)`` (which wins).  Each field that looks like personal
data is either encrypted (``portal.field_crypto``), or declared ``Personal`` with the reason it
is kept in clear, or declared ``NotPersonal``; see ``compliance.record_of_processing``.
"""

from dataclasses import dataclass, field
from enum import StrEnum

from compliance.requests_choices import LawfulBasis  # one list of Art. 6(1) bases for the app


class Category(StrEnum):
    """Categories of personal data, as the record lists them."""

    IDENTITY = "identity"  # names
    CONTACT = "contact"  # email, phone, postal address
    ONLINE_IDENTIFIER = "online_identifier"  # IP address, session, device, user agent
    PSEUDONYMOUS_ID = "pseudonymous_identifier"  # keyed hashes of identifiers (blind indexes)
    PAYMENT = "payment"  # card last four, processor token
    TRANSACTION = "transaction"  # orders, amounts
    BEHAVIOUR = "behaviour"  # page views, pages, referrers
    LOCATION = "location"  # city
    ACCOUNT = "account"  # staff account data
    REQUEST = "request"  # what a data subject asked for


@dataclass(frozen=True)
class Personal:
    """A field holding personal data.  ``clear_reason`` is required when it is not encrypted."""

    category: Category
    clear_reason: str = ""
    masking_key: str | None = None  # key in accounts.policy.MASKING_TABLE, when the role masking applies


@dataclass(frozen=True)
class NotPersonal:
    """A field whose name looks personal but is not (a team's name, a file name)."""

    reason: str


@dataclass(frozen=True)
class Processing:
    purpose: str
    lawful_basis: LawfulBasis
    subjects: str  # categories of data subjects
    fields: dict[str, Personal | NotPersonal] = field(default_factory=dict)
    retention: str = ""  # used when no retention policy covers the model
    recipients: str = ""  # who receives it beyond the portal roles (processors, authorities)


_STAFF_LOG = "security logging of staff activity (who did what, from where)"
_HMAC = "keyed HMAC-SHA256 (blind index): equality look-ups without decryption; key held apart"
_ORG = "an organisational unit's name, not a person's"

REGISTER: dict[str, Processing] = {
    # --- accounts ---------------------------------------------------------------------------
    "accounts.user": Processing(
        purpose="Staff accounts: authentication, authorisation, accountability",
        lawful_basis=LawfulBasis.CONTRACT,
        subjects="staff",
        fields={
            "email": Personal(Category.ACCOUNT, "login identifier: unique look-up at every sign-in"),
            "full_name": Personal(Category.IDENTITY, "shown to colleagues and auditors; staff data, not customers'"),
        },
        retention="While employed; accounts are disabled, never deleted (the audit trail points at them)",
    ),
    "accounts.department": Processing(
        purpose="Organisation",
        lawful_basis=LawfulBasis.CONTRACT,
        subjects="none",
        fields={"name": NotPersonal(_ORG)},
    ),
    "accounts.team": Processing(
        purpose="Organisation",
        lawful_basis=LawfulBasis.CONTRACT,
        subjects="none",
        fields={"name": NotPersonal(_ORG)},
    ),
    "accounts.apitokeninfo": Processing(
        purpose="API token security",
        lawful_basis=LawfulBasis.LEGITIMATE_INTERESTS,
        subjects="staff",
        fields={"created_ip": Personal(Category.ONLINE_IDENTIFIER, _STAFF_LOG)},
        retention="Until the token expires or is revoked",
    ),
    # --- datasets ---------------------------------------------------------------------------
    "datasets.customer": Processing(
        purpose="Customer relationship and order fulfilment; analytics on masked data",
        lawful_basis=LawfulBasis.CONTRACT,
        subjects="customers",
        fields={
            "name": Personal(Category.IDENTITY, masking_key="name"),
            "email": Personal(Category.CONTACT, masking_key="email"),
            "phone": Personal(Category.CONTACT, masking_key="phone"),
            "email_index": Personal(Category.PSEUDONYMOUS_ID, _HMAC),
            "phone_index": Personal(Category.PSEUDONYMOUS_ID, _HMAC),
            "card_last4": Personal(
                Category.PAYMENT,
                "last four digits only (data minimisation): not cardholder data under PCI DSS",
                masking_key="card_last4",
            ),
            "card_token": Personal(Category.PAYMENT, "the payment processor's token: useless without the processor"),
        },
        retention="For the customer relationship; erased on request (Art. 17)",
        recipients="Payment processor (card token)",
    ),
    "datasets.order": Processing(
        purpose="Order fulfilment, accounting and tax records",
        lawful_basis=LawfulBasis.LEGAL_OBLIGATION,
        subjects="customers",
        fields={"customer": Personal(Category.TRANSACTION, "link to the customer row (a number, no identifier)")},
    ),
    "datasets.pageview": Processing(
        purpose="Product analytics",
        lawful_basis=LawfulBasis.LEGITIMATE_INTERESTS,
        subjects="customers and website visitors",
        fields={
            "customer": Personal(Category.BEHAVIOUR, "link to the customer row (a number, no identifier)"),
            "session_id": Personal(Category.ONLINE_IDENTIFIER, "random session identifier, no direct identifier"),
            "city": Personal(Category.LOCATION, "city-level only (coarse), needed for analytics"),
        },
    ),
    "datasets.export": Processing(
        purpose="Export log",
        lawful_basis=LawfulBasis.LEGITIMATE_INTERESTS,
        subjects="staff",
        fields={"file_name": NotPersonal("a random server-side file name")},
        retention="Export files expire; the log is kept as evidence",
    ),
    # --- audit ------------------------------------------------------------------------------
    "audit.auditevent": Processing(
        purpose="Security audit trail (SOC 2, GDPR Art. 32)",
        lawful_basis=LawfulBasis.LEGITIMATE_INTERESTS,
        subjects="staff and integrations",
        fields={
            "actor_email": Personal(Category.ACCOUNT, _STAFF_LOG + "; append-only and hash-chained"),
            "ip_address": Personal(Category.ONLINE_IDENTIFIER, _STAFF_LOG + "; alert rules match on it"),
            "user_agent": Personal(Category.ONLINE_IDENTIFIER, _STAFF_LOG),
        },
        retention="Append-only evidence; never deleted by retention",
    ),
    "audit.blockedip": Processing(
        purpose="Incident containment: addresses the portal refuses",
        lawful_basis=LawfulBasis.LEGITIMATE_INTERESTS,
        subjects="attackers and anyone behind a blocked address",
        fields={"ip_address": Personal(Category.ONLINE_IDENTIFIER, "the block matches on it")},
        retention="Until the block is lifted",
    ),
    # --- compliance (subject requests) -----------------------------------------------------
    "compliance.subjectrequest": Processing(
        purpose="Handling data-subject requests (GDPR Art. 12-22)",
        lawful_basis=LawfulBasis.LEGAL_OBLIGATION,
        subjects="customers (requesters)",
        fields={
            "subject_email": Personal(Category.CONTACT),
            "subject_phone": Personal(Category.CONTACT),
            "details": Personal(Category.REQUEST),
            "email_index": Personal(Category.PSEUDONYMOUS_ID, _HMAC),
            "phone_index": Personal(Category.PSEUDONYMOUS_ID, _HMAC),
            "subject_hash": Personal(Category.PSEUDONYMOUS_ID, "keyed hash kept after erasure as proof"),
        },
    ),
    "compliance.erasedsubject": Processing(
        purpose="Proof of erasure; re-applying erasures after a backup restore",
        lawful_basis=LawfulBasis.LEGAL_OBLIGATION,
        subjects="erased customers",
        fields={
            "subject_hash": Personal(Category.PSEUDONYMOUS_ID, "keyed hash: the only trace kept of an erased subject"),
            "email_indexes": Personal(Category.PSEUDONYMOUS_ID, _HMAC),
            "phone_indexes": Personal(Category.PSEUDONYMOUS_ID, _HMAC),
        },
    ),
    "compliance.consentrecord": Processing(
        purpose="Proof of consent and its withdrawal (Art. 7(1))",
        lawful_basis=LawfulBasis.LEGAL_OBLIGATION,
        subjects="customers",
        fields={"customer": Personal(Category.BEHAVIOUR, "link to the customer row (a number, no identifier)")},
    ),
    "compliance.accesspackage": Processing(
        purpose="Access packages for subject requests",
        lawful_basis=LawfulBasis.LEGAL_OBLIGATION,
        subjects="customers (requesters)",
        fields={"file_name": NotPersonal("a random server-side file name; the file is encrypted")},
    ),
    "compliance.archivedorder": Processing(
        purpose="Legal retention of order records (accounting, tax)",
        lawful_basis=LawfulBasis.LEGAL_OBLIGATION,
        subjects="customers",
        fields={"customer_id": Personal(Category.TRANSACTION, "number only; anonymised by erasure")},
    ),
    "compliance.vendor": Processing(
        purpose="Vendor management",
        lawful_basis=LawfulBasis.LEGITIMATE_INTERESTS,
        subjects="none",
        fields={"name": NotPersonal("a company's name")},
    ),
    # --- libraries (listed for a complete record; the check covers the project's own apps) ---
    "auditlog.logentry": Processing(
        purpose="Change history of the portal's records (personal fields masked in diffs)",
        lawful_basis=LawfulBasis.LEGITIMATE_INTERESTS,
        subjects="staff",
        fields={
            "actor_email": Personal(Category.ACCOUNT, _STAFF_LOG),
            "remote_addr": Personal(Category.ONLINE_IDENTIFIER, _STAFF_LOG),
        },
        retention="Append-only evidence",
    ),
    "axes.accesslog": Processing(
        purpose="Sign-in history (lockout evidence)",
        lawful_basis=LawfulBasis.LEGITIMATE_INTERESTS,
        subjects="staff",
        fields={
            "username": Personal(Category.ACCOUNT, "sign-in evidence"),
            "ip_address": Personal(Category.ONLINE_IDENTIFIER, "sign-in evidence"),
            "user_agent": Personal(Category.ONLINE_IDENTIFIER, "sign-in evidence"),
        },
    ),
    "axes.accessfailurelog": Processing(
        purpose="Failed sign-ins (lockout evidence)",
        lawful_basis=LawfulBasis.LEGITIMATE_INTERESTS,
        subjects="staff and anyone trying to sign in",
        fields={
            "username": Personal(Category.ACCOUNT, "lockout evidence"),
            "ip_address": Personal(Category.ONLINE_IDENTIFIER, "lockout evidence"),
            "user_agent": Personal(Category.ONLINE_IDENTIFIER, "lockout evidence"),
        },
    ),
    "axes.accessattempt": Processing(
        purpose="Brute-force protection (lockout)",
        lawful_basis=LawfulBasis.LEGITIMATE_INTERESTS,
        subjects="staff and anyone trying to sign in",
        fields={
            "username": Personal(Category.ACCOUNT, "lockout matches on it"),
            "ip_address": Personal(Category.ONLINE_IDENTIFIER, "lockout matches on it"),
            "user_agent": Personal(Category.ONLINE_IDENTIFIER, "lockout evidence"),
        },
        retention="Until unlocked or expired (axes cool-off)",
    ),
}
