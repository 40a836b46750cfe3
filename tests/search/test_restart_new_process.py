"""A restart: a new process opens the same database and index and answers exactly as before.

The knowledge base is committed (not rolled back as other tests' data is) so that a second Python
process, ``manage.py search``, can read it; it is flushed after the test.
"""
import os
import subprocess
import sys
from io import StringIO
from pathlib import Path

from django.conf import settings
from django.core.management import call_command
from django.db import connection

from tests.knowledge_base import knowledge_base_declared

FILES = {
    "_access.yaml": "principals: [public]\n",
    "public/vpn.en.md": "# VPN setup\n\nConnect to the VPN from home. Pick the nearest gateway.\n",
    "public/vpn.zh.md": "# VPN 设置\n\n在家连接 VPN 时请使用 Northwind Connect。\n",
    "hr/_access.yaml": "principals: [group:hr]\n",
    "hr/salary.en.md": "# Salary bands\n\nBand L3 pays a VPN allowance.\n",
    "drafts/_access.yaml": "principals: []\n",
    "drafts/osaka.en.md": "# Osaka office\n\nA secret draft about the Osaka VPN.\n",
}
USERS = {"alice": {"groups": ["hr"]}, "erin": {"groups": []}}


kb_files, kb_users = knowledge_base_declared(FILES, USERS)


def _search_here(query: str, user: str) -> list[str]:
    out = StringIO()
    call_command("search", query, "--user", user, stdout=out)
    return out.getvalue().splitlines()[:-1]  # the last line is the timing


def _search_in_a_new_process(query: str, user: str) -> list[str]:
    database = connection.settings_dict
    login = database["USER"] + (f":{database['PASSWORD']}" if database["PASSWORD"] else "")
    env = {
        **os.environ,
        "DATABASE_URL": f"postgres://{login}@{database['HOST']}:{database['PORT']}/{database['NAME']}",
        "KBSEARCH_INDEX_PATH": settings.KBSEARCH_INDEX["OPTIONS"]["path"],
        "KBSEARCH_EMBEDDING_MODEL": settings.KBSEARCH_EMBEDDING_MODEL,
    }
    done = subprocess.run(
        [sys.executable, "manage.py", "search", query, "--user", user],
        cwd=Path(settings.BASE_DIR), env=env, capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()[:-1]


def test_a_new_process_serves_the_same_index(transactional_db, kb, users):
    for query, user in (("VPN gateway", "alice"), ("VPN gateway", "erin")):
        here = _search_here(query, user)
        assert here, (query, user)
        assert _search_in_a_new_process(query, user) == here, (query, user)
    # The new process filters by the same access lists: erin's answer names only public documents.
    titles = " ".join(_search_in_a_new_process("Osaka salary", "erin"))
    assert "VPN setup" in titles and "Salary bands" not in titles and "Osaka office" not in titles
