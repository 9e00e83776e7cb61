"""Portal settings: one module, driven by environment variables, secure by default."""

from datetime import timedelta
from pathlib import Path
from urllib.parse import unquote

import environ

from portal.secrets import read_secret

BASE_DIR = Path(__file__).resolve().parent.parent
env = environ.Env()

DEBUG = env.bool("DJANGO_DEBUG", default=False)

# Three independent secrets: the field-encryption key is never derived from SECRET_KEY.
SECRET_KEY = read_secret("SECRET_KEY")
CRYPTOGRAPHY_KEY = read_secret("CRYPTOGRAPHY_KEY")
BLIND_INDEX_KEY = read_secret("BLIND_INDEX_KEY")
# Previous look-up keys, still searched while `rotate_keys` recomputes the indexes.
BLIND_INDEX_OLD_KEYS = env.list("BLIND_INDEX_OLD_KEYS", default=[])
# Previous field keys, still accepted for decryption while `rotate_keys` re-encrypts.
CRYPTOGRAPHY_OLD_KEYS = env.list("CRYPTOGRAPHY_OLD_KEYS", default=[])

PORTAL_HOST = env.str("PORTAL_HOST", default="127.0.0.1")
PORTAL_PORT = env.int("PORTAL_PORT", default=8443)
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=[PORTAL_HOST, "localhost", "127.0.0.1"])
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[f"https://{PORTAL_HOST}:{PORTAL_PORT}"])

INSTALLED_APPS = [
    "portal.apps.PortalAdminConfig",  # django.contrib.admin with the policy-governed site
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "knox",
    "drf_spectacular",
    "guardian",
    "auditlog",
    "django_celery_beat",
    "csp",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "django_otp.plugins.otp_static",
    "axes",
    "accounts",
    "datasets",
    "compliance",
    "audit",
    "dashboards",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "portal.middleware.RequestIdMiddleware",
    "audit.middleware.BlockedIPMiddleware",  # 403 for addresses blocked by incident response
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_otp.middleware.OTPMiddleware",
    "audit.middleware.AuditUnitMiddleware",  # outside the request transaction: see its docstring
    "accounts.middleware.SessionLifetimeMiddleware",
    "accounts.middleware.MfaRequiredMiddleware",
    "portal.middleware.SecurityContextMiddleware",
    "auditlog.middleware.AuditlogMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "portal.middleware.NoStoreMiddleware",
    "csp.middleware.CSPMiddleware",
    "axes.middleware.AxesMiddleware",  # last: turns a lockout into its answer
]

ROOT_URLCONF = "portal.urls"
WSGI_APPLICATION = "portal.wsgi.application"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]

# --- Database -------------------------------------------------------------------------------
# DATABASE_URL names the schema owner: migrations run as it and nothing else does. The portal
# serves as DATABASE_APP_USER, a login role that owns no table, is no superuser and has no
# BYPASSRLS, so PostgreSQL row-level security binds every query it makes.
_owner = env.db_url("DATABASE_URL")
_owner["HOST"] = unquote(_owner.get("HOST", ""))  # a unix-socket directory arrives %-encoded
_owner.setdefault("OPTIONS", {})
_owner["CONN_MAX_AGE"] = env.int("DATABASE_CONN_MAX_AGE", default=60)
_owner["CONN_HEALTH_CHECKS"] = True
DATABASE_APP_USER = env.str("DATABASE_APP_USER", default="portal_app")
DATABASE_APP_PASSWORD = env.str("DATABASE_APP_PASSWORD", default="")
DATABASES = {
    "default": {
        **_owner,
        "USER": DATABASE_APP_USER,
        "PASSWORD": DATABASE_APP_PASSWORD,
        # Tests: the owner creates and migrates the test database; the app role uses it.
        "TEST": {"MIRROR": "owner"},
    },
    "owner": {**_owner, "CONN_MAX_AGE": 0},
}
DATABASE_ROUTERS = ["portal.db_router.OwnerMigratesRouter"]
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Auth -----------------------------------------------------------------------------------
AUTH_USER_MODEL = "accounts.User"
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",  # first: a locked-out client is refused before any password check
    "django.contrib.auth.backends.ModelBackend",
    "guardian.backends.ObjectPermissionBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 12}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
ANONYMOUS_USER_NAME = None  # guardian: no anonymous user row
LOGIN_URL = "admin:login"

SESSION_COOKIE_AGE = env.int("SESSION_IDLE_SECONDS", default=30 * 60)
SESSION_SAVE_EVERY_REQUEST = True
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"

# --- HTTPS: the portal terminates TLS itself (gunicorn, TLS 1.3 minimum) ---------------------
SECURE_SSL_REDIRECT = env.bool("PORTAL_SSL_REDIRECT", default=True)
SECURE_HSTS_SECONDS = env.int("PORTAL_HSTS_SECONDS", default=31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = True
SECURE_HSTS_PRELOAD = True
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
CSRF_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"
if env.bool("PORTAL_BEHIND_PROXY", default=False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

# Content Security Policy: scripts only from the portal itself, never inline; no framing.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        # Django admin and Swagger UI set style attributes; styles cannot run code.
        "style-src": ["'self'", "'unsafe-inline'"],
        "img-src": ["'self'", "data:"],
        "font-src": ["'self'"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
}
PERMISSIONS_POLICY = "camera=(), microphone=(), geolocation=(), payment=(), usb=(), interest-cohort=()"

# --- i18n / static --------------------------------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "var" / "static"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}

# --- API ------------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "portal.api_auth.ScopedTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "portal.api_schema.PortalAutoSchema",
    "DEFAULT_PAGINATION_CLASS": "portal.pagination.StrictPageNumberPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "EXCEPTION_HANDLER": "portal.api_errors.exception_handler",
}
# Swagger UI assets are served from the project (drf-spectacular-sidecar), never a CDN.
INSTALLED_APPS.append("drf_spectacular_sidecar")
SPECTACULAR_SETTINGS = {
    "TITLE": "Secure data portal API",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # No call-outs: the bundled Swagger UI would otherwise send the schema URL to swagger.io.
    "SWAGGER_UI_SETTINGS": {"deepLinking": True, "validatorUrl": None},
}

API_TOKEN_TTL = timedelta(days=env.int("API_TOKEN_TTL_DAYS", default=30))
REST_KNOX = {
    "TOKEN_TTL": API_TOKEN_TTL,
    "AUTH_HEADER_PREFIX": "Token",
    "AUTO_REFRESH": False,
    "TOKEN_LIMIT_PER_USER": env.int("API_TOKEN_LIMIT_PER_USER", default=10),
}

# --- Celery ---------------------------------------------------------------------------------
REDIS_URL = env.str("REDIS_URL", default="redis://127.0.0.1:6379/0")
CELERY_BROKER_URL = REDIS_URL
CELERY_RESULT_BACKEND = REDIS_URL
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
# A killed worker must not lose work: acknowledge after the task ran, redeliver if it died.
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_TIMEZONE = "UTC"

# --- Audit ----------------------------------------------------------------------------------
AUDITLOG_MASK_CALLABLE = "audit.redaction.mask_value"
AUDITLOG_INCLUDE_ALL_MODELS = False

# --- Logging: JSON lines, personal data redacted from every record --------------------------
LOG_LEVEL = env.str("LOG_LEVEL", default="INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        "redact": {"()": "audit.redaction.RedactingFilter"},
        "request_id": {"()": "portal.middleware.RequestIdLogFilter"},
    },
    "formatters": {"json": {"()": "audit.redaction.JsonFormatter"}},
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "json",
            "filters": ["request_id", "redact"],
        }
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
}

# --- Datasets: exports and temporary grants -------------------------------------------------
PORTAL_EXPORT_DIR = env.str("PORTAL_EXPORT_DIR", default=str(BASE_DIR / "var" / "exports"))
EXPORT_LINK_SECONDS = env.int("EXPORT_LINK_SECONDS", default=3600)
CACHES = {
    "default": {
        # Redis as an aid only: while it is down, reads miss and writes are dropped (portal/cache.py),
        # and a Redis that does not answer costs a request at most a second, never a hang.
        "BACKEND": "portal.cache.TolerantRedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": "portal",
        "TIMEOUT": 3600,
        "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 1},
    }
}
# Periodic work (django-celery-beat loads these into its admin-editable schedule at start).
CELERY_BEAT_SCHEDULE = {
    "expire-access-grants": {"task": "datasets.tasks.expire_grants", "schedule": 300.0},
    "requeue-stale-exports": {"task": "datasets.tasks.requeue_stale_exports", "schedule": 120.0},
}

# --- Audit and alerts -------------------------------------------------------------------------
# Alert thresholds (audit/alerts.py); each rule fires when its figure passes the threshold.
ALERT_FAILED_LOGINS = env.int("ALERT_FAILED_LOGINS", default=10)  # more than this many ...
ALERT_FAILED_LOGINS_MINUTES = env.int("ALERT_FAILED_LOGINS_MINUTES", default=15)  # ... in this window
ALERT_EXPORT_ROWS = env.int("ALERT_EXPORT_ROWS", default=100_000)  # an export of more rows
ALERT_PERMISSION_DENIALS = env.int("ALERT_PERMISSION_DENIALS", default=20)  # this many or more ...
ALERT_PERMISSION_DENIALS_MINUTES = env.int("ALERT_PERMISSION_DENIALS_MINUTES", default=5)
ALERT_DISTINCT_CUSTOMERS = env.int("ALERT_DISTINCT_CUSTOMERS", default=500)  # more distinct customers ...
ALERT_DISTINCT_CUSTOMERS_MINUTES = env.int("ALERT_DISTINCT_CUSTOMERS_MINUTES", default=60)
ALERT_BUSINESS_HOURS = env.str("ALERT_BUSINESS_HOURS", default="")  # e.g. "7-20"; empty: rule off
ALERT_TIMEZONE = env.str("ALERT_TIMEZONE", default="UTC")
ALERT_DEDUPE_MINUTES = env.int("ALERT_DEDUPE_MINUTES", default=60)  # repeats inside raise the count
# Notifications: email through Django's mail backend, and a webhook signed with HMAC-SHA256.
EMAIL_HOST = env.str("EMAIL_HOST", default="localhost")
EMAIL_PORT = env.int("EMAIL_PORT", default=25)
EMAIL_HOST_USER = env.str("EMAIL_HOST_USER", default="")
EMAIL_HOST_PASSWORD = env.str("EMAIL_HOST_PASSWORD", default="") or (
    Path(env.str("EMAIL_HOST_PASSWORD_FILE")).read_text(encoding="utf-8").strip()
    if env.str("EMAIL_HOST_PASSWORD_FILE", default="")
    else ""
)
EMAIL_USE_TLS = env.bool("EMAIL_USE_TLS", default=False)
EMAIL_USE_SSL = env.bool("EMAIL_USE_SSL", default=False)
EMAIL_TIMEOUT = env.int("EMAIL_TIMEOUT", default=10)
ALERT_EMAIL_TO = env.list("ALERT_EMAIL_TO", default=[])
ALERT_EMAIL_FROM = env.str("ALERT_EMAIL_FROM", default="portal-alerts@localhost")
ALERT_WEBHOOK_URL = env.str("ALERT_WEBHOOK_URL", default="")
# Optional: no webhook is sent while unset; when set it must be a real secret (32+ characters).
ALERT_WEBHOOK_SECRET = (
    read_secret("ALERT_WEBHOOK_SECRET")
    if env.str("ALERT_WEBHOOK_SECRET", default="") or env.str("ALERT_WEBHOOK_SECRET_FILE", default="")
    else ""
)
ALERT_WEBHOOK_TIMEOUT = env.int("ALERT_WEBHOOK_TIMEOUT", default=5)
# Admin viewer: an export or search result is bounded.
AUDIT_EXPORT_MAX_ROWS = env.int("AUDIT_EXPORT_MAX_ROWS", default=1_000_000)
CELERY_BEAT_SCHEDULE = {
    **globals().get("CELERY_BEAT_SCHEDULE", {}),
    "audit-daily-review": {"task": "audit.tasks.daily_review", "schedule": 24 * 3600.0},
}
# Incident response: the GDPR breach clock (alerts while the authority has not been notified)
# and where preserved evidence (encrypted JSON Lines) is kept.
INCIDENT_BREACH_WARN_HOURS = env.int("INCIDENT_BREACH_WARN_HOURS", default=48)
INCIDENT_BREACH_DEADLINE_HOURS = env.int("INCIDENT_BREACH_DEADLINE_HOURS", default=72)
INCIDENT_EVIDENCE_DIR = env.str("INCIDENT_EVIDENCE_DIR", default=str(Path(PORTAL_EXPORT_DIR) / "incident-evidence"))
CELERY_BEAT_SCHEDULE.update(
    {"audit-breach-deadlines": {"task": "audit.tasks.check_breach_deadlines", "schedule": 900.0}}
)

# --- Access: MFA, lockout, sessions ----------------------------------------------------------
# Every role signs in at the portal page (the admin login page admits staff only).
LOGIN_URL = "accounts:login"
LOGIN_REDIRECT_URL = "accounts:home"
# Browser sessions: idle timeout above (SESSION_COOKIE_AGE, renewed by every request), an
# absolute lifetime from login (accounts.middleware), and a session table indexed by user so
# that disabling a user or changing their password or role ends every session at once.
SESSION_ENGINE = "accounts.sessions"
SESSION_ABSOLUTE_SECONDS = env.int("SESSION_ABSOLUTE_SECONDS", default=12 * 3600)
# MFA (django-otp TOTP) for the roles in accounts.policy.MFA_REQUIRED_*; these paths need a
# verified session (the admin site also checks it itself).
MFA_REQUIRED_PATHS = ["/admin/"]
MFA_BACKUP_CODES = 10
OTP_TOTP_ISSUER = env.str("OTP_TOTP_ISSUER", default="Secure data portal")
OTP_ADMIN_HIDE_SENSITIVE_DATA = True
# Lockout (django-axes): failures counted per (email, client address), across user agents.
AXES_FAILURE_LIMIT = env.int("AXES_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = timedelta(minutes=env.int("AXES_COOLOFF_MINUTES", default=15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
# A lock lasts the cool-off from when it began; attempts during it do not extend it.
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False
AXES_USERNAME_CALLABLE = "accounts.lockout.username_of"
AXES_CLIENT_IP_CALLABLE = "portal.middleware.client_ip"
AXES_LOCKOUT_CALLABLE = "accounts.lockout.lockout_response"
AXES_HTTP_RESPONSE_CODE = 429
AXES_ENABLE_ACCESS_FAILURE_LOG = True
AXES_VERBOSE = False  # its log lines would name the attempted email
AXES_SENSITIVE_PARAMETERS = ["username", "email", "otp", "code", "otp_token", "password1", "password2"]
# API tokens: last use written at most this often per token.
API_TOKEN_TOUCH_SECONDS = 60
# Accounts with no login for this many days are disabled by a daily beat task.
INACTIVE_ACCOUNT_DAYS = env.int("INACTIVE_ACCOUNT_DAYS", default=90)
# A quarter's access review is due this many days after the quarter (or a late review) began.
ACCESS_REVIEW_DUE_DAYS = env.int("ACCESS_REVIEW_DUE_DAYS", default=30)
# --- end Access ------------------------------------------------------------------------------
# Celery must not replace the root logger's handlers: workers keep the JSON, redacting handler.
CELERY_WORKER_HIJACK_ROOT_LOGGER = False

# --- Compliance: subject requests ------------------------------------------------------------
# Access packages (encrypted ZIPs) live here; the DPO's download link lasts this long.
GDPR_PACKAGE_DIR = env.str("GDPR_PACKAGE_DIR", default=str(Path(PORTAL_EXPORT_DIR) / "subject-requests"))
GDPR_PACKAGE_LINK_SECONDS = env.int("GDPR_PACKAGE_LINK_DAYS", default=7) * 24 * 3600
# Open requests due within this many days raise a "due soon" alert (overdue ones a high alert).
GDPR_DUE_SOON_DAYS = env.int("GDPR_DUE_SOON_DAYS", default=7)
# Orders younger than this are under the bookkeeping duty: an erasure anonymises them (amounts
# kept, customer link removed); older orders of an erased subject are deleted.
GDPR_ORDER_RETENTION_DAYS = env.int("GDPR_ORDER_RETENTION_DAYS", default=7 * 365 + 2)
# Erased subjects (keyed hashes only) are appended here after each erasure, outside the database,
# so that `manage.py reapply_erasures` still knows them after restoring an older backup.
# Keep it with (not inside) the backups; empty: no ledger.
GDPR_ERASURE_LEDGER = env.str("GDPR_ERASURE_LEDGER", default=str(BASE_DIR / "var" / "erasure-ledger.jsonl"))
# A message not acknowledged this long after delivery (its worker died) is delivered again.
# Longer than the longest task; erasures and packages take seconds.
CELERY_BROKER_TRANSPORT_OPTIONS = {
    **globals().get("CELERY_BROKER_TRANSPORT_OPTIONS", {}),
    "visibility_timeout": env.int("CELERY_VISIBILITY_TIMEOUT_SECONDS", default=3600),
}
CELERY_BEAT_SCHEDULE.update(
    {
        "compliance-request-deadlines": {
            "task": "compliance.requests_tasks.check_request_deadlines",
            "schedule": 24 * 3600.0,
        },
        "compliance-requeue-stalled-requests": {
            "task": "compliance.requests_tasks.requeue_stalled_requests",
            "schedule": 600.0,
        },
    }
)
# --- end Compliance: subject requests ---------------------------------------------------------

# --- Compliance: retention and checklist ------------------------------------------------------
from celery.schedules import crontab  # noqa: E402 - kept inside this block

# Keyed pseudonyms of the analysts' extract (HMAC-SHA256); its own secret, never the blind-index
# key, so extracts cannot be joined with the database's look-up columns.
PSEUDONYM_KEY = read_secret("PSEUDONYM_KEY")
# Retention applies its policies in batches of at most this many rows per transaction (<= 10,000)
# and may pause between batches to spare a busy primary.
RETENTION_BATCH_SIZE = min(env.int("RETENTION_BATCH_SIZE", default=10_000), 10_000)
RETENTION_BATCH_PAUSE_MS = env.int("RETENTION_BATCH_PAUSE_MS", default=0)
# A policy is enabled only on a preview younger than this.
RETENTION_PREVIEW_VALID_HOURS = env.int("RETENTION_PREVIEW_VALID_HOURS", default=24)
# verify_backup: connection (must bypass row-level security; default: the owner's DATABASE_URL),
# client tools directory (default: matched to the server's major version), sampled values per
# encrypted column, and a time limit per tool run.
BACKUP_DATABASE_URL = env.str("BACKUP_DATABASE_URL", default="")
BACKUP_PG_BIN_DIR = env.str("BACKUP_PG_BIN_DIR", default="")
BACKUP_VERIFY_SAMPLE = env.int("BACKUP_VERIFY_SAMPLE", default=50)
BACKUP_VERIFY_TIMEOUT = env.int("BACKUP_VERIFY_TIMEOUT_SECONDS", default=3600)
CELERY_BEAT_SCHEDULE.update(
    {
        "compliance-retention-nightly": {
            "task": "compliance.governance_tasks.apply_retention",
            "schedule": crontab(hour=2, minute=30),
        },
        "compliance-checklist-monthly": {
            "task": "compliance.governance_tasks.take_monthly_snapshot",
            "schedule": crontab(day_of_month=1, hour=6, minute=0),
        },
        "compliance-verify-backup-monthly": {
            "task": "compliance.governance_tasks.verify_backup",
            "schedule": crontab(day_of_month=1, hour=3, minute=0),
        },
    }
)
# --- end Compliance: retention and checklist --------------------------------------------------
