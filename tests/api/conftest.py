"""A small multilingual knowledge base with permissions, synced through the file-share connector,
and API clients for users in different groups (token authentication, as API clients use it)."""
from pathlib import Path

import pytest
from django.contrib.auth.models import Group, User
from django.core.cache import cache
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from connectors.services import source_create, source_sync
from kbsearch.documents.models import Document

FILES = {
    "_access.yaml": "principals: [public]\n",
    "public/vpn.en.md": "# VPN setup\n\nConnect to the VPN from home with Northwind Connect. Pick the nearest gateway.\n",
    "public/vpn.zh.md": "# VPN 设置\n\n在家连接 VPN 时请使用 Northwind Connect。连接失败时检查数据库时间。\n",
    "public/cafeteria.ja.md": "# 食堂\n\n食堂は8時に開きます。VPN は不要です。\n",
    "hr/_access.yaml": "principals: [group:hr]\n",
    "hr/salary.en.md": "# Salary bands\n\nBand L3 in Tokyo pays a VPN allowance and 7,800,000 JPY.\n",
    "hr/leave.en.md": "# Parental leave\n\nParents get a VPN laptop and 80% pay for three months.\n",
    "eng/_access.yaml": "principals: [group:engineering]\n",
    "eng/deploy.ko.md": "# 배포 절차\n\nVPN 에 접속한 뒤 배포 파이프라인을 실행하세요. 数据库 백업을 먼저 하세요.\n",
    "drafts/_access.yaml": "principals: []\n",
    "drafts/osaka.en.md": "# Osaka office\n\nA secret draft: the VPN for the Osaka office opens in 2027.\n",
}
VISIBLE = {
    "alice": {"public/vpn.en.md", "public/vpn.zh.md", "public/cafeteria.ja.md", "hr/salary.en.md", "hr/leave.en.md"},
    "bob": {"public/vpn.en.md", "public/vpn.zh.md", "public/cafeteria.ja.md", "eng/deploy.ko.md"},
    "erin": {"public/vpn.en.md", "public/vpn.zh.md", "public/cafeteria.ja.md"},
}


@pytest.fixture(autouse=True)
def _fresh_rate_limits():
    """Rate-limit counters live in the process-wide cache; each test starts with none."""
    cache.clear()
    yield
    cache.clear()


def write_tree(root: Path, files: dict[str, str]) -> Path:
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root


@pytest.fixture
def kb(db, tmp_path, tiny_encoder, index_backend):
    """The synced knowledge base; returns {external_id: Document}."""
    root = write_tree(tmp_path / "share", FILES)
    source = source_create(key="share", name="Shared drive", connector="filesystem", config={"root": str(root)})
    run = source_sync(source=source, encoder=tiny_encoder)
    assert not run.errors, run.errors
    return {document.external_id: document for document in Document.objects.all()}


@pytest.fixture
def users(db):
    hr, engineering = Group.objects.create(name="hr"), Group.objects.create(name="engineering")
    alice = User.objects.create_user("alice", password="pw-alice")
    alice.groups.add(hr)
    bob = User.objects.create_user("bob", password="pw-bob")
    bob.groups.add(engineering)
    erin = User.objects.create_user("erin", password="pw-erin")
    return {"alice": alice, "bob": bob, "erin": erin}


def _token_client(user) -> APIClient:
    client = APIClient()
    token, _ = Token.objects.get_or_create(user=user)
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    return client


@pytest.fixture
def token_client():
    """Makes an API client that authenticates as the given user with their token."""
    return _token_client


@pytest.fixture
def clients(users, kb):
    return {name: _token_client(user) for name, user in users.items()}


@pytest.fixture
def add_source(tmp_path, tiny_encoder, index_backend):
    """Makes and syncs another file-share source: add_source(key, files) -> Source."""

    def add(key: str, files: dict[str, str]):
        root = write_tree(tmp_path / key, files)
        source = source_create(key=key, name=key.title(), connector="filesystem", config={"root": str(root)})
        source_sync(source=source, encoder=tiny_encoder)
        return source

    return add


@pytest.fixture
def visible(kb) -> dict[str, set[int]]:
    """Ids of the documents each user may see."""
    return {name: {kb[external_id].pk for external_id in paths} for name, paths in VISIBLE.items()}
