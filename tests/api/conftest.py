"""The API tests' knowledge base: a small multilingual file share with permissions, and users in
different groups (the fixtures themselves are shared: ``tests/knowledge_base.py``)."""
import pytest

from tests.knowledge_base import knowledge_base_declared

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
USERS = {
    "alice": {"groups": ["hr"]},
    "bob": {"groups": ["engineering"]},
    "erin": {"groups": []},
}
# Written by hand from FILES and USERS, not read back from the system under test.
VISIBLE = {
    "alice": {"public/vpn.en.md", "public/vpn.zh.md", "public/cafeteria.ja.md", "hr/salary.en.md", "hr/leave.en.md"},
    "bob": {"public/vpn.en.md", "public/vpn.zh.md", "public/cafeteria.ja.md", "eng/deploy.ko.md"},
    "erin": {"public/vpn.en.md", "public/vpn.zh.md", "public/cafeteria.ja.md"},
}


kb_files, kb_users = knowledge_base_declared(FILES, USERS)


@pytest.fixture
def visible(kb) -> dict[str, set[int]]:
    """Ids of the documents each user may see."""
    return {name: {kb[external_id].pk for external_id in paths} for name, paths in VISIBLE.items()}
