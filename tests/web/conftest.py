"""A small synced knowledge base and signed-in page clients for the search page tests."""
from pathlib import Path

import pytest
from django.contrib.auth.models import Group, User
from django.core.cache import cache
from django.test import Client

from connectors.services import source_create, source_sync
from kbsearch.documents.models import Document

FILES = {
    "_access.yaml": "principals: [public]\n",
    "public/vpn.en.md": "# VPN setup\n\nConnect to the VPN from home. Pick the nearest gateway if latency < 50 ms & retry.\n",
    "public/database.zh.md": "# 数据库备份\n\n每天凌晨备份数据库。恢复数据库时请联系运维。\n",
    "public/password.ja.md": "# パスワード再設定\n\nパスワードを忘れた場合はセルフサービスで再設定できます。\n",
    "public/meeting.ko.md": "# 회의실 예약\n\n회의실 예약은 10분 안에 체크인하지 않으면 자동 취소됩니다.\n",
    "hr/_access.yaml": "principals: [group:hr]\n",
    "hr/salary.en.md": "# Salary bands\n\nBand L3 in Tokyo pays 7,800,000 JPY. VPN allowance included.\n",
    "drafts/_access.yaml": "principals: []\n",
    "drafts/osaka.en.md": "# Osaka office\n\nA secret draft about the Osaka office VPN.\n",
}


@pytest.fixture(autouse=True)
def _fresh_rate_limits():
    cache.clear()
    yield
    cache.clear()


@pytest.fixture(autouse=True)
def _no_background_model_loading(settings):
    """The sign-in page would start loading the model on a thread that outlives the test."""
    settings.KBSEARCH_WARM_ENCODER = False


@pytest.fixture
def kb(db, tmp_path, tiny_encoder, index_backend) -> dict[str, Document]:
    root = tmp_path / "share"
    for relative, text in FILES.items():
        path = Path(root / relative)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    source = source_create(key="share", name="Shared drive", connector="filesystem", config={"root": str(root)})
    run = source_sync(source=source, encoder=tiny_encoder)
    assert not run.errors, run.errors
    return {document.external_id: document for document in Document.objects.all()}


@pytest.fixture
def users(db) -> dict[str, User]:
    hr = Group.objects.create(name="hr")
    alice = User.objects.create_user("alice", password="pw-alice", first_name="Alice", last_name="Wang")
    alice.groups.add(hr)
    erin = User.objects.create_user("erin", password="pw-erin")
    return {"alice": alice, "erin": erin}


@pytest.fixture
def page_client(users, kb):
    """Makes a browser-like client signed in as a user, asking for the given UI language."""

    def make(name: str, accept_language: str = "en") -> Client:
        client = Client(HTTP_ACCEPT_LANGUAGE=accept_language)
        client.force_login(users[name])
        return client

    return make
