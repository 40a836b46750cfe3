"""The operations tests' knowledge base: two documents, one public, one for a group, and two users."""
import pytest

from kbsearch.ops.warmup import encoder_warmup
from tests.knowledge_base import knowledge_base_declared

FILES = {
    "_access.yaml": "principals: [public]\n",
    "public/vpn.en.md": "# VPN setup\n\nConnect to the VPN from home with Northwind Connect.\n",
    "hr/_access.yaml": "principals: [group:hr]\n",
    "hr/salary.en.md": "# Salary bands\n\nBand L3 in Tokyo pays a VPN allowance.\n",
}
USERS = {"alice": {"groups": ["hr"]}, "erin": {"groups": []}}

kb_files, kb_users = knowledge_base_declared(FILES, USERS)


@pytest.fixture(autouse=True)
def _fresh_warmup():
    """Each test starts with no model load begun or finished in this process's warmup state."""
    encoder_warmup.reset()
    yield
    encoder_warmup.reset()
