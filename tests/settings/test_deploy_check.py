"""A production-like environment passes ``check --deploy``; without a secret nothing serves, but the
setup commands of ``make demo`` still run (DEBUG off, no secret, SQLite folder made on first use)."""
import json
import secrets
import shutil
import sqlite3
from pathlib import Path

from tests.settings.test_settings_fail_safe import clean_env, run

DEMO_DIR = Path(__file__).resolve().parents[2] / "demo"
ROOT_STATIC = Path(__file__).resolve().parents[2] / "kbsearch" / "web" / "static"


def production_env(var_dir: Path, **values: str) -> dict[str, str]:
    return clean_env(
        var_dir,
        KBSEARCH_SECRET_KEY=secrets.token_urlsafe(50),
        KBSEARCH_ALLOWED_HOSTS="kb.example.com",
        KBSEARCH_CSRF_TRUSTED_ORIGINS="https://kb.example.com",
        KBSEARCH_PROXY_SSL_HEADER="X-Forwarded-Proto",
        **values,
    )


def test_check_deploy_is_clean_in_a_production_like_environment(tmp_path):
    result = run(["manage.py", "check", "--deploy", "--fail-level", "WARNING"], production_env(tmp_path / "var"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout
    assert "WARNING" not in result.stderr and "ERROR" not in result.stderr


def test_check_deploy_names_a_missing_secret(tmp_path):
    env = production_env(tmp_path / "var")
    del env["KBSEARCH_SECRET_KEY"]
    result = run(["manage.py", "check", "--deploy", "--fail-level", "WARNING"], env)
    assert result.returncode != 0 and "security.W009" in result.stderr


def test_a_web_process_without_a_secret_refuses_to_start(tmp_path):
    env = production_env(tmp_path / "var")
    del env["KBSEARCH_SECRET_KEY"]
    refused = run(["-c", "import kbsearch.wsgi"], env)
    assert refused.returncode != 0
    assert "ImproperlyConfigured: KBSEARCH_SECRET_KEY is not set" in refused.stderr
    started = run(["-c", "import kbsearch.wsgi; print(type(kbsearch.wsgi.application).__name__)"], production_env(tmp_path / "var"))
    assert started.returncode == 0 and started.stdout.strip() == "WSGIHandler", started.stderr


def test_the_demo_setup_steps_run_without_debug_or_a_secret(tmp_path, tiny_model_dir):
    # `make demo` runs migrate and demo_setup as they are (no KBSEARCH_DEBUG, no key); only
    # `make serve` sets KBSEARCH_DEBUG=1. The SQLite folder does not exist beforehand. The demo's
    # users with a two-document knowledge base keep this quick; what is tested is the settings.
    demo_dir = tmp_path / "demo"
    (demo_dir / "sample_kb").mkdir(parents=True)
    shutil.copy(DEMO_DIR / "users.yaml", demo_dir / "users.yaml")
    (demo_dir / "sample_kb" / "_access.yaml").write_text("principals: [public]\n", encoding="utf-8")
    (demo_dir / "sample_kb" / "vpn.en.md").write_text("# VPN\n\nConnect from home.\n", encoding="utf-8")
    (demo_dir / "sample_kb" / "vpn.zh.md").write_text("# VPN\n\n在家连接 VPN。\n", encoding="utf-8")
    var_dir = tmp_path / "var"
    env = clean_env(var_dir, KBSEARCH_EMBEDDING_MODEL=str(tiny_model_dir))
    migrated = run(["manage.py", "migrate", "--noinput", "-v", "0"], env)
    assert migrated.returncode == 0, migrated.stderr
    assert (var_dir / "kbsearch.sqlite3").is_file()  # the folder was made on first connection
    demo = run(["manage.py", "demo_setup", "--demo-dir", str(demo_dir)], env)
    assert demo.returncode == 0, demo.stderr
    assert "sample knowledge base: succeeded" in demo.stdout
    with sqlite3.connect(var_dir / "kbsearch.sqlite3") as connection:
        documents = {row[0] for row in connection.execute("select external_id from documents_document")}
        users = {row[0] for row in connection.execute("select username from auth_user")}
    assert documents == {"vpn.en.md", "vpn.zh.md"}
    assert users == {"alice", "bob", "carol", "dave", "erin", "hanako", "wei", "admin"}


def test_check_deploy_is_clean_with_every_operations_setting(tmp_path):
    env = production_env(
        tmp_path / "var",
        KBSEARCH_METRICS_TOKEN=secrets.token_urlsafe(32),
        KBSEARCH_METRICS_ALLOWED_ADDRESSES="10.0.0.0/8",
        KBSEARCH_LOG_FORMAT="json",
        KBSEARCH_STATIC_ROOT=str(tmp_path / "static"),
    )
    result = run(["manage.py", "check", "--deploy", "--fail-level", "WARNING"], env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


SERVE_STATIC = """
import json, django
django.setup()
from django.templatetags.static import static
from django.test import Client
url = static("web/kbsearch.css")
plain = Client().get("/static/web/kbsearch.css", HTTP_HOST="kb.example.com", HTTP_X_FORWARDED_PROTO="https")
hashed = Client().get(url, HTTP_HOST="kb.example.com", HTTP_X_FORWARDED_PROTO="https")
print(json.dumps({"url": url, "plain": plain.status_code, "hashed": hashed.status_code,
                  "cache": hashed.get("Cache-Control", ""), "body": b"".join(hashed.streaming_content).decode()[:40]}))
"""


def test_static_files_are_collected_and_served_by_whitenoise_with_debug_off(tmp_path):
    env = production_env(tmp_path / "var", KBSEARCH_STATIC_ROOT=str(tmp_path / "static"))
    collected = run(["manage.py", "collectstatic", "--noinput", "-v", "0"], env)
    assert collected.returncode == 0, collected.stderr
    assert (tmp_path / "static" / "staticfiles.json").is_file()
    served = run(["-c", SERVE_STATIC], env)
    assert served.returncode == 0, served.stderr
    answer = json.loads(served.stdout.strip().splitlines()[-1])
    # A hashed name, cached for a year (its content can never change under that name).
    assert answer["url"].startswith("/static/web/kbsearch.") and answer["url"].endswith(".css")
    assert answer["url"] != "/static/web/kbsearch.css"
    assert (answer["plain"], answer["hashed"]) == (200, 200)
    assert "max-age=315360000" in answer["cache"] and "immutable" in answer["cache"]
    assert answer["body"] == (ROOT_STATIC / "web" / "kbsearch.css").read_text(encoding="utf-8")[:40]
