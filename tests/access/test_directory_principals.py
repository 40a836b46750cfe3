"""The directory principal resolver end to end: users synced from slapd search a small knowledge base
and see exactly what their transitive groups allow; a membership removed in LDAP is gone from their
results after the next incremental sync, with no re-embedding; disabled, deleted and unknown users;
the directory down (grace period, then public only) on a controllable clock."""
from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.utils import timezone

from access.directory.client import DirectoryUnavailable
from access.models import DirectorySyncRun
from access.principals import normalize_principal
from access.resolvers import principals_for
from access.services import directory_sync
from kbsearch.documents.models import Document
from kbsearch.documents.selectors import document_visible_ids
from kbsearch.search.services import search_run
from scripts.slapd import free_port
from tests.access.directory_data import group_dn, person_dn

FILES = {
    "welcome/_access.yaml": "principals: [public]\n",
    "welcome/welcome.md": "# Welcome\n\nThe handbook starts here.\n",
    "platform/_access.yaml": "principals: [group:platform]\n",
    "platform/runbook.md": "# Platform runbook\n\nThe handbook for the platform team.\n",
    "staff/_access.yaml": "principals: [group:staff]\n",
    "staff/benefits.md": "# Staff benefits\n\nThe handbook of staff benefits.\n",
    "eigyo/_access.yaml": "principals: ['group:営業部']\n",
    "eigyo/plan.md": "# 営業計画\n\nThe sales handbook, 営業部 only.\n",
    "cycle/_access.yaml": "principals: [group:cycle-b]\n",
    "cycle/loop.md": "# Loop notes\n\nA handbook for the cycle groups.\n",
    "alice/_access.yaml": "principals: [user:alice]\n",
    "alice/notes.md": "# Alice notes\n\nAlice's own handbook notes.\n",
    "ad/_access.yaml": "principals: [group:readers]\n",
    "ad/readers.md": "# Readers guide\n\nThe readers handbook.\n",
    "drafts/_access.yaml": "principals: []\n",
    "drafts/draft.md": "# Draft\n\nA handbook draft nobody may see.\n",
}
PUBLIC_ONLY = {"welcome/welcome.md"}


class CountingEncoder:
    """The tiny encoder, counting the passages it embeds."""

    def __init__(self, inner) -> None:
        self.inner, self.passages = inner, 0
        self.dimension, self.count_tokens = inner.dimension, inner.count_tokens
        self.index_metadata = inner.index_metadata

    def encode_passages(self, texts):
        self.passages += len(texts)
        return self.inner.encode_passages(texts)

    def encode_queries(self, texts):
        return self.inner.encode_queries(texts)


@pytest.fixture
def kb_files():
    return FILES


@pytest.fixture
def kb_encoder(tiny_encoder):
    return CountingEncoder(tiny_encoder)


@pytest.fixture(autouse=True)
def _directory_resolver(settings):
    settings.KBSEARCH_PRINCIPAL_RESOLVER = "access.resolvers.DirectoryPrincipalResolver"


@pytest.fixture
def people(db):
    # "Alice" in Django is uid=alice in the directory: matched regardless of case.
    return {name: User.objects.create_user(name) for name in ("Alice", "tanaka", "dave", "grace", "frank", "zoe", "jsmith", "mlee")}


def visible(user) -> set[str]:
    """External ids ``user`` finds; the database's access re-check must agree exactly."""
    response = search_run(user=user, query="handbook", mode="bm25", limit=50)
    found = {result.document.external_id for result in response.results}
    all_ids = list(Document.objects.values_list("pk", flat=True))
    allowed = set(
        Document.objects.filter(pk__in=document_visible_ids(user=user, document_ids=all_ids)).values_list(
            "external_id", flat=True
        )
    )
    assert found == allowed, (found, allowed)
    return found


def test_users_see_what_their_transitive_groups_allow(kb, people, openldap):
    directory_sync(directory=openldap, full=True)
    assert visible(people["Alice"]) == {*PUBLIC_ONLY, "platform/runbook.md", "staff/benefits.md", "alice/notes.md"}
    assert visible(people["tanaka"]) == {*PUBLIC_ONLY, "platform/runbook.md", "staff/benefits.md", "eigyo/plan.md"}
    assert visible(people["dave"]) == {*PUBLIC_ONLY, "cycle/loop.md"}  # in cycle-b through cycle-a
    assert visible(people["grace"]) == PUBLIC_ONLY  # in the directory, in no group


def test_principals_are_resolved_in_two_queries_and_are_canonical(people, openldap, django_assert_num_queries):
    directory_sync(directory=openldap, full=True)
    # The user's groups in one query; the source identities mapped to them (access.mapping) in one more.
    with django_assert_num_queries(2):
        principals = principals_for(people["tanaka"])
    assert principals == {"public", "user:tanaka", "group:platform", "group:engineering", "group:staff", "group:営業部"}
    assert all(normalize_principal(p) == p for p in principals)
    assert principals_for(people["Alice"]) == {"public", "user:alice", "group:platform", "group:engineering", "group:staff"}


def test_a_membership_removed_in_ldap_is_gone_from_results_after_the_next_incremental_sync(kb, kb_encoder, people, openldap, slapd):
    directory_sync(directory=openldap, full=True)
    before = visible(people["Alice"])
    assert "platform/runbook.md" in before and "staff/benefits.md" in before
    embedded = kb_encoder.passages
    slapd.ldapmodify(f"dn: {group_dn('platform')}\nchangetype: modify\ndelete: member\nmember: {person_dn('alice')}\n")
    assert visible(people["Alice"]) == before  # not yet synced
    assert directory_sync(directory=openldap).mode == "incremental"
    assert visible(people["Alice"]) == {*PUBLIC_ONLY, "alice/notes.md"}
    assert visible(people["tanaka"]) == {*PUBLIC_ONLY, "platform/runbook.md", "staff/benefits.md", "eigyo/plan.md"}
    assert kb_encoder.passages == embedded  # permissions changed, nothing re-embedded


def test_a_disabled_user_sees_nothing_not_even_public(kb, people, ad):
    directory_sync(directory=ad, full=True)
    assert visible(people["jsmith"]) == {*PUBLIC_ONLY, "ad/readers.md"}  # Readers, nested in All Staff
    assert principals_for(people["mlee"]) == frozenset()
    assert visible(people["mlee"]) == set()


def test_a_user_deleted_from_the_directory_sees_nothing(kb, people, openldap, slapd):
    directory_sync(directory=openldap, full=True)
    assert visible(people["frank"]) == PUBLIC_ONLY  # hr grants no document here
    slapd.ldapmodify(f"dn: {person_dn('frank')}\nchangetype: delete\n")
    directory_sync(directory=openldap)
    assert principals_for(people["frank"]) == frozenset()
    assert visible(people["frank"]) == set()


def test_a_user_unknown_to_the_directory_sees_public_only(kb, people, openldap):
    directory_sync(directory=openldap, full=True)
    assert principals_for(people["zoe"]) == {"public"}
    assert visible(people["zoe"]) == PUBLIC_ONLY


def test_a_directory_switched_off_vouches_for_no_groups_at_once(kb, people, openldap):
    directory_sync(directory=openldap, full=True)
    assert visible(people["Alice"]) != PUBLIC_ONLY
    openldap.enabled = False
    openldap.save(update_fields=["enabled"])
    assert principals_for(people["Alice"]) == {"public"}  # known, but nobody vouches for her groups now
    assert visible(people["Alice"]) == PUBLIC_ONLY


def test_directory_down_users_keep_their_groups_for_the_grace_period_then_see_public_only(kb, people, openldap, monkeypatch):
    directory_sync(directory=openldap, full=True)
    synced_at = openldap.last_success_at
    full_view = {*PUBLIC_ONLY, "platform/runbook.md", "staff/benefits.md", "alice/notes.md"}
    # The directory stops answering: a port nothing listens on.
    working_url = openldap.server_urls
    openldap.server_urls = f"ldap://127.0.0.1:{free_port()}"
    openldap.save()

    def at(moment):
        monkeypatch.setattr("access.selectors.current_time", lambda: moment)

    at(synced_at + timedelta(hours=23))
    with pytest.raises(DirectoryUnavailable, match="cannot bind"):
        directory_sync(directory=openldap)
    failed = DirectorySyncRun.objects.filter(directory=openldap).first()
    assert failed.status == "failed" and "cannot bind" in failed.errors[0]
    assert visible(people["Alice"]) == full_view  # within the 24-hour grace period

    at(synced_at + timedelta(hours=24, seconds=1))
    assert principals_for(people["Alice"]) == {"public"}
    assert visible(people["Alice"]) == PUBLIC_ONLY
    assert visible(people["tanaka"]) == PUBLIC_ONLY

    # The directory answers again: the next sync restores access.
    openldap.server_urls = working_url
    openldap.save()
    directory_sync(directory=openldap)
    at(timezone.now())
    assert visible(people["Alice"]) == full_view


def test_a_held_sync_keeps_the_last_groups_and_does_not_restart_the_grace_period(kb, people, openldap, monkeypatch):
    directory_sync(directory=openldap, full=True)
    synced_at = openldap.last_success_at
    openldap.group_filter = "(cn=no-such-group)"
    openldap.save()
    assert directory_sync(directory=openldap).status == "held"
    assert "platform/runbook.md" in visible(people["Alice"])
    monkeypatch.setattr("access.selectors.current_time", lambda: synced_at + openldap.grace_period + timedelta(seconds=1))
    assert visible(people["Alice"]) == PUBLIC_ONLY
