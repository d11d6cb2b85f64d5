"""One env-driven settings module.

No environment at all gives the embedded default: SQLite, the in-memory channel layer, a
local-memory cache and the django-q2 ORM broker, with the scheduler ticking inside the web
process. ``DATABASE_URL`` switches to PostgreSQL (psycopg 3 with its pool) and ``REDIS_URL`` to
channels-redis, a Redis cache and the Redis broker. Every variable is documented in
docs/configuration.md.
"""

from __future__ import annotations

import os
import sys
from datetime import timedelta
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlparse

from django.core.exceptions import ImproperlyConfigured
from django.utils.translation import gettext_lazy as _

from messenger.client_address import parse_trusted_proxies

BASE_DIR = Path(__file__).resolve().parent.parent


def env_str(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    return raw.strip().lower() in {"1", "true", "yes", "on"}


def env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError as error:
        raise ImproperlyConfigured(f"{name} must be an integer, got {raw!r}") from error


def env_list(name: str, default: list[str]) -> list[str]:
    raw = os.environ.get(name)
    if raw is None:
        return default
    return [item.strip() for item in raw.split(",") if item.strip()]


EMAIL_SCHEMES = {"smtp": (False, False), "smtp+tls": (True, False), "smtp+ssl": (False, True), "smtps": (False, True)}


def parse_email_url(url: str) -> dict:
    """smtp+tls://user:pass@host:587 → Django's EMAIL_* settings; console:// prints to the log."""
    parsed = urlparse(url)
    if parsed.scheme == "console":
        return {"EMAIL_BACKEND": "django.core.mail.backends.console.EmailBackend"}
    if parsed.scheme not in EMAIL_SCHEMES:
        raise ImproperlyConfigured(
            f"EMAIL_URL scheme {parsed.scheme!r} is not one of console, {', '.join(EMAIL_SCHEMES)}"
        )
    use_tls, use_ssl = EMAIL_SCHEMES[parsed.scheme]
    options = {k: v[-1] for k, v in parse_qs(parsed.query).items()}
    try:
        port = parsed.port
        timeout = int(options.get("timeout", 10))
    except ValueError as error:
        raise ImproperlyConfigured(f"EMAIL_URL: {error} (a port is 1–65535, ?timeout= a number of seconds)") from None
    return {
        "EMAIL_BACKEND": "django.core.mail.backends.smtp.EmailBackend",
        "EMAIL_HOST": parsed.hostname or "localhost",
        "EMAIL_PORT": port or (465 if use_ssl else 587 if use_tls else 25),
        "EMAIL_HOST_USER": unquote(parsed.username or ""),
        "EMAIL_HOST_PASSWORD": unquote(parsed.password or ""),
        "EMAIL_USE_TLS": use_tls,
        "EMAIL_USE_SSL": use_ssl,
        "EMAIL_TIMEOUT": timeout,
    }


def parse_database_url(url: str) -> dict:
    """postgres://user:pass@host:port/name?opt=value → a Django DATABASES entry."""
    parsed = urlparse(url)
    if parsed.scheme in {"sqlite", "sqlite3"}:
        path = unquote(parsed.path[1:] if parsed.path.startswith("//") else parsed.path)
        return {"ENGINE": "django.db.backends.sqlite3", "NAME": path or BASE_DIR / "db.sqlite3"}
    if parsed.scheme not in {"postgres", "postgresql", "pgsql"}:
        raise ImproperlyConfigured(f"DATABASE_URL scheme {parsed.scheme!r} is not supported")
    options: dict = {k: v[-1] for k, v in parse_qs(parsed.query).items()}
    pool_enabled = options.pop("pool", "1") not in {"0", "false", "no"}
    if pool_enabled:
        options["pool"] = {
            "min_size": env_int("MESSENGER_DB_POOL_MIN", 2),
            "max_size": env_int("MESSENGER_DB_POOL_MAX", 20),
            # Seconds a request or socket command waits for a connection. During an outage every
            # request waits this long before its 503 / ``unavailable`` (docs/runbook.md), and a
            # socket handshake must be answered before daphne drops it (5 s).
            "timeout": env_int("MESSENGER_DB_POOL_TIMEOUT", 3),
        }
    # An unreachable host (packets dropped, not refused) would otherwise hold each new connection
    # for the operating system's TCP timeout, minutes.
    options.setdefault("connect_timeout", "2")
    # Server-side binding with prepared statements: PostgreSQL parses and plans a repeated
    # statement once per connection (measured: a third to a half less PostgreSQL CPU per send,
    # docs/benchmarks.md, "Prepared statements"). ``?server_side_binding=0`` goes back to
    # client-side binding (e.g. behind a pooler that cannot keep prepared statements).
    options["server_side_binding"] = options.get("server_side_binding", "1") not in {"0", "false", "no"}
    options["prepare_threshold"] = int(options.get("prepare_threshold", 5)) if options["server_side_binding"] else None
    return {
        # Django's PostgreSQL backend, batching within server-side binding's parameter limit.
        "ENGINE": "messenger.db.postgresql",
        "NAME": unquote(parsed.path.lstrip("/")) or "postgres",
        "USER": unquote(parsed.username or ""),
        "PASSWORD": unquote(parsed.password or ""),
        "HOST": parsed.hostname or "",
        "PORT": str(parsed.port or ""),
        # Under ASGI every request runs in a fresh thread: persistent connections would leak,
        # so connections come from psycopg's pool instead.
        "CONN_MAX_AGE": 0,
        "OPTIONS": options,
    }


DEBUG = env_bool("DEBUG", True)
SECRET_KEY = env_str("SECRET_KEY")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG=0")
    SECRET_KEY = "insecure-embedded-default-key-change-me-0123456789abcdef"

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])
# Reverse proxies whose X-Forwarded-For is believed (messenger/client_address.py), parsed once here.
try:
    MESSENGER_TRUSTED_PROXIES = parse_trusted_proxies(env_str("MESSENGER_TRUSTED_PROXIES"))
except ValueError as error:
    raise ImproperlyConfigured(f"MESSENGER_TRUSTED_PROXIES: {error}") from error

DATABASE_URL = env_str("DATABASE_URL")
REDIS_URL = env_str("REDIS_URL")
TESTING = "pytest" in sys.modules or (len(sys.argv) > 1 and sys.argv[1] == "test")

INSTALLED_APPS = [
    "daphne",
    "messenger.apps.MessengerAdminConfig",  # django.contrib.admin, index grouped (messenger/admin_site.py)
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_q",
    "axes",
    "messenger",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "messenger.staticfiles.StaticFilesMiddleware",
    "messenger.api.cors.WidgetCorsMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "messenger.middleware.SecurityHeadersMiddleware",
    "messenger.middleware.DatabaseUnavailableMiddleware",
    # Last, as django-axes requires: turns a locked-out login into its lockout answer.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "project.urls"
ASGI_APPLICATION = "project.asgi.application"
WSGI_APPLICATION = None

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
                "django.template.context_processors.i18n",
            ]
        },
    }
]

if DATABASE_URL:
    DATABASES = {"default": parse_database_url(DATABASE_URL)}
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": env_str("SQLITE_PATH", str(BASE_DIR / "db.sqlite3")),
            "OPTIONS": {"timeout": 20, "transaction_mode": "IMMEDIATE", "init_command": "PRAGMA journal_mode=WAL;"},
        }
    }
if env_str("MESSENGER_TEST_DB_NAME"):
    DATABASES["default"]["TEST"] = {"NAME": env_str("MESSENGER_TEST_DB_NAME")}
elif DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    # A file, not :memory:, so that server processes started by tests share it.
    DATABASES["default"]["TEST"] = {"NAME": str(BASE_DIR / ".test-db.sqlite3")}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

CHANNEL_PREFIX = env_str("MESSENGER_CHANNEL_PREFIX", "msgr")
if REDIS_URL:
    # The pub/sub layer: measured here, the list-based RedisChannelLayer silently dropped 58 % of
    # frames at 1 000/s (per-channel capacity) while the pub/sub layer delivered all of them.
    # socket_timeout=None: redis-py 8 defaults it to 5 s, which tears idle sockets down.
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
            "CONFIG": {
                "hosts": [{"address": REDIS_URL, "socket_timeout": None, "socket_connect_timeout": 5}],
                "prefix": CHANNEL_PREFIX,
            },
        }
    }
    CACHES = {
        "default": {
            "BACKEND": "messenger.cache.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": CHANNEL_PREFIX,
            "OPTIONS": {"socket_timeout": 5, "socket_connect_timeout": 5},
        }
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "messenger"}}

# django-q2. With Redis the broker is Redis: a list pop wakes the worker at once, where the ORM
# broker polls the database. Without Redis the ORM broker keeps the embedded default one-file.
Q_CLUSTER = {
    "name": CHANNEL_PREFIX,
    "workers": env_int("MESSENGER_Q_WORKERS", 2),
    "timeout": 90,
    "retry": 120,
    "max_attempts": 3,
    "catch_up": False,
    "ack_failures": True,
    "label": "Django Q2",
}
if REDIS_URL:
    Q_CLUSTER["redis"] = REDIS_URL
else:
    Q_CLUSTER["orm"] = "default"

# Login lockout (django-axes): failures are counted per user name and client address together,
# for every login through django.contrib.auth (the dashboard's and the admin's). LockoutBackend
# only refuses locked-out attempts; ModelBackend authenticates (docs/security.md, "Staff sessions
# and logins").
AUTHENTICATION_BACKENDS = ["messenger.login_lockout.LockoutBackend", "django.contrib.auth.backends.ModelBackend"]
AXES_FAILURE_LIMIT = env_int("MESSENGER_LOGIN_FAILURE_LIMIT", 10)
MESSENGER_LOGIN_LOCKOUT_MINUTES = env_int("MESSENGER_LOGIN_LOCKOUT_MINUTES", 15)
# 0: locked out until unlocked by hand (docs/runbook.md).
AXES_COOLOFF_TIME = timedelta(minutes=MESSENGER_LOGIN_LOCKOUT_MINUTES) if MESSENGER_LOGIN_LOCKOUT_MINUTES else None
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_DISABLE_ACCESS_LOG = True  # successful logins are not logged; lockouts are audited (ActivityEvent)
AXES_CLIENT_IP_CALLABLE = "messenger.login_lockout.client_ip"
AXES_LOCKOUT_CALLABLE = "messenger.login_lockout.lockout_response"
AXES_VERBOSE = False
if AXES_FAILURE_LIMIT < 1 or MESSENGER_LOGIN_LOCKOUT_MINUTES < 0:
    raise ImproperlyConfigured(
        "MESSENGER_LOGIN_FAILURE_LIMIT must be at least 1, MESSENGER_LOGIN_LOCKOUT_MINUTES at least 0"
    )

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]

LANGUAGE_CODE = env_str("LANGUAGE_CODE", "en")
LANGUAGES = [("en", _("English")), ("ru", _("Russian"))]
LOCALE_PATHS = [BASE_DIR / "messenger" / "locale"]
TIME_ZONE = env_str("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = Path(env_str("STATIC_ROOT", str(BASE_DIR / "staticfiles")))
STATICFILES_DIRS = [BASE_DIR / "static"]
# Production serves what collectstatic wrote: hashed names (cached for a year) with gzip and brotli
# copies. DEBUG serves the sources as they are edited, without collectstatic.
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if DEBUG
        else "messenger.staticfiles.ProductionStaticFilesStorage"
    },
}
WHITENOISE_USE_FINDERS = DEBUG
WHITENOISE_AUTOREFRESH = DEBUG
# Unhashed names, among them the embed URL /static/messenger/widget-loader.js: a release reaches
# every site within this time.
WHITENOISE_MAX_AGE = 0 if DEBUG else env_int("MESSENGER_STATIC_MAX_AGE", 300)
# Files served at the site's root: /favicon.ico.
WHITENOISE_ROOT = BASE_DIR / "public"
MEDIA_ROOT = Path(env_str("MEDIA_ROOT", str(BASE_DIR / "media")))
MEDIA_URL = "/media/"

LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/dashboard/"
LOGOUT_REDIRECT_URL = "/accounts/login/"

SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", not DEBUG)
CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", not DEBUG)
# HTTPS: off unless the environment turns it on, since they are only right behind TLS
# (docs/deployment.md sets them all).
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", False)
# The orchestrator's and the proxy's probes speak plain HTTP to the process itself.
SECURE_REDIRECT_EXEMPT = [r"^health/$"]
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", False)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", False)
# The header a TLS-terminating proxy sets to "https" (e.g. X-Forwarded-Proto). Only behind a
# proxy that always overwrites it: a client reaching the process directly could forge it.
_proxy_ssl_header = env_str("SECURE_PROXY_SSL_HEADER")
if _proxy_ssl_header:
    SECURE_PROXY_SSL_HEADER = ("HTTP_" + _proxy_ssl_header.strip().upper().replace("-", "_"), "https")
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["rest_framework.authentication.SessionAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "messenger.api.errors.exception_handler",
    "DEFAULT_CONTENT_NEGOTIATION_CLASS": "messenger.api.negotiation.ContentNegotiation",
    "DEFAULT_PARSER_CLASSES": [
        "messenger.api.parsers.JSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Messenger API",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # Request bodies get components of their own, so that a file upload is `format: binary`.
    "COMPONENT_SPLIT_REQUEST": True,
    # /api/docs/ (Swagger UI) from our own static files, never a CDN; no call to the online validator.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "SWAGGER_UI_SETTINGS": {"deepLinking": True, "validatorUrl": None},
    # Its check generates the whole OpenAPI schema and reports the schema's gaps as warnings:
    # not a deployment matter, and `check --deploy` must come out clean for a production setup.
    "ENABLE_DJANGO_DEPLOY_CHECK": False,
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    # axes logs every login at INFO; its failures and lockouts are at WARNING.
    "loggers": {
        "django.channels.server": {"level": "WARNING"},
        "daphne": {"level": "WARNING"},
        "axes": {"level": "WARNING"},
    },
}

# --- Messenger ---------------------------------------------------------------------------------
# Rates are "count/period" with period one of s, min, h, d (e.g. "30/min").
MESSENGER_ENABLED = env_bool("MESSENGER_ENABLED", True)
MESSENGER_DEFAULT_BRANCH_ID = env_int("MESSENGER_DEFAULT_BRANCH_ID", 0) or None
MESSENGER_WIDGET_BOOTSTRAP_RATE_PER_IP = env_str("MESSENGER_WIDGET_BOOTSTRAP_RATE_PER_IP", "60/min")
MESSENGER_WIDGET_BOOTSTRAP_RATE_PER_TOKEN = env_str("MESSENGER_WIDGET_BOOTSTRAP_RATE_PER_TOKEN", "3000/min")
MESSENGER_WIDGET_SEND_RATE_PER_SESSION = env_str("MESSENGER_WIDGET_SEND_RATE_PER_SESSION", "60/min")
MESSENGER_WIDGET_SEND_RATE_PER_IP = env_str("MESSENGER_WIDGET_SEND_RATE_PER_IP", "300/min")
MESSENGER_WIDGET_POLL_RATE_PER_SESSION = env_str("MESSENGER_WIDGET_POLL_RATE_PER_SESSION", "600/min")
# Requests one REST API token may make (docs/integrations.md, "Rate limits").
MESSENGER_API_RATE_PER_TOKEN = env_str("MESSENGER_API_RATE_PER_TOKEN", "600/min")
MESSENGER_CONVERSATION_FLOOD_LIMIT = env_str("MESSENGER_CONVERSATION_FLOOD_LIMIT", "20/min")
MESSENGER_CAPTCHA_AFTER_CONVERSATIONS_PER_IP = env_int("MESSENGER_CAPTCHA_AFTER_CONVERSATIONS_PER_IP", 5)
# The CAPTCHA past that threshold (messenger/captcha.py): ALTCHA's proof of work, or a provider.
MESSENGER_CAPTCHA = env_str("MESSENGER_CAPTCHA", "altcha").strip().lower()
if MESSENGER_CAPTCHA not in {"altcha", "turnstile", "hcaptcha"}:
    raise ImproperlyConfigured(f"MESSENGER_CAPTCHA must be altcha, turnstile or hcaptcha, got {MESSENGER_CAPTCHA!r}")
MESSENGER_CAPTCHA_HMAC_KEY = env_str("MESSENGER_CAPTCHA_HMAC_KEY")  # empty: derived from SECRET_KEY
MESSENGER_CAPTCHA_EXPIRES_SECONDS = env_int("MESSENGER_CAPTCHA_EXPIRES_SECONDS", 300)
MESSENGER_CAPTCHA_ALTCHA_MAX_NUMBER = env_int("MESSENGER_CAPTCHA_ALTCHA_MAX_NUMBER", 100_000)
if MESSENGER_CAPTCHA_ALTCHA_MAX_NUMBER < 1:
    raise ImproperlyConfigured("MESSENGER_CAPTCHA_ALTCHA_MAX_NUMBER must be at least 1")
MESSENGER_CAPTCHA_SITE_KEY = env_str("MESSENGER_CAPTCHA_SITE_KEY")
MESSENGER_CAPTCHA_SECRET = env_str("MESSENGER_CAPTCHA_SECRET")
MESSENGER_CAPTCHA_VERIFY_URL = env_str("MESSENGER_CAPTCHA_VERIFY_URL")  # empty: the provider's siteverify
if MESSENGER_CAPTCHA_VERIFY_URL and urlparse(MESSENGER_CAPTCHA_VERIFY_URL).scheme not in {"http", "https"}:
    raise ImproperlyConfigured("MESSENGER_CAPTCHA_VERIFY_URL must be an http(s) URL")
MESSENGER_CAPTCHA_VERIFY_TIMEOUT_SECONDS = env_int("MESSENGER_CAPTCHA_VERIFY_TIMEOUT_SECONDS", 3)
if MESSENGER_CAPTCHA != "altcha" and not (MESSENGER_CAPTCHA_SITE_KEY and MESSENGER_CAPTCHA_SECRET):
    raise ImproperlyConfigured(
        f"MESSENGER_CAPTCHA={MESSENGER_CAPTCHA} needs MESSENGER_CAPTCHA_SITE_KEY and MESSENGER_CAPTCHA_SECRET"
    )
MESSENGER_MESSAGE_MAX_LENGTH = env_int("MESSENGER_MESSAGE_MAX_LENGTH", 150_000)
MESSENGER_FRAME_MAX_BYTES = env_int("MESSENGER_FRAME_MAX_BYTES", 655_360)
# Database threads per server process for socket commands (see messenger/consumers.py).
MESSENGER_DB_THREADS = env_int("MESSENGER_DB_THREADS", 2)
# PostgreSQL: connections per server process for the message sends that run on the event loop
# instead of a database thread (messenger/db/steps.py). 0: every send takes a database thread.
MESSENGER_ASYNC_DB_CONNECTIONS = env_int("MESSENGER_ASYNC_DB_CONNECTIONS", 8)
# Diagnostics: a path prefix; each process appends the timings of its socket commands' database
# hops, its event loop's lag and its frames' publish and fan-out delays to ``<prefix>.<pid>``
# (messenger/realtime/diagnostics.py). Empty: off.
MESSENGER_DB_HOP_LOG = env_str("MESSENGER_DB_HOP_LOG", "")
MESSENGER_SESSION_TOKEN_MAX_AGE = env_int("MESSENGER_SESSION_TOKEN_MAX_AGE", 30 * 24 * 3600)
MESSENGER_ESCALATION_TIMEOUT_SECONDS = env_int("MESSENGER_ESCALATION_TIMEOUT_SECONDS", 240)
MESSENGER_ESCALATION_MAX_STEPS = env_int("MESSENGER_ESCALATION_MAX_STEPS", 3)
MESSENGER_PRESENCE_TIMEOUT_SECONDS = env_int("MESSENGER_PRESENCE_TIMEOUT_SECONDS", 60)
MESSENGER_HEARTBEAT_SECONDS = env_int("MESSENGER_HEARTBEAT_SECONDS", 20)
# How often each server process re-validates the sessions of its open operator sockets
# (messenger/realtime/session.py): a logout, password change, deactivation or role change closes
# them within this many seconds plus one database round trip.
MESSENGER_STAFF_SESSION_CHECK_SECONDS = env_int("MESSENGER_STAFF_SESSION_CHECK_SECONDS", 2)
if MESSENGER_STAFF_SESSION_CHECK_SECONDS < 1:
    raise ImproperlyConfigured("MESSENGER_STAFF_SESSION_CHECK_SECONDS must be at least 1")
MESSENGER_TYPING_TIMEOUT_SECONDS = env_int("MESSENGER_TYPING_TIMEOUT_SECONDS", 8)
MESSENGER_TICK_SECONDS = env_int("MESSENGER_TICK_SECONDS", 2)
MESSENGER_EMBEDDED_SCHEDULER = env_bool("MESSENGER_EMBEDDED_SCHEDULER", not REDIS_URL and not TESTING)
# Where the outboxes' work runs (messenger/jobs.py): django-q2's worker in production, threads of
# the web process in the embedded default (no q2 cluster there), at once in the test suite.
MESSENGER_JOBS = env_str(
    "MESSENGER_JOBS", "inline" if TESTING else ("threads" if MESSENGER_EMBEDDED_SCHEDULER else "q2")
)
if MESSENGER_JOBS not in ("q2", "threads", "inline"):
    raise ImproperlyConfigured("MESSENGER_JOBS must be q2, threads or inline")
MESSENGER_JOB_THREADS = env_int("MESSENGER_JOB_THREADS", 4)
# Webhooks (docs/integrations.md, "Webhooks").
MESSENGER_WEBHOOK_ALLOW_PRIVATE = env_bool("MESSENGER_WEBHOOK_ALLOW_PRIVATE", False)
MESSENGER_WEBHOOK_TIMEOUT_SECONDS = env_int("MESSENGER_WEBHOOK_TIMEOUT_SECONDS", 10)
MESSENGER_WEBHOOK_RETRY_HOURS = env_int("MESSENGER_WEBHOOK_RETRY_HOURS", 24)
MESSENGER_WEBHOOK_DISABLE_AFTER = env_int("MESSENGER_WEBHOOK_DISABLE_AFTER", 10)
MESSENGER_WEBHOOK_SECRET_OVERLAP_HOURS = env_int("MESSENGER_WEBHOOK_SECRET_OVERLAP_HOURS", 24)
MESSENGER_WEBHOOK_LOG_DAYS = env_int("MESSENGER_WEBHOOK_LOG_DAYS", 30)
# Presence periods (time online / away / busy in the reports) kept this many days after they end.
MESSENGER_PRESENCE_LOG_DAYS = env_int("MESSENGER_PRESENCE_LOG_DAYS", 400)
MESSENGER_GEOIP_ENABLED = env_bool("MESSENGER_GEOIP_ENABLED", True)
MESSENGER_GEOIP_PATH = env_str("MESSENGER_GEOIP_PATH", str(BASE_DIR / "geoip" / "GeoLite2-City.mmdb"))
MESSENGER_ASSIGNMENT_RATE_LIMIT = env_str("MESSENGER_ASSIGNMENT_RATE_LIMIT", "")
MESSENGER_RETENTION_CLOSE_AFTER_DAYS = env_int("MESSENGER_RETENTION_CLOSE_AFTER_DAYS", 7)
MESSENGER_RETENTION_PURGE_AFTER_MONTHS = env_int("MESSENGER_RETENTION_PURGE_AFTER_MONTHS", 12)
MESSENGER_RETENTION_UNUSED_CONTACT_DAYS = env_int("MESSENGER_RETENTION_UNUSED_CONTACT_DAYS", 30)
MESSENGER_ATTACHMENT_MAX_SIZE = env_int("MESSENGER_ATTACHMENT_MAX_SIZE", 10 * 1024 * 1024)
MESSENGER_ATTACHMENTS_PER_MESSAGE = env_int("MESSENGER_ATTACHMENTS_PER_MESSAGE", 15)
MESSENGER_PRIVACY_URL = env_str("MESSENGER_PRIVACY_URL", "")
MESSENGER_PRIVACY_TEXT = env_str("MESSENGER_PRIVACY_TEXT", "")
MESSENGER_PUBLIC_WS_URL = env_str("MESSENGER_PUBLIC_WS_URL", "")

# --- E-mail (docs/integrations.md) ------------------------------------------------------------------------
# Without EMAIL_URL every e-mail is written to the log (Django's console backend) instead of sent.
EMAIL_URL = env_str("EMAIL_URL")
_email = parse_email_url(EMAIL_URL or "console://")
EMAIL_BACKEND = _email["EMAIL_BACKEND"]
EMAIL_HOST = _email.get("EMAIL_HOST", "localhost")
EMAIL_PORT = _email.get("EMAIL_PORT", 25)
EMAIL_HOST_USER = _email.get("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = _email.get("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = _email.get("EMAIL_USE_TLS", False)
EMAIL_USE_SSL = _email.get("EMAIL_USE_SSL", False)
EMAIL_TIMEOUT = _email.get("EMAIL_TIMEOUT", 10)
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "Messenger <messenger@localhost>")
SERVER_EMAIL = env_str("SERVER_EMAIL", DEFAULT_FROM_EMAIL)
# The site's address as the people reading the e-mails reach it (https://chat.example.com): links to
# the dashboard and to attachments. Empty: the e-mails name them without links.
MESSENGER_PUBLIC_URL = env_str("MESSENGER_PUBLIC_URL", "").rstrip("/")
# A failing send is tried again with a growing pause (1, 2, 4 … up to 60 minutes) until the e-mail
# is this many hours old, then marked failed with the last error.
MESSENGER_EMAIL_RETRY_HOURS = env_int("MESSENGER_EMAIL_RETRY_HOURS", 24)
MESSENGER_EMAIL_BATCH = env_int("MESSENGER_EMAIL_BATCH", 50)
MESSENGER_EMAIL_KEEP_DAYS = env_int("MESSENGER_EMAIL_KEEP_DAYS", 30)
MESSENGER_TRANSCRIPT_RATE_PER_VISITOR = env_str("MESSENGER_TRANSCRIPT_RATE_PER_VISITOR", "3/h")
MESSENGER_TRANSCRIPT_RATE_PER_IP = env_str("MESSENGER_TRANSCRIPT_RATE_PER_IP", "20/h")
# Invitations (visitor.invite): per operator, and per visitor whoever invites (docs/widget.md, "Invitations").
MESSENGER_INVITE_RATE_PER_OPERATOR = env_str("MESSENGER_INVITE_RATE_PER_OPERATOR", "30/min")
MESSENGER_INVITE_RATE_PER_VISITOR = env_str("MESSENGER_INVITE_RATE_PER_VISITOR", "3/h")
MESSENGER_PASSWORD_RESET_RATE_PER_IP = env_str("MESSENGER_PASSWORD_RESET_RATE_PER_IP", "10/h")
MESSENGER_PASSWORD_RESET_RATE_PER_EMAIL = env_str("MESSENGER_PASSWORD_RESET_RATE_PER_EMAIL", "3/h")
MESSENGER_OFFLINE_NOTIFY_MINUTES = env_int("MESSENGER_OFFLINE_NOTIFY_MINUTES", 30)
