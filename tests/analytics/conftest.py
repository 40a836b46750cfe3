"""The report tests search through the page, on a small knowledge base of their own (the fixtures
themselves are shared: ``tests/knowledge_base.py``)."""
from tests.knowledge_base import knowledge_base_declared

FILES = {
    "_access.yaml": "principals: [public]\n",
    "public/vpn.en.md": "# VPN setup\n\nConnect to the VPN from home. Pick the nearest gateway.\n",
    "public/database.zh.md": "# 数据库备份\n\n每天凌晨备份数据库。\n",
    "hr/_access.yaml": "principals: [group:hr]\n",
    "hr/salary.en.md": "# Salary bands\n\nBand L3 in Tokyo pays 7,800,000 JPY.\n",
}
USERS = {"alice": {"groups": ["hr"]}, "erin": {"groups": []}}


kb_files, kb_users = knowledge_base_declared(FILES, USERS)
