"""The fake servers' fixtures, for the tests of the fakes themselves.

Connector tests take the same fixture by importing it into their own conftest:
``from tests.fakes.confluence import confluence_server  # noqa: F401``.
"""
import pytest

from tests.fakes.confluence import confluence_server  # noqa: F401


@pytest.fixture
def site(confluence_server):  # noqa: F811 (the fixture imported above)
    """ENG with a restricted subtree and an attachment, OPS with a blog post; alice in eng, bob not."""
    fake = confluence_server
    s = fake.site
    fake.alice = fake.add_user("alice", groups=("eng",))
    fake.bob = fake.add_user("bob", groups=("staff",))
    fake.eng, fake.ops = s.add_space("ENG", "Engineering"), s.add_space("OPS", "Operations")
    s.grant_space(fake.eng, "eng")
    s.grant_space(fake.eng, "staff")
    s.grant_space(fake.eng, fake.alice, key="administer")
    s.grant_space(fake.ops, fake.bob)
    fake.home = s.add_page(fake.eng, "Home", body="<h1>Home</h1><p>Welcome</p>")
    fake.secret = s.add_page(fake.eng, "Secret", parent=fake.home, body="<p>hidden</p>")
    fake.inner = s.add_page(fake.eng, "Inner", parent=fake.secret, body="<table><tbody><tr><td>x</td></tr></tbody></table>")
    fake.open = s.add_page(fake.eng, "Open", parent=fake.home)
    s.restrict_read(fake.secret, users=(fake.alice,), groups=("eng",))
    fake.pdf = s.add_attachment(fake.open, "plan v2.pdf", b"%PDF-1.4 fake", media_type="application/pdf")
    fake.news = s.add_blogpost(fake.ops, "Ops news", body="<p>news</p>")
    return fake
