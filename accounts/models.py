"""People and the organisation their access hangs on: users, departments, teams."""

from django.contrib.auth.base_user import AbstractBaseUser, BaseUserManager
from django.contrib.auth.models import PermissionsMixin
from django.contrib.sessions.base_session import AbstractBaseSession
from django.db import models
from django.utils import timezone

from accounts.choices import ReviewDecision


class UserManager(BaseUserManager):
    """Users log in by email."""

    use_in_migrations = True

    def create_user(self, email, password=None, **extra):
        if not email:
            raise ValueError("An email address is required")
        user = self.model(email=self.normalize_email(email).lower(), **extra)
        user.set_password(password)
        user.save(using=self._db)
        return user

    def create_superuser(self, email, password=None, **extra):
        # Kept for Django's interface; the portal's Admin role is not a superuser.
        extra.update(is_staff=True, is_superuser=True)
        return self.create_user(email, password, **extra)


class User(AbstractBaseUser, PermissionsMixin):
    """A portal user; the role is the one role group the user belongs to (see accounts.policy)."""

    email = models.EmailField(unique=True)
    full_name = models.CharField(max_length=150, blank=True)
    department = models.ForeignKey(
        "accounts.Department", null=True, blank=True, on_delete=models.SET_NULL, related_name="users"
    )
    is_active = models.BooleanField(default=True)
    is_staff = models.BooleanField(default=False)
    date_joined = models.DateTimeField(default=timezone.now)

    objects = UserManager()

    USERNAME_FIELD = "email"
    EMAIL_FIELD = "email"
    REQUIRED_FIELDS: list[str] = []

    class Meta:
        ordering = ["email"]

    def __str__(self):
        return self.email


class Department(models.Model):
    """A department: a manager's view scope is every team in it."""

    name = models.CharField(max_length=100, unique=True)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name


class Team(models.Model):
    """A team owns customer data; analysts see their own team's rows."""

    name = models.CharField(max_length=100, unique=True)
    department = models.ForeignKey(Department, on_delete=models.PROTECT, related_name="teams")
    manager = models.ForeignKey(User, null=True, blank=True, on_delete=models.SET_NULL, related_name="managed_teams")
    members = models.ManyToManyField(User, blank=True, related_name="teams")

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name


class UserSession(AbstractBaseSession):
    """A browser session with its user's id beside it, so that all of a user's sessions can be
    ended at once (disable, password or role change) without decoding every session."""

    user_id = models.BigIntegerField(null=True, blank=True, db_index=True)

    class Meta(AbstractBaseSession.Meta):
        db_table = "accounts_user_session"

    @classmethod
    def get_session_store_class(cls):
        from accounts.sessions import SessionStore

        return SessionStore


class ApiTokenInfo(models.Model):
    """What the portal keeps beside a knox token: whether it was issued after a verified second
    factor, and when it was last used (written at most once a minute)."""

    token = models.OneToOneField(
        "knox.AuthToken", primary_key=True, on_delete=models.CASCADE, related_name="portal_info"
    )
    mfa_verified = models.BooleanField(default=False)
    last_used_at = models.DateTimeField(null=True, blank=True)
    created_ip = models.GenericIPAddressField(null=True, blank=True)

    def __str__(self):
        return self.token_id[:16]


class AccessReviewQuerySet(models.QuerySet):
    def overdue(self, today=None):
        today = today or timezone.localdate()
        return self.filter(completed_at__isnull=True, due_on__lt=today)


class AccessReview(models.Model):
    """One manager's quarterly review of their people's access (SOC 2 evidence)."""

    reviewer = models.ForeignKey(User, on_delete=models.PROTECT, related_name="access_reviews")
    period = models.CharField(max_length=7, help_text="Quarter, e.g. 2026-Q4")
    period_start = models.DateField()
    due_on = models.DateField()
    created_at = models.DateTimeField(auto_now_add=True)
    completed_at = models.DateTimeField(null=True, blank=True)

    objects = AccessReviewQuerySet.as_manager()

    class Meta:
        ordering = ["-period_start", "reviewer_id"]
        constraints = [models.UniqueConstraint(fields=["reviewer", "period"], name="one_review_per_quarter")]

    def __str__(self):
        return f"{self.period} access review by {self.reviewer}"

    @property
    def is_overdue(self) -> bool:
        return self.completed_at is None and timezone.localdate() > self.due_on


class AccessReviewLine(models.Model):
    """One grant of one person, as it stood when the review was made, and the reviewer's decision."""

    review = models.ForeignKey(AccessReview, on_delete=models.CASCADE, related_name="lines")
    subject = models.ForeignKey(User, on_delete=models.PROTECT, related_name="+")
    kind = models.CharField(max_length=32)
    grant_ref = models.CharField(max_length=100, help_text="Identifies the grant for revocation")
    description = models.CharField(max_length=300)
    decision = models.CharField(max_length=10, choices=ReviewDecision.choices, default=ReviewDecision.PENDING)
    decided_by = models.ForeignKey(User, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    decided_at = models.DateTimeField(null=True, blank=True)
    note = models.CharField(max_length=500, blank=True, default="")

    class Meta:
        ordering = ["review_id", "subject_id", "kind", "grant_ref"]
        constraints = [
            models.UniqueConstraint(fields=["review", "subject", "kind", "grant_ref"], name="one_line_per_grant")
        ]

    def __str__(self):
        return f"{self.subject}: {self.description} ({self.decision})"
