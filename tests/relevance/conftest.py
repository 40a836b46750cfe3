"""Training-data tests: a small knowledge base (public guides, one HR-only page), users, and helpers
that leave searches, clicks and votes at chosen times, as the analytics services record them.

The knowledge base is embedded with ``KeywordEncoder``, so which chunk or passage is nearest to a
query follows from the words in it, not from an arbitrary tiny model.
"""
import json
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from kbsearch.analytics.models import Click, Feedback, QueryLog
from kbsearch.analytics.services import click_record, feedback_record, query_log_create
from kbsearch.relevance.training_data.params import TrainingDataParams
from kbsearch.relevance.training_data.services import training_data_build
from tests.keyword_encoder import KeywordEncoder
from tests.knowledge_base import knowledge_base_declared

FILES = {
    "_access.yaml": "principals: [public]\n",
    "public/vpn.en.md": (
        "# VPN setup\n\n## Install the client\n\nDownload the VPN client from the portal and install it.\n\n"
        "## Connect from home\n\nOpen the client, pick the nearest gateway and connect.\n"
    ),
    "public/printer.en.md": "# Printer guide\n\n## Add a printer\n\nOpen settings and add the office printer by its name.\n",
    "public/wifi.en.md": "# Wifi access\n\nThe guest wifi password is at the reception; no VPN is needed on the office wifi.\n",
    "public/mail.en.md": "# Mail on the phone\n\nAdd your mail account to the phone; the VPN profile connects it.\n",
    "hr/_access.yaml": "principals: [group:hr]\n",
    "hr/salary.en.md": "# Salary bands\n\nBand L3 pays well; open the salary sheet through the VPN gateway.\n",
}
USERS = {"alice": {"groups": ["hr"]}, "bob": {"groups": []}, "carol": {"groups": []}, "dave": {"groups": []}}
KEYWORDS = ["vpn", "client", "install", "connect", "gateway", "printer", "wifi", "mail", "salary", "phone"]

kb_files, kb_users = knowledge_base_declared(FILES, USERS)


@pytest.fixture
def kb_encoder():
    return KeywordEncoder(KEYWORDS)


@pytest.fixture
def doc(kb):
    """The document of a file name, e.g. doc("vpn")."""
    by_name = {external_id.rsplit("/", 1)[-1].split(".")[0]: document for external_id, document in kb.items()}
    return by_name.__getitem__


@pytest.fixture
def base_time():
    return timezone.now() - timedelta(days=2)


def search(user, query: str, at) -> QueryLog:
    """A logged search by ``user`` at time ``at``."""
    log = query_log_create(user=user, query=query, filters={}, mode="hybrid", channel="web", limit=10, offset=0,
                           results=[], total=0, lexical_total=None, latency_ms=1.0)
    QueryLog.objects.filter(pk=log.pk).update(created_at=at)
    return log


def click(user, document, log: QueryLog, rank: int, at) -> Click:
    """A click on ``document`` shown at ``rank`` of search ``log``, at time ``at``."""
    recorded, _ = click_record(user=user, document_id=document.pk, rank=rank, query_id=log.pk)
    Click.objects.filter(pk=recorded.pk).update(created_at=at)
    return recorded


def vote(user, document, log: QueryLog, value: int, at) -> Feedback:
    recorded, _ = feedback_record(user=user, document_id=document.pk, value=value, query_id=log.pk)
    Feedback.objects.filter(pk=recorded.pk).update(updated_at=at, created_at=at)
    return recorded


def search_and_click(user, query: str, document, *, rank: int, at) -> Click:
    log = search(user, query, at)
    return click(user, document, log, rank, at + timedelta(seconds=30))


@pytest.fixture
def build(tmp_path, index_backend):
    """Build a snapshot into tmp_path (no held-out part, no corpus pairs unless asked);
    returns (snapshot, train rows)."""

    def run(**options):
        defaults = {"heldout_fraction": 0.0, "corpus_per_document": 0, "pool_sample": 100, "heldout_distractors": 10}
        params = TrainingDataParams(**{**defaults, **options})
        snapshot = training_data_build(params=params, output_root=tmp_path / "training")
        return snapshot, train_rows(snapshot)

    return run


def train_rows(snapshot) -> list[dict]:
    with (Path(snapshot.path) / "train.jsonl").open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle]


def rows_for(rows: list[dict], query: str) -> list[dict]:
    return [row for row in rows if row["query"] == query]
