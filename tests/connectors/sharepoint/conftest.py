"""A SharePoint source on the fake Graph server's Contoso tenant, with real-shaped permissions.

Contoso's HR site (``tests.fakes.graph_testing.contoso``) gets: ``Policies/Private`` with its
inheritance broken and only bob granted; an Entra group "Payroll" (carol) granted ``leave.txt``;
Limited Access for dave on ``Policies`` (what SharePoint adds when something inside is shared).
Everything else inherits the site's three groups from the library root.
"""
import pytest
from cryptography.fernet import Fernet

from connectors.services import source_create
from kbsearch.documents.credentials import source_credentials_set

# As stored: principals are compared case-insensitively, so kept casefolded (access.principals).
SITE_GROUPS = frozenset({"group:human resources owners", "group:human resources members",
                         "group:human resources visitors"})


@pytest.fixture
def credentials_key(settings):
    settings.KBSEARCH_CREDENTIALS_KEY = Fernet.generate_key().decode()


@pytest.fixture
def hr(contoso):  # the fixture of tests.fakes.graph_testing (a plugin of tests/conftest.py)
    t = contoso
    t.carol = t.tenant.user_add(name="carol")
    t.dave = t.tenant.user_add(name="dave")
    t.payroll = t.tenant.group_add(display_name="Payroll", members=[t.carol])
    t.tenant.inheritance_break(t.private, copy=False)
    t.tenant.permission_grant(t.private, roles=["read"], user=t.bob)
    t.tenant.permission_grant(t.leave, roles=["read"], group=t.payroll)
    t.tenant.permission_grant(t.policies, roles=["sp.limited access"], user=t.dave)
    return t


def upn(user) -> str:
    return f"user:{user.user_principal_name.casefold()}"


@pytest.fixture
def sharepoint_source(db, hr, credentials_key):
    """``make(key="sp", **config)``: a source on the fake tenant with the app's secret stored."""

    def make(key: str = "sp", *, secret: str | None = None, **config):
        source = source_create(key=key, name="SharePoint", connector="sharepoint", config={
            "tenant_id": hr.tenant.tenant_id, "client_id": hr.client_id, "graph_url": hr.graph.graph_url,
            "token_url": hr.graph.token_url, "sites": [hr.site.id], "page_size": 2, **config})
        source_credentials_set(source=source, credentials={"client_secret": secret or hr.secret})
        source.refresh_from_db()
        return source

    return make
