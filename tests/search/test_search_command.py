"""``manage.py search "<query>" --user <name>``: ranked results as that user sees them."""
import re
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from tests.knowledge_base import knowledge_base_declared

pytestmark = pytest.mark.django_db

FILES = {
    "_access.yaml": "principals: [public]\n",
    "public/vpn.en.md": "# VPN setup\n\nConnect to the VPN from home.\n",
    "hr/_access.yaml": "principals: [group:hr]\n",
    "hr/salary.en.md": "# Salary bands\n\nBand L3 pays a salary of 7,800,000 JPY.\n",
}
USERS = {"alice": {"groups": ["hr"]}, "erin": {"groups": []}, "ivan": {"groups": ["hr"], "is_active": False}}


kb_files, kb_users = knowledge_base_declared(FILES, USERS)


def search(*args) -> str:
    out = StringIO()
    call_command("search", *args, stdout=out)
    return out.getvalue()


def test_results_are_the_users_own(kb, users):
    # Keyword search: only the salary document contains the word, so the answer is known.
    output = search("salary", "--user", "alice", "--mode", "bm25")
    lines = output.splitlines()
    assert re.match(r"\s+1\. Salary bands  \[share · hr · en\]  \d+\.\d{3}$", lines[0]), lines[0]
    assert lines[1].strip() == kb["hr/salary.en.md"].url
    assert "7,800,000 JPY" in lines[2]
    assert re.fullmatch(r"\(1 results in \d+ ms\)", lines[-1])
    assert search("salary", "--user", "erin", "--mode", "bm25") == "No results for 'salary' visible to erin.\n"


def test_filters_narrow_the_results(kb, users):
    output = search("VPN salary", "--user", "alice", "--language", "zh")
    assert output == "No results for 'VPN salary' visible to alice.\n"
    output = search("VPN salary", "--user", "alice", "--source", "share", "--limit", "1")
    assert output.count(" 1. ") == 1 and "(1 results in" in output
    output = search("VPN salary", "--user", "alice", "--place", "share:public")
    assert "VPN setup" in output and "Salary" not in output and "(1 results in" in output


def test_an_inactive_user_finds_nothing(kb, users):
    assert search("salary", "--user", "ivan") == "No results for 'salary' visible to ivan.\n"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["salary", "--user", "zed"], "no user named 'zed'"),
        (["   ", "--user", "alice"], "query is empty"),
        (["x" * 10_000, "--user", "alice"], "the limit is 1000"),
        (["salary", "--user", "alice", "--alpha", "3"], "alpha must be between 0 and 1"),
    ],
)
def test_bad_input_is_a_command_error_with_a_clear_message(kb, users, args, message):
    with pytest.raises(CommandError, match=message):
        call_command("search", *args)
