"""Django settings, read from the environment (see the table in README.md).

The embedded default (no variables set) is SQLite, Celery in eager mode and files under
``var/``; ``DEBUG`` must then be on, because a production process refuses to start without a
real ``SECRET_KEY``.
"""

from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

from django.core.exceptions import ImproperlyConfigured

from releasegate.env import (
    DEFAULT_CONN_MAX_AGE,
    database_from_url,
    env_bool,
    env_choice,
    env_int,
    env_list,
    env_str,
    missing_required,
    missing_required_message,
)


def env_json_list(name: str) -> list[dict[str, str]]:
    import json

    value = json.loads(env_str(name, "[]") or "[]")
    if not isinstance(value, list) or not all(isinstance(item, dict) and {"url", "key"} <= set(item) for item in value):
        raise ImproperlyConfigured(f'{name} must be a JSON list of {{"url": ..., "key": ...}}')
    return value


BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env_str("RELEASEGATE_VAR_DIR", str(BASE_DIR / "var")))

DEBUG = env_bool("DEBUG", False)
# --- What production needs: named all at once, before any one of them fails alone ----------
if not DEBUG and (_missing := missing_required()):
    raise ImproperlyConfigured(missing_required_message(_missing))
# --- end of what production needs -----------------------------------------------------------
SECRET_KEY = env_str("SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG is off")
    SECRET_KEY = "insecure-development-key-only-valid-with-DEBUG"  # noqa: S105 - DEBUG only

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "guardian",
    "axes",
    "csp",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "outbox",
    "audit",
    "changelogs",
    "identity",
    "approvals",
    "incidents",
    "packs",
    "releasegate",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    "releasegate.middleware.RequestIdMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "identity.middleware.IdleTimeoutMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last: turns a lockout flagged during the request into django-axes' 429 page (admin login).
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "releasegate.urls"
WSGI_APPLICATION = "releasegate.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "releasegate" / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {
    "default": database_from_url(
        env_str("DATABASE_URL", f"sqlite:///{VAR_DIR / 'db.sqlite3'}"),
        base_dir=BASE_DIR,
        conn_max_age=env_int("DATABASE_CONN_MAX_AGE", DEFAULT_CONN_MAX_AGE, minimum=0),
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The embedded default keeps its database under var/; a fresh clone has no var/ yet.
    Path(DATABASES["default"]["NAME"]).parent.mkdir(parents=True, exist_ok=True)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
# Every request is one transaction: bad input never leaves partial state behind.
DATABASES["default"]["ATOMIC_REQUESTS"] = True
# On PostgreSQL the audit insert and the gate's read and write run as prepared statements
# (audit/database.py). Off only behind a transaction-pooling PgBouncer older than 1.21.
DATABASE_PREPARED_STATEMENTS = env_bool("DATABASE_PREPARED_STATEMENTS", True)

AUTH_USER_MODEL = "releasegate.User"
AUTHENTICATION_BACKENDS = [
    # First: refuses any password check (login or step-up) of a locked-out account or address.
    "axes.backends.AxesStandaloneBackend",
    # Django's password check; with single sign-on on, only for break-glass administrators.
    "releasegate.sso.LocalPasswordBackend",
    "releasegate.sso.ReleaseGateOIDCBackend",
    "guardian.backends.ObjectPermissionBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 12}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# Failed logins and step-up re-entries (django-axes): after this many failures an account, and
# separately an address, is locked out for the period below; every failure and lockout is an
# audit event (releasegate/signals.py). The lock ends by itself; `manage.py axes_reset` ends it early.
AXES_FAILURE_LIMIT = env_int("LOGIN_FAILURE_LIMIT", 5, minimum=1)
AXES_COOLOFF_TIME = timedelta(minutes=env_int("LOGIN_LOCKOUT_MINUTES", 15, minimum=1))
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
AXES_HTTP_RESPONSE_CODE = 429
AXES_RESET_ON_SUCCESS = True
AXES_VERBOSE = False
AXES_LOCKOUT_TEMPLATE = "releasegate/locked_out.html"
# The client's address (django-ipware): behind the one reverse proxy that SECURE_PROXY_SSL
# implies, the address that proxy saw; otherwise the connection's.
AXES_IPWARE_META_PRECEDENCE_ORDER = (
    ("HTTP_X_FORWARDED_FOR", "REMOTE_ADDR") if env_bool("SECURE_PROXY_SSL", False) else ("REMOTE_ADDR",)
)
AXES_IPWARE_PROXY_ORDER = "right-most"
AXES_IPWARE_PROXY_COUNT = 1 if env_bool("SECURE_PROXY_SSL", False) else None

# Guardian's anonymous user would be a real row that can hold permissions; we never want that.
ANONYMOUS_USER_NAME = None
GUARDIAN_RAISE_403 = False

LANGUAGE_CODE = "en-gb"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = Path(env_str("STATIC_ROOT", str(VAR_DIR / "static")))

# Evidence files are content addressed; where they live is a deployment decision.
STORAGE_BACKEND = env_choice("STORAGE_BACKEND", "filesystem", ("filesystem", "s3"))
EVIDENCE_STORAGE_DIR = Path(env_str("EVIDENCE_STORAGE_DIR", str(VAR_DIR / "evidence")))
if STORAGE_BACKEND == "s3":
    _evidence_storage = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": env_str("S3_BUCKET"),
            "endpoint_url": env_str("S3_ENDPOINT_URL", "") or None,
            "region_name": env_str("S3_REGION", "") or None,
            "location": env_str("S3_PREFIX", "evidence"),
            "default_acl": None,
            "file_overwrite": True,  # content-addressed: the same key always holds the same bytes
            "querystring_auth": True,
        },
    }
else:
    _evidence_storage = {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {
            "location": str(EVIDENCE_STORAGE_DIR),
            "base_url": None,
            "allow_overwrite": True,  # content-addressed: the same key always holds the same bytes
            "file_permissions_mode": 0o640,
            "directory_permissions_mode": 0o750,
        },
    }
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "evidence": _evidence_storage,
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}

# Evidence uploads larger than this are refused (413) before they are parsed or stored.
EVIDENCE_MAX_UPLOAD_BYTES = env_int("EVIDENCE_MAX_UPLOAD_BYTES", 20 * 1024 * 1024, minimum=1)
# Django's own cap on a request body must not cut an upload off before our check can answer.
DATA_UPLOAD_MAX_MEMORY_SIZE = 2_621_440
FILE_UPLOAD_MAX_MEMORY_SIZE = 2_621_440

# Celery: without a broker everything runs eagerly in-process (the embedded default).
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", "")
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", not CELERY_BROKER_URL)
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_RESULT_BACKEND = env_str("CELERY_RESULT_BACKEND", "") or None
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = "UTC"
CELERY_BEAT_SCHEDULE: dict[str, dict[str, object]] = {
    "audit-sequence": {"task": "audit.tasks.audit_sequence", "schedule": 1.0},
    "retrospectives-overdue": {"task": "approvals.tasks.retrospectives_overdue", "schedule": 60.0},
    "packs-resume": {"task": "releasegate.packs.packs_resume", "schedule": 60.0},
}

# --- The outbox (outbox/services.py, issue 19): the broker is never on a request's path ------
# Requests write outbox rows; after the commit they are published with this connect and socket
# timeout and no retries (a hung broker costs a request at most about twice this). Rows that did
# not go are published by beat's flush once they are this old.
OUTBOX_PUBLISH_TIMEOUT_MS = env_int("OUTBOX_PUBLISH_TIMEOUT_MS", 500, minimum=10)
OUTBOX_FLUSH_SECONDS = env_int("OUTBOX_FLUSH_SECONDS", 10, minimum=1)
OUTBOX_FLUSH_AFTER_SECONDS = env_int("OUTBOX_FLUSH_AFTER_SECONDS", 10, minimum=0)
CELERY_BEAT_SCHEDULE["outbox-flush"] = {
    "task": "outbox.tasks.outbox_flush_task",
    "schedule": float(OUTBOX_FLUSH_SECONDS),
}
# --- end of the outbox ------------------------------------------------------------------------

# Audit log. With eager Celery (no broker) events are sequenced right after each commit; with
# a broker, by the beat task above or `manage.py audit_sequence --loop`.
AUDIT_SEQUENCE_ON_COMMIT = env_bool("AUDIT_SEQUENCE_ON_COMMIT", CELERY_TASK_ALWAYS_EAGER)
AUDIT_LOG_ORIGIN = env_str("AUDIT_LOG_ORIGIN", "releasegate.local/audit-log")
# The checkpoint signing key, as a signed-note private key string (PRIVATE+KEY+name+id+key),
# given directly or as a file. In DEBUG a development key is made on first use.
AUDIT_SIGNING_KEY = env_str("AUDIT_SIGNING_KEY", "")
AUDIT_SIGNING_KEY_FILE = env_str("AUDIT_SIGNING_KEY_FILE", str(VAR_DIR / "audit-signing.key") if DEBUG else "")
if not DEBUG and not (AUDIT_SIGNING_KEY or AUDIT_SIGNING_KEY_FILE):
    raise ImproperlyConfigured("AUDIT_SIGNING_KEY or AUDIT_SIGNING_KEY_FILE must be set when DEBUG is off")
AUDIT_SEQUENCE_BATCH = env_int("AUDIT_SEQUENCE_BATCH", 5000, minimum=1)
# What the sequencer last signed, kept outside the database beside its key (audit/trust.py):
# it signs nothing the database cannot show to extend it.
AUDIT_SEQUENCER_STATE_FILE = env_str("AUDIT_SEQUENCER_STATE_FILE", str(VAR_DIR / "audit-sequencer-state.json"))
# While an audit alarm is open (audit/alarms.py) the gate denies `audit_log_inconsistent`. On
# by default except in DEBUG and the embedded default (no DATABASE_URL).
AUDIT_ALARM_DENIES_GATE = env_bool("AUDIT_ALARM_DENIES_GATE", not DEBUG and bool(env_str("DATABASE_URL", "")))
# Witnesses (docs/audit.md): a JSON list of {"url": ".../add-checkpoint", "key": "<verifier key>"}.
# Each new checkpoint is submitted to each through the outbox after it commits (retried with
# back-off from AUDIT_WITNESS_RETRY_BASE_SECONDS, AUDIT_WITNESS_MAX_ATTEMPTS in all). With a quorum above 0, the gate
# and pack builds need that many witnesses to have cosigned within AUDIT_WITNESS_MAX_AGE_SECONDS.
AUDIT_WITNESSES = env_json_list("AUDIT_WITNESSES")
AUDIT_WITNESS_QUORUM = env_int("AUDIT_WITNESS_QUORUM", 0, minimum=0)
AUDIT_WITNESS_MAX_AGE_SECONDS = env_int("AUDIT_WITNESS_MAX_AGE_SECONDS", 300, minimum=1)
AUDIT_WITNESS_TIMEOUT_SECONDS = env_int("AUDIT_WITNESS_TIMEOUT_SECONDS", 5, minimum=1)
AUDIT_WITNESS_MAX_ATTEMPTS = env_int("AUDIT_WITNESS_MAX_ATTEMPTS", 6, minimum=1)
AUDIT_WITNESS_RETRY_BASE_SECONDS = env_int("AUDIT_WITNESS_RETRY_BASE_SECONDS", 2, minimum=0)
# Who is e-mailed when an audit alarm is raised (docs/audit.md; the webhook gets it too).
AUDIT_ALARM_EMAILS = env_list("AUDIT_ALARM_EMAILS", [])
# audit_verify flags an event whose time lies before an earlier leaf's by more than this.
AUDIT_BACKDATING_TOLERANCE_SECONDS = env_int("AUDIT_BACKDATING_TOLERANCE_SECONDS", 300, minimum=0)

# --- Notifications (approvals/notifications.py, docs/notifications.md) ---------------------
# An outbox delivered by Celery: e-mail through Django's backend and, when a URL is set, a
# webhook signed with HMAC-SHA256. Beat hands over pending notifications every 30 s.
NOTIFY_WEBHOOK_URL = env_str("NOTIFY_WEBHOOK_URL", "").strip()
if NOTIFY_WEBHOOK_URL and urlsplit(NOTIFY_WEBHOOK_URL).scheme not in {"http", "https"}:
    raise ImproperlyConfigured(f"NOTIFY_WEBHOOK_URL must be an http(s) URL, got {NOTIFY_WEBHOOK_URL!r}")
NOTIFY_WEBHOOK_SECRET = env_str("NOTIFY_WEBHOOK_SECRET", "")
if NOTIFY_WEBHOOK_URL and not NOTIFY_WEBHOOK_SECRET:
    if not DEBUG:
        raise ImproperlyConfigured("NOTIFY_WEBHOOK_SECRET must be set when NOTIFY_WEBHOOK_URL is set and DEBUG is off")
    NOTIFY_WEBHOOK_SECRET = "insecure-development-webhook-secret"  # noqa: S105 - DEBUG only
NOTIFY_EMAIL_FROM = env_str("NOTIFY_EMAIL_FROM", "release-gate@localhost")
NOTIFY_MAX_ATTEMPTS = env_int("NOTIFY_MAX_ATTEMPTS", 8, minimum=1)
# Back-off after the n-th failed attempt: base * 2**(n-1) seconds, at most an hour.
NOTIFY_RETRY_BASE_SECONDS = env_int("NOTIFY_RETRY_BASE_SECONDS", 2, minimum=0)
CELERY_BEAT_SCHEDULE["notifications-flush"] = {"task": "approvals.tasks.notifications_flush", "schedule": 30.0}
# Django's e-mail settings. EMAIL_TIMEOUT bounds a delivery attempt, which holds its row lock.
EMAIL_BACKEND = env_str(
    "EMAIL_BACKEND",
    "django.core.mail.backends.console.EmailBackend" if DEBUG else "django.core.mail.backends.smtp.EmailBackend",
)
EMAIL_HOST = env_str("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25, minimum=1)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
EMAIL_TIMEOUT = env_int("EMAIL_TIMEOUT", 10, minimum=1)
DEFAULT_FROM_EMAIL = NOTIFY_EMAIL_FROM
# --- end of notifications ------------------------------------------------------------------

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "releasegate.authentication.ApiTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": [
        "rest_framework.permissions.IsAuthenticated",
        "releasegate.token_scopes.TokenScopes",
    ],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["releasegate.json_input.JsonInputParser"],
    "DEFAULT_SCHEMA_CLASS": "core.api.StrictAutoSchema",
    "EXCEPTION_HANDLER": "releasegate.errors.api_exception_handler",
    "UNAUTHENTICATED_USER": None,
    "DEFAULT_PAGINATION_CLASS": None,
}
if DEBUG:
    REST_FRAMEWORK["DEFAULT_RENDERER_CLASSES"] = [
        "rest_framework.renderers.JSONRenderer",
        "rest_framework.renderers.BrowsableAPIRenderer",
    ]

SPECTACULAR_SETTINGS = {
    "TITLE": "Release Gate API",
    "DESCRIPTION": (
        "The gate between CI/CD pipelines and production: changelogs, evidence, approvals, "
        "gate decisions and a tamper-evident audit trail. Errors always have the shape "
        '`{"code", "message", "fields"}`; codes are listed in docs/api-errors.md.'
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    # The enums, then every error code (releasegate.schema), then the token scopes' 403s.
    "POSTPROCESSING_HOOKS": [
        "releasegate.schema.error_codes_postprocess",
        "releasegate.schema.token_scope_responses",
    ],
    "ENUM_NAME_OVERRIDES": {
        "ChangelogKindEnum": "changelogs.models.ChangelogKind",
        "EvidenceKindEnum": "changelogs.models.EvidenceKind",
        "ChangelogStatusEnum": "changelogs.models.ChangelogStatus",
        "GateOutcomeEnum": "releasegate.models.GateOutcome",
        "DeploymentStatusEnum": "releasegate.models.DeploymentStatus",
        "ApprovalDecisionEnum": "approvals.models.Decision",
        "RetrospectiveStatusEnum": "approvals.models.RetrospectiveStatus",
        "PackKindEnum": "packs.models.PackKind",
        "PackStatusEnum": "packs.models.PackStatus",
        "IncidentStatusEnum": "incidents.models.IncidentStatus",
        "PostmortemActionKindEnum": "incidents.models.ActionKind",
        "PostmortemActionStatusEnum": "incidents.models.ActionStatus",
        "PasskeyStatusEnum": "identity.models.PasskeyStatus",
    },
}

# The gate. Only these environments are gated; an allow decision covers a deployment this long.
GATE_ENVIRONMENTS = env_list("GATE_ENVIRONMENTS", ["production"])
GATE_DECISION_VALIDITY_MINUTES = env_int("GATE_DECISION_VALIDITY_MINUTES", 60, minimum=1)
# Deployment reports (releasegate/deployments.py, docs/gate.md): a deployment's reports count
# as covered only when they arrive this soon after its start (a rollback: any time later), and
# a start or finish further ahead of the server's clock than the skew is refused.
DEPLOYMENT_REPORT_WINDOW_MINUTES = env_int("DEPLOYMENT_REPORT_WINDOW_MINUTES", 60, minimum=1)
DEPLOYMENT_CLOCK_SKEW_SECONDS = env_int("DEPLOYMENT_CLOCK_SKEW_SECONDS", 60, minimum=0)

# --- GitHub deployment protection rule (releasegate/github.py, docs/github.md) -------------
# On when GITHUB_APP_ID is set; the webhook secret and the App's private key come with it.
GITHUB_APP_ID = env_str("GITHUB_APP_ID", "").strip()
GITHUB_WEBHOOK_SECRET = env_str("GITHUB_WEBHOOK_SECRET", "")
GITHUB_APP_PRIVATE_KEY = env_str("GITHUB_APP_PRIVATE_KEY", "")
GITHUB_APP_PRIVATE_KEY_FILE = env_str("GITHUB_APP_PRIVATE_KEY_FILE", "").strip()
if GITHUB_APP_ID or GITHUB_WEBHOOK_SECRET:
    if not (GITHUB_APP_ID and GITHUB_WEBHOOK_SECRET):
        raise ImproperlyConfigured("GITHUB_APP_ID and GITHUB_WEBHOOK_SECRET must be set together")
    if bool(GITHUB_APP_PRIVATE_KEY) == bool(GITHUB_APP_PRIVATE_KEY_FILE):
        raise ImproperlyConfigured("set one of GITHUB_APP_PRIVATE_KEY, GITHUB_APP_PRIVATE_KEY_FILE with GITHUB_APP_ID")
    if GITHUB_APP_PRIVATE_KEY_FILE and not Path(GITHUB_APP_PRIVATE_KEY_FILE).is_file():
        raise ImproperlyConfigured(f"GITHUB_APP_PRIVATE_KEY_FILE is not a file: {GITHUB_APP_PRIVATE_KEY_FILE!r}")
GITHUB_API_URL = env_str("GITHUB_API_URL", "https://api.github.com").strip().rstrip("/")
if urlsplit(GITHUB_API_URL).scheme not in {"http", "https"} or not urlsplit(GITHUB_API_URL).hostname:
    raise ImproperlyConfigured(f"GITHUB_API_URL must be an http(s) URL, got {GITHUB_API_URL!r}")
# GitHub environments whose deployments the gate decides, compared without regard to case
# (as GitHub does); "prod=production" maps a GitHub name to a gate environment. Any other
# environment with the rule enabled is rejected: the rule fails closed.
GITHUB_GATED_ENVIRONMENTS: dict[str, str] = {}
for _entry in env_list("GITHUB_GATED_ENVIRONMENTS", ["production"]):
    _github_name, _, _gate_name = (part.strip() for part in _entry.partition("="))
    _gate_name = next((name for name in GATE_ENVIRONMENTS if name.lower() == (_gate_name or _github_name).lower()), "")
    if not _github_name or not _gate_name:
        raise ImproperlyConfigured(
            f"GITHUB_GATED_ENVIRONMENTS entry {_entry!r} must be NAME or NAME=GATE_ENVIRONMENT, with the gate "
            f"environment one of GATE_ENVIRONMENTS ({', '.join(GATE_ENVIRONMENTS)})"
        )
    GITHUB_GATED_ENVIRONMENTS[_github_name.lower()] = _gate_name
# Attempts to give GitHub an answer; back-off after the n-th failure: base * 2**(n-1) s, at most an hour.
GITHUB_CALLBACK_MAX_ATTEMPTS = env_int("GITHUB_CALLBACK_MAX_ATTEMPTS", 10, minimum=1)
GITHUB_CALLBACK_RETRY_BASE_SECONDS = env_int("GITHUB_CALLBACK_RETRY_BASE_SECONDS", 2, minimum=0)
CELERY_BEAT_SCHEDULE["github-answers-flush"] = {"task": "releasegate.tasks.github_answers_flush", "schedule": 30.0}
# A deployment_protection_rule delivery whose deployment GitHub created longer ago than this
# (the payload's own deployment.created_at) is refused and audited, not evaluated: together with
# the replay key over the signed body, a captured delivery cannot be played again later.
GITHUB_DELIVERY_MAX_AGE_SECONDS = env_int("GITHUB_DELIVERY_MAX_AGE_SECONDS", 3600, minimum=60)
# The commit authors of submitted changes, read from GitHub by a worker (releasegate/github_commits.py).
CELERY_BEAT_SCHEDULE["commit-authors-sweep"] = {"task": "releasegate.tasks.commit_authors_sweep", "schedule": 15.0}
# --- end of GitHub -------------------------------------------------------------------------

# --- Incidents (incidents/, docs/incidents.md) ----------------------------------------------
# Deployments this long before an incident started are its suspects.
INCIDENT_SUSPECT_WINDOW_HOURS = env_int("INCIDENT_SUSPECT_WINDOW_HOURS", 24, minimum=1)
# A postmortem is due this many days after an incident of severity medium or above is resolved.
POSTMORTEM_DUE_DAYS = env_int("POSTMORTEM_DUE_DAYS", 5, minimum=1)
# PagerDuty V3 webhook signing secrets, comma-separated: more than one while a secret is rotated.
PAGERDUTY_WEBHOOK_SECRETS = [s for s in env_list("PAGERDUTY_WEBHOOK_SECRETS", []) if s]
# The generic signed JSON receiver (Opsgenie, Alertmanager through a relay…): its secrets.
INCIDENT_WEBHOOK_SECRETS = [s for s in env_list("INCIDENT_WEBHOOK_SECRETS", []) if s]
# An event that occurred longer ago than this is a replay: refused and audited, not applied.
INCIDENT_EVENT_MAX_AGE_SECONDS = env_int("INCIDENT_EVENT_MAX_AGE_SECONDS", 24 * 3600, minimum=60)
CELERY_BEAT_SCHEDULE["incidents-overdue"] = {"task": "incidents.tasks.incidents_overdue", "schedule": 300.0}
# --- end of incidents ----------------------------------------------------------------------

# Evidence packs: who signs them, and for how long asking again returns the same build.
ORGANISATION_NAME = env_str("ORGANISATION_NAME", "Example Bank (development)" if DEBUG else "")
if not ORGANISATION_NAME:
    raise ImproperlyConfigured(
        "ORGANISATION_NAME must be set when DEBUG is off (it names the signer of evidence packs)"
    )
PACK_REUSE_MINUTES = env_int("PACK_REUSE_MINUTES", 60, minimum=0)
# Pack builds through faults (issue 19): a build holds its job under a lease renewed at every
# stage; a job whose lease ran out, or that waited queued this long, is handed over by beat's
# packs-resume (every minute). Database errors during a build are retried on a fresh connection
# for up to PACK_DB_RETRY_SECONDS before the attempt counts as failed.
PACK_LEASE_SECONDS = env_int("PACK_LEASE_SECONDS", 120, minimum=5)
PACK_QUEUED_STALE_SECONDS = env_int("PACK_QUEUED_STALE_SECONDS", 120, minimum=5)
PACK_DB_RETRY_SECONDS = env_int("PACK_DB_RETRY_SECONDS", 30, minimum=0)
PACK_MAX_ATTEMPTS = env_int("PACK_MAX_ATTEMPTS", 4, minimum=1)
# The longest period a population pack may cover (issue 13: periods are bounded).
PACK_MAX_PERIOD_DAYS = env_int("PACK_MAX_PERIOD_DAYS", 366, minimum=1)
# The organisation's working hours (Monday to Friday, in its time zone): a change deployed (or
# submitted, if never deployed) outside them is "off hours" in the population's strata (PR-17).
ORGANISATION_TIME_ZONE = env_str("ORGANISATION_TIME_ZONE", "UTC")
ORGANISATION_WORKING_HOURS = env_str("ORGANISATION_WORKING_HOURS", "08:00-18:00")
# The organisation's holiday calendar (ISO dates, comma-separated): not business days when a
# hotfix's retrospective is due "next business day" (PR-09).
ORGANISATION_HOLIDAYS = env_list("ORGANISATION_HOLIDAYS", [])
# An overdue retrospective goes to the domain's signing authorities; still owed this many hours
# after its deadline, it is escalated once to these addresses (PR-09). No addresses: no second level.
RETROSPECTIVE_ESCALATION_HOURS = env_int("RETROSPECTIVE_ESCALATION_HOURS", 24, minimum=1)
RETROSPECTIVE_ESCALATION_EMAILS = env_list("RETROSPECTIVE_ESCALATION_EMAILS", [])
# How many changes of each stratum (class, domain, off hours) population.json's sample draws.
POPULATION_SAMPLE_PER_STRATUM = env_int("POPULATION_SAMPLE_PER_STRATUM", 2, minimum=0)
# The organisation's document-signing key and certificate (PEM), and optionally the chain to
# its CA and an RFC 3161 timestamp server. With DEBUG a development pair is made in var/.
PACK_SIGNING_KEY_FILE = env_str("PACK_SIGNING_KEY_FILE", str(VAR_DIR / "pack-signing.key") if DEBUG else "")
PACK_SIGNING_CERT_FILE = env_str("PACK_SIGNING_CERT_FILE", str(VAR_DIR / "pack-signing.crt") if DEBUG else "")
PACK_SIGNING_CHAIN_FILE = env_str("PACK_SIGNING_CHAIN_FILE", "")
PACK_SIGNING_KEY_PASSPHRASE = env_str("PACK_SIGNING_KEY_PASSPHRASE", "")
PACK_TIMESTAMP_URL = env_str("PACK_TIMESTAMP_URL", "")
if not DEBUG and not (PACK_SIGNING_KEY_FILE and PACK_SIGNING_CERT_FILE):
    raise ImproperlyConfigured("PACK_SIGNING_KEY_FILE and PACK_SIGNING_CERT_FILE must be set when DEBUG is off")
CELERY_IMPORTS = ["packs.tasks"]

# /metrics asks for this bearer token (Prometheus: authorization.credentials); without one it
# answers 401, unless METRICS_PUBLIC=1 says the figures may be read by anyone who can reach it.
METRICS_TOKEN = env_str("METRICS_TOKEN", "")
METRICS_PUBLIC = env_bool("METRICS_PUBLIC", False)
# /readyz and /metrics (releasegate/health.py, issue 19): a warning when this process's clock is
# further than this from the database's (business times come from the database's), and not
# ready when the oldest audit event not yet in the Merkle log is older than this.
CLOCK_OFFSET_WARN_SECONDS = env_int("CLOCK_OFFSET_WARN_SECONDS", 5, minimum=0)
READYZ_AUDIT_LAG_SECONDS = env_int("READYZ_AUDIT_LAG_SECONDS", 300, minimum=1)

# API tokens: the last-used time is written at most this often, to keep reads read-only.
API_TOKEN_LAST_USED_RESOLUTION = timedelta(seconds=env_int("API_TOKEN_LAST_USED_SECONDS", 60, minimum=0))
API_TOKEN_DEFAULT_LIFETIME = timedelta(days=env_int("API_TOKEN_DEFAULT_DAYS", 90, minimum=1))
# No token lives longer than this, whatever its creator asks for.
API_TOKEN_MAX_LIFETIME = timedelta(days=env_int("API_TOKEN_MAX_DAYS", 365, minimum=1))
if API_TOKEN_DEFAULT_LIFETIME > API_TOKEN_MAX_LIFETIME:
    raise ImproperlyConfigured("API_TOKEN_DEFAULT_DAYS must not be more than API_TOKEN_MAX_DAYS")

# Production hardening; all switched off only by DEBUG.
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", not DEBUG)
CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", not DEBUG)
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_AGE = env_int("SESSION_COOKIE_AGE", 8 * 3600, minimum=60)
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
CSRF_FAILURE_VIEW = "releasegate.views.csrf_failure"  # JSON under /api/, Django's page elsewhere
SECURE_PROXY_SSL = env_bool("SECURE_PROXY_SSL", False)
if SECURE_PROXY_SSL:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# --- HTTPS and the browser's own defences (issue 13); `check --deploy` is clean with them ------
# HSTS: browsers go to HTTPS only, for a year. The redirect to HTTPS is on behind the TLS
# proxy (SECURE_PROXY_SSL, which tells Django a request came in over HTTPS); without it
# every request would look like plain HTTP and be redirected for ever. Health and metrics stay
# reachable over plain HTTP for probes and scrapers inside the cluster.
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0 if DEBUG else 31_536_000, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", True)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", True)
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", SECURE_PROXY_SSL and not DEBUG)
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]
# Content-Security-Policy (django-csp): scripts, styles, images and fonts from this site only,
# no plugins, no framing, forms post only here. Inline styles stay allowed: the admin's
# templates use style attributes; no inline script runs (the API docs load theirs as a file).
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'", "'unsafe-inline'"],
        "img-src": ["'self'", "data:"],
        "font-src": ["'self'", "data:"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'none'"],
        "frame-ancestors": ["'none'"],
        "form-action": ["'self'"],
    }
}
# --- end of HTTPS and browser defences ------------------------------------------------------

# --- Identity: second factors, passkeys, sessions (identity/, docs/identity.md) ---------------
# Approving, rejecting, confirming an authority grant and overriding a freeze need a session
# that proved a second factor (403 mfa_required) within this many minutes (403
# reauthentication_required). Off only for a development setup that has no factor at all.
SIGNING_REQUIRES_MFA = env_bool("SIGNING_REQUIRES_MFA", True)
SIGNING_REAUTH_MINUTES = env_int("SIGNING_REAUTH_MINUTES", 15, minimum=1)
# A session unused this long is ended (identity.middleware), whatever SESSION_COOKIE_AGE says.
ADMIN_IDLE_TIMEOUT_MINUTES = env_int("ADMIN_IDLE_TIMEOUT_MINUTES", 30, minimum=1)
# WebAuthn relying party: the host name passkeys are bound to, and the origins pages are served
# from (scheme://host[:port]). Passkeys are unavailable until both are set.
WEBAUTHN_RP_ID = env_str("WEBAUTHN_RP_ID", "localhost" if DEBUG else "")
WEBAUTHN_ORIGINS = env_list("WEBAUTHN_ORIGINS", ["http://localhost:8000"] if DEBUG else [])
WEBAUTHN_RP_NAME = env_str("WEBAUTHN_RP_NAME", "Release Gate")
OTP_TOTP_ISSUER = WEBAUTHN_RP_NAME
# Single sign-on (OpenID Connect, mozilla-django-oidc; releasegate/sso.py). On when a client id
# is set; the provider's endpoints come from its discovery document (docs/identity.md).
OIDC_RP_CLIENT_ID = env_str("OIDC_RP_CLIENT_ID", "")
OIDC_ENABLED = bool(OIDC_RP_CLIENT_ID)
OIDC_RP_CLIENT_SECRET = env_str("OIDC_RP_CLIENT_SECRET", "")
OIDC_OP_AUTHORIZATION_ENDPOINT = env_str("OIDC_OP_AUTHORIZATION_ENDPOINT", "")
OIDC_OP_TOKEN_ENDPOINT = env_str("OIDC_OP_TOKEN_ENDPOINT", "")
OIDC_OP_USER_ENDPOINT = env_str("OIDC_OP_USER_ENDPOINT", "")
OIDC_OP_JWKS_ENDPOINT = env_str("OIDC_OP_JWKS_ENDPOINT", "")
# The provider's end_session_endpoint: logging out of the admin also ends the provider's session
# (RP-initiated logout; the ID token is then kept in the session as the logout's hint).
OIDC_OP_LOGOUT_ENDPOINT = env_str("OIDC_OP_LOGOUT_ENDPOINT", "")
if OIDC_ENABLED and not all(
    (OIDC_RP_CLIENT_SECRET, OIDC_OP_AUTHORIZATION_ENDPOINT, OIDC_OP_TOKEN_ENDPOINT, OIDC_OP_USER_ENDPOINT)
):
    raise ImproperlyConfigured(
        "OIDC_RP_CLIENT_ID needs OIDC_RP_CLIENT_SECRET, OIDC_OP_AUTHORIZATION_ENDPOINT, OIDC_OP_TOKEN_ENDPOINT "
        "and OIDC_OP_USER_ENDPOINT"
    )
OIDC_RP_SIGN_ALGO = env_str("OIDC_RP_SIGN_ALGO", "RS256")
OIDC_RP_SCOPES = env_str("OIDC_RP_SCOPES", "openid email profile groups")
OIDC_USE_PKCE = True
OIDC_PKCE_CODE_CHALLENGE_METHOD = "S256"
OIDC_USE_NONCE = True
OIDC_CREATE_USER = True
OIDC_STORE_ID_TOKEN = bool(OIDC_OP_LOGOUT_ENDPOINT)
OIDC_AUTHENTICATION_CALLBACK_URL = "sso-callback"
LOGIN_REDIRECT_URL = "/admin/"
LOGIN_REDIRECT_URL_FAILURE = "/admin/login/"
# What in the ID token says the login used a second factor (RFC 8176 amr values; acr values).
OIDC_MFA_AMR_VALUES = env_list("OIDC_MFA_AMR_VALUES", ["mfa", "otp", "hwk", "swk", "sc", "fpt", "face", "iris"])
OIDC_MFA_ACR_VALUES = env_list("OIDC_MFA_ACR_VALUES", [])
# Provider group = Release Gate group, comma-separated; never a group that holds signing authority.
OIDC_GROUP_MAP: dict[str, str] = {}
for _entry in env_list("OIDC_GROUP_MAP", []):
    _provider_group, _, _local_group = (part.strip() for part in _entry.partition("="))
    if not (_provider_group and _local_group):
        raise ImproperlyConfigured(f"OIDC_GROUP_MAP entry {_entry!r} must be PROVIDER_GROUP=RELEASE_GATE_GROUP")
    OIDC_GROUP_MAP[_provider_group] = _local_group
# Accounts that may still log in with a local password when single sign-on is on (each use audited).
BREAK_GLASS_USERNAMES = env_list("BREAK_GLASS_USERNAMES", [])
# Access review (releasegate/access_review.py): a review opens this often (0: only by hand), and
# a grant not re-confirmed this many days after opening is revoked.
ACCESS_REVIEW_INTERVAL_DAYS = env_int("ACCESS_REVIEW_INTERVAL_DAYS", 90, minimum=0)
ACCESS_REVIEW_DEADLINE_DAYS = env_int("ACCESS_REVIEW_DEADLINE_DAYS", 14, minimum=1)
CELERY_BEAT_SCHEDULE["access-reviews"] = {"task": "releasegate.tasks.access_reviews", "schedule": 3600.0}
# --- end of identity ------------------------------------------------------------------------

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    # django-axes logs every login at INFO; failures and lockouts are audit events already.
    "loggers": {"axes": {"level": "WARNING"}},
}
