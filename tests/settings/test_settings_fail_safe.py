"""Settings fail safe: production values unless asked otherwise, no side effects, no dead entries.

Each case imports the settings in a fresh process with a controlled environment, because the
values are read from the environment once, at import (the suite's own process has them already).
"""
import fnmatch
import json
import os
import subprocess
import sys
from pathlib import Path

from django.conf import settings

ROOT = Path(__file__).resolve().parents[2]
EMBEDDED = "kbsearch.index.embedded.EmbeddedIndexBackend"
WEAVIATE = "kbsearch.index.weaviate.WeaviateIndexBackend"

PROBE = """
import json
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

try:
    key = settings.SECRET_KEY
except ImproperlyConfigured:
    key = None
print(json.dumps({
    "DEBUG": settings.DEBUG,
    "SECRET_KEY": key,
    "SESSION_COOKIE_SECURE": settings.SESSION_COOKIE_SECURE,
    "CSRF_COOKIE_SECURE": settings.CSRF_COOKIE_SECURE,
    "CSRF_TRUSTED_ORIGINS": settings.CSRF_TRUSTED_ORIGINS,
    "SECURE_SSL_REDIRECT": settings.SECURE_SSL_REDIRECT,
    "SECURE_HSTS_SECONDS": settings.SECURE_HSTS_SECONDS,
    "SECURE_HSTS_INCLUDE_SUBDOMAINS": settings.SECURE_HSTS_INCLUDE_SUBDOMAINS,
    "SECURE_PROXY_SSL_HEADER": settings.SECURE_PROXY_SSL_HEADER,
    "KBSEARCH_INDEX": settings.KBSEARCH_INDEX,
    "KBSEARCH_API_DOCS_PUBLIC": settings.KBSEARCH_API_DOCS_PUBLIC,
    "DATABASE_ENGINE": settings.DATABASES["default"]["ENGINE"],
}))
"""


def clean_env(var_dir: Path, **values: str) -> dict[str, str]:
    """This process's environment without any kbsearch or database setting, plus ``values``."""
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("KBSEARCH_") and name not in {"DATABASE_URL", "DJANGO_SETTINGS_MODULE"}
    }
    return {**env, "DJANGO_SETTINGS_MODULE": "kbsearch.settings", "KBSEARCH_VAR_DIR": str(var_dir), **values}


def run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


def probe(var_dir: Path, **values: str) -> dict:
    result = run(["-c", PROBE], clean_env(var_dir, **values))
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_without_any_setting_the_values_are_production_ones_and_nothing_is_created(tmp_path):
    var_dir = tmp_path / "var"
    values = probe(var_dir)
    assert values["DEBUG"] is False
    assert values["SECRET_KEY"] is None  # empty: Django refuses to hand it out, nothing signs with a known key
    assert values["SESSION_COOKIE_SECURE"] is True and values["CSRF_COOKIE_SECURE"] is True
    assert values["SECURE_SSL_REDIRECT"] is True
    assert values["SECURE_HSTS_SECONDS"] == 365 * 24 * 3600 and values["SECURE_HSTS_INCLUDE_SUBDOMAINS"] is True
    assert values["SECURE_PROXY_SSL_HEADER"] is None  # trusting a header is opt-in
    assert values["CSRF_TRUSTED_ORIGINS"] == []
    assert values["KBSEARCH_API_DOCS_PUBLIC"] is False
    assert values["DATABASE_ENGINE"] == "kbsearch.sqlite"
    assert not var_dir.exists()  # importing the settings created nothing


def test_debug_is_on_only_when_asked_and_never_with_a_known_key(tmp_path):
    assert probe(tmp_path, KBSEARCH_DEBUG="0")["DEBUG"] is False
    first, second = probe(tmp_path, KBSEARCH_DEBUG="1"), probe(tmp_path, KBSEARCH_DEBUG="1")
    assert first["DEBUG"] is True
    # A development server gets a random key of its own: two processes never share one.
    assert len(first["SECRET_KEY"]) >= 50 and first["SECRET_KEY"] != second["SECRET_KEY"]
    assert first["SESSION_COOKIE_SECURE"] is False and first["SECURE_SSL_REDIRECT"] is False
    assert first["SECURE_HSTS_SECONDS"] == 0
    assert probe(tmp_path, KBSEARCH_DEBUG="1", KBSEARCH_SECRET_KEY="k" * 60)["SECRET_KEY"] == "k" * 60


def test_https_settings_come_from_the_environment(tmp_path):
    values = probe(
        tmp_path,
        KBSEARCH_SECRET_KEY="s" * 60,
        KBSEARCH_PROXY_SSL_HEADER="X-Forwarded-Proto",
        KBSEARCH_CSRF_TRUSTED_ORIGINS="https://kb.example.com, https://search.example.com",
        KBSEARCH_HSTS_SECONDS="3600",
        KBSEARCH_HSTS_INCLUDE_SUBDOMAINS="0",
        KBSEARCH_SSL_REDIRECT="0",
    )
    assert values["SECURE_PROXY_SSL_HEADER"] == ["HTTP_X_FORWARDED_PROTO", "https"]
    assert values["CSRF_TRUSTED_ORIGINS"] == ["https://kb.example.com", "https://search.example.com"]
    assert values["SECURE_HSTS_SECONDS"] == 3600 and values["SECURE_HSTS_INCLUDE_SUBDOMAINS"] is False
    assert values["SECURE_SSL_REDIRECT"] is False
    custom = probe(tmp_path, KBSEARCH_PROXY_SSL_HEADER="X-Forwarded-Ssl=on")
    assert custom["SECURE_PROXY_SSL_HEADER"] == ["HTTP_X_FORWARDED_SSL", "on"]


def test_each_index_backend_gets_only_its_own_options(tmp_path):
    embedded = probe(tmp_path, KBSEARCH_INDEX_PATH="/srv/index/embedded.sqlite3")["KBSEARCH_INDEX"]
    assert embedded == {"BACKEND": EMBEDDED, "OPTIONS": {"path": "/srv/index/embedded.sqlite3"}}
    weaviate = probe(
        tmp_path,
        KBSEARCH_INDEX_BACKEND=WEAVIATE,
        KBSEARCH_WEAVIATE_URL="http://weaviate:8080",
        KBSEARCH_WEAVIATE_API_KEY="wk",
        KBSEARCH_INDEX_PATH="/srv/index/embedded.sqlite3",
    )["KBSEARCH_INDEX"]
    assert weaviate == {
        "BACKEND": WEAVIATE,
        "OPTIONS": {
            "url": "http://weaviate:8080", "api_key": "wk", "collection": "KbsearchChunk",
            "grpc_url": "", "ca_file": "", "delete_limit": 10000,
        },
    }
    other = probe(tmp_path, KBSEARCH_INDEX_BACKEND="example.OtherBackend")["KBSEARCH_INDEX"]
    assert other == {"BACKEND": "example.OtherBackend", "OPTIONS": {}}


def test_configured_template_folders_exist():
    for engine in settings.TEMPLATES:
        for folder in engine.get("DIRS", []):
            assert Path(folder).is_dir(), folder


def test_every_celery_route_matches_a_registered_task():
    from kbsearch.celery import app

    app.loader.import_default_modules()
    tasks = [name for name in app.tasks if not name.startswith("celery.")]
    assert tasks
    for pattern, route in settings.CELERY_TASK_ROUTES.items():
        assert fnmatch.filter(tasks, pattern), f"{pattern} -> {route} routes no task"

