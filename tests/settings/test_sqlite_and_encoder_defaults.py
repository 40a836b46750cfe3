"""The one-machine defaults: SQLite in write-ahead-log mode with full sync, the automatic embedding
precision and a query vector cache; each read in a fresh process with a controlled environment."""
import json

from tests.settings.test_settings_fail_safe import clean_env, run

PROBE = """
import json
import django
django.setup()
from django.conf import settings
from django.db import connection
with connection.cursor() as cursor:
    journal = cursor.execute("PRAGMA journal_mode").fetchone()[0]
    synchronous = cursor.execute("PRAGMA synchronous").fetchone()[0]
print(json.dumps({
    "journal": journal, "synchronous": synchronous,
    "precision": settings.KBSEARCH_EMBED_PRECISION, "query_cache": settings.KBSEARCH_QUERY_CACHE_SIZE,
}))
"""


def probe(tmp_path, **values: str) -> dict:
    result = run(["-c", PROBE], clean_env(tmp_path / "var", **values))
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_sqlite_runs_in_wal_mode_with_full_sync_and_the_encoder_defaults(tmp_path):
    values = probe(tmp_path)
    # synchronous 2 is FULL: every commit is on disk when it returns.
    assert (values["journal"], values["synchronous"]) == ("wal", 2)
    assert (values["precision"], values["query_cache"]) == ("auto", 4096)
    assert (tmp_path / "var" / "kbsearch.sqlite3").is_file()


def test_the_encoder_settings_come_from_the_environment(tmp_path):
    values = probe(tmp_path, KBSEARCH_EMBED_PRECISION=" BFloat16 ", KBSEARCH_QUERY_CACHE_SIZE="0")
    assert (values["precision"], values["query_cache"]) == ("bfloat16", 0)
