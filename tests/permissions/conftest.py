"""The permissions pages' world: the OpenLDAP-shaped test directory (real slapd, ``tests/access``),
a small file share whose access lists name its users and nested groups, and Django accounts for
some of the directory's users (minjun has none yet), a Django-group member unknown to the
directory (zed), an inactive account (ivan), a superuser, a staff clerk without permissions and a
plain employee (eve)."""
import pytest
from django.contrib.auth.models import User
from django.test import Client

from access.resolvers import reset_principal_resolver
from tests.access.conftest import directory_password, openldap, slapd, slapd_server  # noqa: F401 (fixtures)
from tests.knowledge_base import knowledge_base_declared

FILES = {
    "welcome/_access.yaml": "principals: [public]\n",
    "welcome/welcome.md": "# Welcome\n\nThe handbook starts here.\n",
    "platform/_access.yaml": "principals: [group:platform]\n",
    "platform/runbook.md": "# Platform runbook\n\nThe handbook for the platform team.\n",
    "staff/_access.yaml": "principals: [group:staff]\n",
    "staff/benefits.md": "# Staff benefits\n\nThe handbook of staff benefits.\n",
    "alice/_access.yaml": "principals: [user:alice]\n",
    "alice/notes.md": "# Alice notes\n\nAlice's own handbook notes.\n",
    "hr/_access.yaml": "principals: [group:hr]\n",
    "hr/salaries.md": "# Salaries\n\nThe HR handbook.\n",
    "drafts/_access.yaml": "principals: []\n",
    "drafts/draft.md": "# Draft\n\nA handbook draft nobody may see.\n",
}
USERS = {
    "alice": {}, "tanaka": {}, "bob": {}, "carol": {}, "dave": {}, "frank": {}, "eve": {},
    "zed": {"groups": ["staff"]},  # a Django group the directory resolver does not read
    "ivan": {"is_active": False},
}
kb_files, kb_users = knowledge_base_declared(FILES, USERS)


@pytest.fixture
def directory_resolver(settings):
    settings.KBSEARCH_PRINCIPAL_RESOLVER = "access.resolvers.DirectoryPrincipalResolver"
    reset_principal_resolver()
    yield
    reset_principal_resolver()


@pytest.fixture
def synced(openldap, directory_resolver):  # noqa: F811 (a fixture imported above)
    from access.services import directory_sync

    directory_sync(directory=openldap, full=True)
    return openldap


@pytest.fixture
def root(db):
    return User.objects.create_superuser("root", "root@example.com", "pw-root")


@pytest.fixture
def admin_client(root):
    client = Client()
    client.force_login(root)
    return client
