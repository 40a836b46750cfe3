"""The search page tests' knowledge base and users (the fixtures themselves are shared:
``tests/knowledge_base.py``)."""
import pytest

from tests.knowledge_base import knowledge_base_declared

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
USERS = {
    "alice": {"groups": ["hr"], "first_name": "Alice", "last_name": "Wang"},
    "erin": {"groups": []},
}


kb_files, kb_users = knowledge_base_declared(FILES, USERS)


@pytest.fixture(autouse=True)
def _no_background_model_loading(settings):
    """The sign-in page would start loading the model on a thread that outlives the test."""
    settings.KBSEARCH_WARM_ENCODER = False
