"""A production-like environment passes ``check --deploy``; without a secret nothing serves, but the
setup commands of ``make demo`` still run (DEBUG off, no secret, SQLite folder made on first use)."""
import secrets
import shutil
import sqlite3
from pathlib import Path

from tests.settings.test_settings_fail_safe import clean_env, run

DEMO_DIR = Path(__file__).resolve().parents[2] / "demo"


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
