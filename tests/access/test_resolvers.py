"""The principal resolver seam: the default, a configured resolver, failing closed, and one
resolution per request."""
import pytest
from django.contrib.auth.models import AnonymousUser, Group, User
from django.test import Client

from access import resolvers
from access.resolvers import principals_for
from tests.access.fake_resolvers import CALLS


@pytest.fixture
def alice(db):
    user = User.objects.create_user("Alice", password="pw-alice")
    user.groups.add(Group.objects.create(name="HR"))
    return user


def test_default_is_user_groups_and_public_folded(alice):
    assert principals_for(alice) == {"public", "user:alice", "group:hr"}


def test_anonymous_inactive_and_missing_users_have_no_principals(alice, settings):
    settings.KBSEARCH_PRINCIPAL_RESOLVER = "tests.access.fake_resolvers.CountingResolver"
    alice.is_active = False
    assert principals_for(alice) == frozenset()
    assert principals_for(AnonymousUser()) == frozenset()
    assert principals_for(None) == frozenset()


def test_resolver_is_chosen_by_dotted_path(alice, settings):
    settings.KBSEARCH_PRINCIPAL_RESOLVER = "tests.access.fake_resolvers.CountingResolver"
    assert principals_for(alice) == {"public", "user:alice", "group:from-directory"}


def test_a_failing_resolver_leaves_the_user_with_nothing(alice, settings):
    settings.KBSEARCH_PRINCIPAL_RESOLVER = "tests.access.fake_resolvers.BrokenResolver"
    assert principals_for(alice) == frozenset()


def test_outside_a_request_every_call_resolves_afresh(alice):
    assert "group:legal" not in principals_for(alice)
    alice.groups.add(Group.objects.create(name="legal"))
    assert "group:legal" in principals_for(alice)


def test_inside_a_request_principals_are_resolved_once(alice, settings):
    settings.KBSEARCH_PRINCIPAL_RESOLVER = "tests.access.fake_resolvers.CountingResolver"
    token = resolvers.open_request_scope()
    try:
        CALLS.clear()
        for _ in range(3):
            assert "group:from-directory" in principals_for(alice)
        assert CALLS == [alice.pk]
    finally:
        resolvers.close_request_scope(token)
    CALLS.clear()
    principals_for(alice)
    assert CALLS == [alice.pk]


def test_a_page_request_resolves_once_through_the_middleware(alice, settings, index_backend):
    settings.KBSEARCH_PRINCIPAL_RESOLVER = "tests.access.fake_resolvers.CountingResolver"
    client = Client()
    client.force_login(alice)
    CALLS.clear()
    # A document id that does not exist: the page still resolves the user's principals to look.
    assert client.get("/documents/12345/").status_code == 404
    assert CALLS == [alice.pk]
