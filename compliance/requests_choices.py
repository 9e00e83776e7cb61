"""Choices of the subject-request half of the compliance app (requests, consent, restriction)."""

from django.db import models


class RequestKind(models.TextChoices):
    """The data-subject rights a request exercises (GDPR Art. 15-21)."""

    ACCESS = "access", "Access (Art. 15)"
    PORTABILITY = "portability", "Portability (Art. 20)"
    ERASURE = "erasure", "Erasure (Art. 17)"
    RECTIFICATION = "rectification", "Rectification (Art. 16)"
    RESTRICTION = "restriction", "Restriction of processing (Art. 18)"
    OBJECTION = "objection", "Objection / consent withdrawal (Art. 21)"


class RequestStatus(models.TextChoices):
    RECEIVED = "received", "Received"
    IDENTITY_VERIFIED = "identity_verified", "Identity verified"
    APPROVED = "approved", "Approved"
    IN_PROGRESS = "in_progress", "In progress"
    AWAITING_REVIEW = "awaiting_review", "Awaiting review"
    COMPLETED = "completed", "Completed"
    REJECTED = "rejected", "Rejected"
    ERROR = "error", "Error"


OPEN_STATUSES = frozenset(
    {
        RequestStatus.RECEIVED,
        RequestStatus.IDENTITY_VERIFIED,
        RequestStatus.APPROVED,
        RequestStatus.IN_PROGRESS,
        RequestStatus.AWAITING_REVIEW,
        RequestStatus.ERROR,
    }
)
CLOSED_STATUSES = frozenset({RequestStatus.COMPLETED, RequestStatus.REJECTED})


class Channel(models.TextChoices):
    """How the request reached the controller."""

    API = "api", "Customer-facing system (API)"
    WEB_FORM = "web_form", "Web form"
    EMAIL = "email", "Email"
    PHONE = "phone", "Phone"
    LETTER = "letter", "Letter"
    IN_PERSON = "in_person", "In person"


class ConsentPurpose(models.TextChoices):
    ANALYTICS = "analytics", "Analytics"
    MARKETING = "marketing", "Marketing"
    PROFILING = "profiling", "Profiling"
    THIRD_PARTY_SHARING = "third_party_sharing", "Sharing with third parties"


class LawfulBasis(models.TextChoices):
    """Art. 6(1) GDPR."""

    CONSENT = "consent", "Consent"
    CONTRACT = "contract", "Contract"
    LEGAL_OBLIGATION = "legal_obligation", "Legal obligation"
    VITAL_INTERESTS = "vital_interests", "Vital interests"
    PUBLIC_TASK = "public_task", "Public task"
    LEGITIMATE_INTERESTS = "legitimate_interests", "Legitimate interests"


class ConsentSource(models.TextChoices):
    WEB_FORM = "web_form", "Web form"
    API = "api", "Customer-facing system (API)"
    ADMIN = "admin", "Recorded by the DPO"
    SUBJECT_REQUEST = "subject_request", "Subject request"
    IMPORT = "import", "Import"
