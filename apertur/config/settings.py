"""Django settings, read from the environment (ARCHITECTURE section 6).

Every knob a deployment needs is an environment variable; the defaults make `make run` work on a fresh
machine with nothing configured: SQLite in WAL mode and a generated SECRET_KEY under ``var/``, mail
written to files under ``var/mail/``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
from pathlib import Path
from urllib.parse import urlsplit

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from apertur.core.logs import lean_records

BASE_DIR = Path(__file__).resolve().parent.parent
PROJECT_DIR = BASE_DIR.parent
VAR_DIR = Path(os.environ.get("APERTUR_VAR_DIR", PROJECT_DIR / "var")).resolve()


def _env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    return raw.strip().lower() in {"1", "true", "yes", "on"}


def _dev_secret_key() -> str:
    """A per-checkout key kept in var/ so sessions survive restarts without any configuration."""
    path = VAR_DIR / "secret_key"
    if not path.exists():
        VAR_DIR.mkdir(parents=True, exist_ok=True)
        # O_EXCL: two processes starting at once agree on one key.
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass
        else:
            with os.fdopen(fd, "w") as fh:
                fh.write(secrets.token_urlsafe(50))
    return path.read_text().strip()


DEBUG = _env_bool("DEBUG", False)
SECRET_KEY = os.environ.get("SECRET_KEY") or _dev_secret_key()
# Rotating SECRET_KEY: the previous key(s) here, comma-separated, keep what they signed valid (sessions, password
# reset, email confirmation and email-change links, the referral cookie) until those expire (docs/deploy.md).
SECRET_KEY_FALLBACKS = [k.strip() for k in os.environ.get("SECRET_KEY_FALLBACKS", "").split(",") if k.strip()]

APERTUR_BASE_URL = os.environ.get("APERTUR_BASE_URL", "http://localhost:8000").rstrip("/")
_base = urlsplit(APERTUR_BASE_URL)
BASE_URL_IS_HTTPS = _base.scheme == "https"

ALLOWED_HOSTS = [h for h in os.environ.get("ALLOWED_HOSTS", "").split(",") if h]
if not ALLOWED_HOSTS:
    ALLOWED_HOSTS = [_base.hostname or "localhost", "localhost", "127.0.0.1", "[::1]", ".localhost"]
CSRF_TRUSTED_ORIGINS = [f"{_base.scheme}://{_base.netloc}"]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django_tasks",
    "django_tasks_db",
    # django-ninja's own templates and static files: /api/v1/docs then serves Swagger UI from this site, with no
    # inline script (without the app it loads it from a CDN with an inline script, which our CSP refuses).
    "ninja",
    "apertur.core",
    "apertur.accounts",
    "apertur.projects",
    "apertur.partners",
    "apertur.referrals",
    "apertur.oauth",
    "apertur.uploads",
    "apertur.webhooks",
    "apertur.commissions",
    "apertur.payouts",
    "apertur.integrations.stripe",
    "apertur.api",
]

# The Browser* classes are Django's (and django-csp's) middleware, skipped on the machine paths partner
# servers call all day (/api/ and the token, revocation and introspection endpoints), which use no session,
# login, CSRF token or HTML; see apertur/api/middleware.py.
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "apertur.api.middleware.BrowserSessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "apertur.api.middleware.BrowserCsrfViewMiddleware",
    "apertur.api.middleware.BrowserAuthenticationMiddleware",
    "apertur.api.middleware.BrowserPrivatePagesMiddleware",
    "apertur.api.middleware.BrowserServiceUnavailableMiddleware",
    "apertur.api.middleware.BrowserMessageMiddleware",
    "apertur.api.middleware.BrowserXFrameOptionsMiddleware",
    "apertur.api.middleware.BrowserCSPMiddleware",
    "apertur.api.middleware.ApiRequestMiddleware",
    # Last: its 404 for a NUL in the path goes through the API's error format above it on /api/.
    "apertur.api.middleware.NulRequestMiddleware",
]

ROOT_URLCONF = "apertur.config.urls"
WSGI_APPLICATION = "apertur.config.wsgi.application"

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
                "apertur.core.context_processors.site",
                "apertur.accounts.flow.account_links",
            ],
        },
    }
]

# --- Database ---------------------------------------------------------------------------------------
DATABASE_URL = os.environ.get("DATABASE_URL") or f"sqlite:///{VAR_DIR / 'apertur.sqlite3'}"
# Persistent connections (CONN_MAX_AGE seconds: 60 by default, 600 on SQLite, below). Django's health check
# of a reused connection (DB_HEALTH_CHECKS=1) costs a "SELECT 1" round trip at the start of every request that
# touches the database: on PostgreSQL that doubles the round trips of a bearer-protected API call. Off by
# default, as in Django: a connection that broke while idle (a database restart or failover) fails the one
# request that finds it, and Django closes it after that request (docs/deploy.md).
DATABASES = {
    "default": dj_database_url.parse(
        DATABASE_URL,
        conn_max_age=int(os.environ.get("CONN_MAX_AGE", "60")),
        conn_health_checks=os.environ.get("DB_HEALTH_CHECKS", "") == "1",
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # libpq's default is to wait for ever for a server (or a proxy in front of it) that accepts the connection and
    # never answers: every request that needs a new connection, /healthz included, would hang with it. Seconds,
    # a whole number (libpq takes 2 at least); a connect_timeout in DATABASE_URL's query string wins.
    DATABASES["default"].setdefault("OPTIONS", {}).setdefault(
        "connect_timeout", int(os.environ.get("DB_CONNECT_TIMEOUT", "5"))
    )
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    # models.W040: SQLite has no covering indexes; the ledger's index is built there without its INCLUDE
    # columns (the same index, no index-only scans), which is all the zero-setup default needs.
    SILENCED_SYSTEM_CHECKS = ["models.W040"]
    # Persistent connections: opening a SQLite connection and running the pragmas below cost more than a
    # whole token request, so each app process keeps its connection (Django still closes it after an error
    # or once CONN_MAX_AGE seconds have passed, and the health check replaces a broken one).
    DATABASES["default"]["CONN_MAX_AGE"] = int(os.environ.get("CONN_MAX_AGE", "600"))
    DATABASES["default"]["OPTIONS"] = {
        # WAL lets readers and one writer work at once; IMMEDIATE takes the write lock at BEGIN so two
        # writers queue on busy_timeout instead of failing with "database is locked" mid-transaction.
        # synchronous=NORMAL in WAL mode: a COMMIT is written to the WAL file before the response (another
        # process sees it at once, and it survives the app process crashing), but the WAL is fsynced at
        # checkpoints rather than at every commit, so an OS crash or power loss can lose the last
        # transactions (never corrupt the database). synchronous=FULL (env SQLITE_SYNCHRONOUS=FULL) fsyncs
        # every commit. PostgreSQL deployments keep PostgreSQL's own fsync at commit.
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
        "init_command": (
            "PRAGMA journal_mode=WAL; "
            f"PRAGMA synchronous={'FULL' if os.environ.get('SQLITE_SYNCHRONOUS', '').upper() == 'FULL' else 'NORMAL'}; "
            "PRAGMA foreign_keys=ON; PRAGMA temp_store=MEMORY; PRAGMA cache_size=-16000;"
        ),
    }
    # Tests use a file too, not Django's shared-cache memory database: the live server answers requests on
    # several threads, and only a real file gets WAL and the busy timeout instead of "table is locked".
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / f"test-{os.getpid()}.sqlite3")}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Cache / rate limits ----------------------------------------------------------------------------
REDIS_URL = os.environ.get("REDIS_URL", "")
if REDIS_URL:
    # Every rate-limited request waits on Redis: a server that accepts the connection and never answers must fail
    # the request (503, apertur/core/ratelimit.py) within REDIS_TIMEOUT seconds, whatever redis-py's own default
    # (none before redis-py 8).
    _redis_timeout = float(os.environ.get("REDIS_TIMEOUT", "5"))
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "OPTIONS": {"socket_connect_timeout": _redis_timeout, "socket_timeout": _redis_timeout},
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# The cache of access-token checks (apertur/oauth/token_cache.py, docs/deploy.md): "local" (each app process
# keeps the checks it made; a generation shared through a memory-mapped file on the host voids them at once on
# any revocation, and with PostgreSQL a LISTEN/NOTIFY channel carries it to the processes of other hosts) is the
# default; "shared" (APERTUR_TOKEN_CACHE=1 with REDIS_URL) keeps the checks in Redis instead, for a connection
# pooler that cannot carry LISTEN; "0" turns it off.
_token_cache_env = os.environ.get("APERTUR_TOKEN_CACHE", "").strip().lower()
if _token_cache_env in {"1", "true", "yes", "on", "shared"}:
    APERTUR_TOKEN_CACHE = "shared" if REDIS_URL else "off"
elif _token_cache_env in {"0", "false", "no", "off"}:
    APERTUR_TOKEN_CACHE = "off"
elif _token_cache_env in {"", "local"}:
    APERTUR_TOKEN_CACHE = "local"
else:
    raise ImproperlyConfigured(
        f"APERTUR_TOKEN_CACHE must be local, 1 (shared, with REDIS_URL) or 0, not {_token_cache_env!r}"
    )
# PostgreSQL: the OAuth hot-path lookups are prepared once per connection (apertur/oauth/compiled.py); turn
# off behind a transaction-mode connection pooler that does not keep prepared statements.
APERTUR_PG_PREPARE = _env_bool("APERTUR_PG_PREPARE", True)

# --- Background tasks -------------------------------------------------------------------------------
TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}

# Webhook deliveries never go to private networks; loopback receivers only in development.
WEBHOOKS_ALLOW_LOOPBACK = _env_bool("WEBHOOKS_ALLOW_LOOPBACK", DEBUG)

# --- Auth -------------------------------------------------------------------------------------------
AUTH_USER_MODEL = "accounts.User"
AUTHENTICATION_BACKENDS = ["apertur.accounts.backends.EmailBackend"]
PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 8}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "/login"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/"
PASSWORD_RESET_TIMEOUT = 60 * 60 * 3
# Email confirmation links (signup, and the link an email change sends to the new address): their own, longer life.
EMAIL_CONFIRMATION_TIMEOUT = 60 * 60 * 24 * 3

# Login throttling (per account and per client IP), fixed windows in the cache.
LOGIN_RATE_PER_ACCOUNT_IP = (int(os.environ.get("LOGIN_RATE_PER_ACCOUNT_IP", "10")), 15 * 60)
LOGIN_RATE_PER_ACCOUNT = (int(os.environ.get("LOGIN_RATE_PER_ACCOUNT", "100")), 15 * 60)
LOGIN_RATE_PER_IP = (int(os.environ.get("LOGIN_RATE_PER_IP", "50")), 15 * 60)

# --- Security headers -------------------------------------------------------------------------------
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"
# A stale form (a login in another tab rotated the token) gets a page of the site, still a 403.
CSRF_FAILURE_VIEW = "apertur.accounts.views.csrf_failure"
# Outside DEBUG the cookies are Secure and HSTS is on whenever Apertur is served over HTTPS; a plain-http
# base URL (a loopback deployment) cannot carry Secure cookies, so it keeps them off rather than breaking
# every login.
_secure = not DEBUG and BASE_URL_IS_HTTPS
SESSION_COOKIE_SECURE = _secure
CSRF_COOKIE_SECURE = _secure
SECURE_SSL_REDIRECT = _secure and _env_bool("SECURE_SSL_REDIRECT", True)
# Load balancers probe /healthz over plain HTTP: answer it instead of redirecting to https.
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
SECURE_HSTS_SECONDS = 60 * 60 * 24 * 365 if _secure else 0
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if _env_bool("BEHIND_PROXY", False) else None
TRUSTED_PROXY_HOPS = int(os.environ.get("TRUSTED_PROXY_HOPS", "1"))
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "style-src": ["'self'"],
        "script-src": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
        "base-uri": ["'none'"],
        "object-src": ["'none'"],
    }
}

# --- Mail -------------------------------------------------------------------------------------------
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "Apertur <no-reply@apertur.ca>")
STAFF_NOTIFY_EMAIL = os.environ.get("STAFF_NOTIFY_EMAIL", "partners@apertur.ca")
# Where a user writes when their account was changed without them (named in the email-changed notice).
SUPPORT_EMAIL = os.environ.get("SUPPORT_EMAIL", "support@apertur.ca")
MAIL_DIR = Path(os.environ.get("APERTUR_MAIL_DIR", VAR_DIR / "mail"))
if os.environ.get("EMAIL_HOST"):
    EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    EMAIL_HOST = os.environ["EMAIL_HOST"]
    EMAIL_PORT = int(os.environ.get("EMAIL_PORT", "587"))
    EMAIL_HOST_USER = os.environ.get("EMAIL_HOST_USER", "")
    EMAIL_HOST_PASSWORD = os.environ.get("EMAIL_HOST_PASSWORD", "")
    EMAIL_USE_TLS = _env_bool("EMAIL_USE_TLS", True)
    # Django's default is no timeout: a mail server that accepts the connection and never answers would hold the
    # request (mail goes out when its transaction commits) or the worker for ever. A failed send is logged.
    EMAIL_TIMEOUT = float(os.environ.get("EMAIL_TIMEOUT", "10"))
else:
    EMAIL_BACKEND = "apertur.core.mail.MaildirBackend"

# --- I18N / time ------------------------------------------------------------------------------------
LANGUAGE_CODE = "en-ca"
TIME_ZONE = "America/Toronto"
USE_I18N = True
USE_TZ = True

# --- Static -----------------------------------------------------------------------------------------
MEDIA_ROOT = Path(os.environ.get("APERTUR_MEDIA_DIR", VAR_DIR / "media"))
# Uploads are served only through views that check ownership, never straight from MEDIA_URL.
DATA_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024
FILE_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024
# A guest's file is kept, in memory or a temporary file, only up to its link's plan's limit (uploads.handlers).
FILE_UPLOAD_HANDLERS = [
    "apertur.uploads.handlers.PlanFileSizeLimit",
    "django.core.files.uploadhandler.MemoryFileUploadHandler",
    "django.core.files.uploadhandler.TemporaryFileUploadHandler",
]

STATIC_URL = "/static/"
STATIC_ROOT = VAR_DIR / "static"
STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # WhiteNoise warns at start-up when it is missing
STATICFILES_DIRS = [BASE_DIR / "static"]
# Uploads go to the filesystem under var/media by default, or to an S3-compatible bucket (AWS, MinIO, R2…)
# when UPLOADS_S3_BUCKET is set.
UPLOADS_S3_BUCKET = os.environ.get("UPLOADS_S3_BUCKET", "")
_default_storage: dict[str, object] = {"BACKEND": "django.core.files.storage.FileSystemStorage"}
if UPLOADS_S3_BUCKET:
    from botocore.config import Config as _S3Config

    # botocore waits 60 s for a connection and for each read, and retries: an endpoint that stops answering would
    # hold a guest's upload (and the rows it locks) for minutes, with no request timeout in the app server. Each
    # wait is bounded by UPLOADS_S3_TIMEOUT seconds (a slow part of a large file still goes: the bound is per read),
    # with one retry; the guest is then told to try again.
    _s3_timeout = float(os.environ.get("UPLOADS_S3_TIMEOUT", "10"))
    _default_storage = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": UPLOADS_S3_BUCKET,
            "endpoint_url": os.environ.get("UPLOADS_S3_ENDPOINT_URL") or None,
            "region_name": os.environ.get("UPLOADS_S3_REGION") or None,
            "access_key": os.environ.get("UPLOADS_S3_ACCESS_KEY_ID") or None,
            "secret_key": os.environ.get("UPLOADS_S3_SECRET_ACCESS_KEY") or None,
            "location": os.environ.get("UPLOADS_S3_PREFIX", ""),
            "default_acl": None,
            "querystring_auth": True,
            "file_overwrite": False,
            "client_config": _S3Config(
                connect_timeout=_s3_timeout,
                read_timeout=_s3_timeout,
                retries={"total_max_attempts": 2, "mode": "standard"},
            ),
        },
    }
STORAGES = {
    "default": _default_storage,
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG
            else "whitenoise.storage.CompressedStaticFilesStorage"
        )
    },
}
WHITENOISE_USE_FINDERS = True

# --- Third-party settings reserved for later features (ARCHITECTURE section 6) ----------------------
PAYPAL_API_BASE = os.environ.get("PAYPAL_API_BASE", "http://127.0.0.1:8002")
PAYPAL_CLIENT_ID = os.environ.get("PAYPAL_CLIENT_ID", "")
PAYPAL_CLIENT_SECRET = os.environ.get("PAYPAL_CLIENT_SECRET", "")
PAYPAL_TIMEOUT_SECONDS = float(
    os.environ.get("PAYPAL_TIMEOUT_SECONDS", "10")
)  # per request; the emulator's timeout switch waits longer
# The id PayPal gave our webhook (Developer Dashboard → app → Webhooks): verify-webhook-signature needs it.
# Without it every PayPal delivery is refused (the poller still reconciles payouts).
PAYPAL_WEBHOOK_ID = os.environ.get("PAYPAL_WEBHOOK_ID", "")
# Seconds between two passes of the payout schedule in `apertur worker` (runs due, polling, events).
PAYOUT_SCHEDULER_INTERVAL = float(os.environ.get("PAYOUT_SCHEDULER_INTERVAL", "300"))
# Threads a payout run pays its chunks of partners from (each on its own database connection; every guarantee
# holds per chunk). 1 keeps the run sequential.
PAYOUT_RUN_WORKERS = int(os.environ.get("PAYOUT_RUN_WORKERS", "1"))
# Partners paid by one PayPal batch (one item each; PayPal takes up to 15,000 items per batch).
PAYOUT_BATCH_SIZE = int(os.environ.get("PAYOUT_BATCH_SIZE", "1000"))
# ...and at most this many commission entries per chunk past its first partner (one chunk is one transaction).
PAYOUT_CHUNK_ENTRIES = int(os.environ.get("PAYOUT_CHUNK_ENTRIES", "100000"))
# Days a payout may stay held by PayPal (item ONHOLD or BLOCKED) before staff are emailed about it, once per hold.
PAYOUT_HELD_ALERT_DAYS = int(os.environ.get("PAYOUT_HELD_ALERT_DAYS", "5"))
# Days a payout may stay sent or processing (PayPal item PENDING) before staff are emailed about it, once per stretch.
PAYOUT_PROCESSING_ALERT_DAYS = int(os.environ.get("PAYOUT_PROCESSING_ALERT_DAYS", "3"))


def dev_stripe_webhook_secret(secret_key: str) -> str:
    """A stable development signing secret derived from SECRET_KEY, so ``make run``'s webhook and
    ``apertur billing simulate`` agree without configuration. Production sets STRIPE_WEBHOOK_SECRET to the
    endpoint's secret from the Stripe dashboard (``whsec_…``): Stripe cannot know this derived one."""
    digest = hmac.new(secret_key.encode(), b"apertur-dev-stripe-webhook-secret", hashlib.sha256).digest()
    return "whsec_" + base64.urlsafe_b64encode(digest).decode().rstrip("=")


STRIPE_WEBHOOK_SECRET = os.environ.get("STRIPE_WEBHOOK_SECRET") or dev_stripe_webhook_secret(SECRET_KEY)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    # Written on a thread of its own: request threads only queue their records (apertur/core/logs.py).
    "handlers": {"console": {"class": "apertur.core.logs.BackgroundStreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    # Authlib logs whole token responses at DEBUG: never below INFO, whatever LOG_LEVEL says. httpx logs every
    # request's URL at INFO: a webhook endpoint's or destination's URL may hold its receiver's secret, and each
    # attempt is recorded in its delivery log anyway (the CLI's tables say what they sent); its warnings stay.
    "loggers": {
        # Listed to drop the handlers Django's defaults give it (a raw console copy of each record with DEBUG on,
        # the mail_admins one: no ADMINS here): its records reach the console handler above once, formatted.
        "django": {},
        "django.db.backends": {"level": "INFO"},
        "authlib": {"level": "INFO"},
        "httpx": {"level": "WARNING"},
    },
}
#: URL paths whose rest is a secret (a link that works by being known): logged as "<prefix>[redacted]" by the
#: access and request logs (core.logs.RedactSecretPaths). A test checks every route with a token in its path
#: is covered.
SECRET_PATH_PREFIXES = (
    "/u/",  # a guest upload link
    "/confirm-email/",
    "/password-reset/",
    "/account/email/confirm/",
    "/partners/payouts/confirm/",
)
# The "plain" format reads the time, level, logger name and message only: records skip the caller's
# file/line lookup and the thread and process names (the API logs a line per request).
lean_records()
