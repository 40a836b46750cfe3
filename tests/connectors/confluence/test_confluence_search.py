"""End to end: a Confluence space synced with its permissions, identities mapped onto a directory
(slapd) by email and cn, and what each directory user then finds through search (exact sets)."""
import pytest
from django.contrib.auth.models import User

from access.mapping import identity_mapping_set
from access.services import directory_sync
from kbsearch.search.services import search_run
from tests.access.conftest import directory_password, openldap, slapd, slapd_server  # noqa: F401 (fixtures)
from tests.connectors.confluence.conftest import sync, wiki_source
from tests.knowledge_base import use_encoder

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _directory_resolver(settings):
    settings.KBSEARCH_PRINCIPAL_RESOLVER = "access.resolvers.DirectoryPrincipalResolver"


def titles(user) -> set[str]:
    response = search_run(user=user, query="handbook", mode="bm25", limit=50)
    return {result.document.title for result in response.results}


def test_directory_users_see_exactly_the_pages_confluence_lets_them_read(
    confluence_server, openldap, tiny_encoder, index_backend, monkeypatch  # noqa: F811
):
    use_encoder(monkeypatch, tiny_encoder)
    directory_sync(directory=openldap, full=True)
    fake, site = confluence_server, confluence_server.site
    # Confluence's own users and groups; emails and group names match the directory's mail and cn.
    alice = fake.add_user("alice", groups=("staff",))
    fake.add_user("bob", groups=("staff", "engineering"))
    fake.add_user("carol", groups=("staff",))
    fake.add_user("frank", groups=("staff", "hr"))
    fake.add_user("mallory", email="mallory@example.com", groups=("hr",))  # hr at Confluence, no space access
    space = site.add_space("ENG", "Engineering")
    site.grant_space(space, "staff")
    home = site.add_page(space, "Roadmap", body="<p>The engineering handbook roadmap.</p>")
    design = site.add_page(space, "Design", parent=home, body="<p>The design handbook.</p>")
    site.restrict_read(design, users=(alice,), groups=("engineering",))
    payroll = site.add_page(space, "Payroll", parent=home, body="<p>The payroll handbook.</p>")
    site.restrict_read(payroll, groups=("hr",))
    site.add_page(space, "Payroll details", parent=payroll, body="<p>The payroll handbook, in detail.</p>")

    identity_mapping_set(source_key="wiki", user_key="email", group_key="cn", directory_key="corp-ldap")
    source = wiki_source(fake)
    assert sync(source, tiny_encoder, index_backend).status == "succeeded"

    people = {name: User.objects.create_user(name) for name in ("alice", "bob", "carol", "frank", "grace", "mallory")}
    # In the directory: alice and bob are in engineering and staff, carol in staff, frank only in hr
    # (but Confluence admits him by name: user:frank@example.com), grace in nothing.
    assert {name: titles(user) for name, user in people.items()} == {
        "alice": {"Roadmap", "Design"},
        "bob": {"Roadmap", "Design"},
        "carol": {"Roadmap"},
        "frank": {"Payroll", "Payroll details"},
        "grace": set(),
        "mallory": set(),
    }
