"""A small Confluence site on the fake server, and helpers to sync it and read what kbsearch holds.

ENG (readable by groups ``eng`` and ``staff``):
  Home
  ├── Secret   restricted to alice and group eng
  │   └── Inner   restricted to group hr (only carol is in hr; carol is in eng)
  └── Open     with the attachment notes.txt
OPS (readable by bob alone): the blog post "Ops news".
"""
import pytest
from cryptography.fernet import Fernet

from connectors.services import source_create, source_sync
from kbsearch.documents.credentials import source_credentials_set
from kbsearch.documents.models import Document
from tests.fakes.confluence import confluence_server  # noqa: F401 (the fixture)

ENG_READERS = ("group:eng", "group:staff")


@pytest.fixture(autouse=True)
def _credentials_key(settings):
    settings.KBSEARCH_CREDENTIALS_KEY = Fernet.generate_key().decode()


@pytest.fixture
def wiki(confluence_server):  # noqa: F811
    fake = confluence_server
    site = fake.site
    fake.alice = fake.add_user("alice", groups=("eng",))
    fake.bob = fake.add_user("bob", groups=("staff",))
    fake.carol = fake.add_user("carol", groups=("eng", "hr"))
    fake.dan = fake.add_user("dan", groups=("hr",))  # in hr, but without access to ENG
    fake.eng, fake.ops = site.add_space("ENG", "Engineering"), site.add_space("OPS", "Operations")
    site.grant_space(fake.eng, "eng")
    site.grant_space(fake.eng, "staff")
    site.grant_space(fake.ops, fake.bob)
    fake.home = site.add_page(fake.eng, "Home", body="<h1>Home</h1><p>Welcome to the engineering wiki.</p>")
    fake.secret = site.add_page(fake.eng, "Secret", parent=fake.home,
                                body="<h2>Launch</h2><p>The secret launch plan.</p>")
    fake.inner = site.add_page(fake.eng, "Inner", parent=fake.secret, body="<p>Salary bands for the launch team.</p>")
    fake.open = site.add_page(fake.eng, "Open", parent=fake.home, body=(
        '<h2>Deploy</h2><p>Run the deploy script.</p><ac:structured-macro ac:name="code"><ac:parameter ac:name="language">'
        "bash</ac:parameter><ac:plain-text-body><![CDATA[./deploy.sh --prod]]></ac:plain-text-body></ac:structured-macro>"))
    site.restrict_read(fake.secret, users=(fake.alice,), groups=("eng",))
    site.restrict_read(fake.inner, groups=("hr",))
    fake.notes = site.add_attachment(fake.open, "notes.txt", b"Deploy notes: rollback with ./rollback.sh\n",
                                     media_type="text/plain")
    fake.news = site.add_blogpost(fake.ops, "Ops news", body="<p>The ops news of the week.</p>")
    return fake


def wiki_source(fake, *, key="wiki", **config):
    source = source_create(key=key, name="Wiki", connector="confluence", config={
        "base_url": fake.base_url, "flavour": "cloud" if fake.cloud else "datacenter", "page_size": 25, **config})
    source_credentials_set(source=source, credentials=fake.credentials())
    return source


def sync(source, encoder, index, **kw):
    source.refresh_from_db()
    return source_sync(source=source, encoder=encoder, index=index, **kw)


def access_lists(source) -> dict[str, frozenset[str]]:
    return {
        document.external_id: frozenset(document.access.values_list("principal", flat=True))
        for document in Document.objects.filter(source=source).prefetch_related("access")
    }


def expected_cloud_access(fake) -> dict[str, frozenset[str]]:
    return {
        fake.home.id: frozenset(ENG_READERS),
        fake.secret.id: frozenset({"group:eng", "user:alice@example.com"}),
        fake.inner.id: frozenset({"user:carol@example.com"}),
        fake.open.id: frozenset(ENG_READERS),
        fake.notes.id: frozenset(ENG_READERS),
        fake.news.id: frozenset({"user:bob@example.com"}),
    }
