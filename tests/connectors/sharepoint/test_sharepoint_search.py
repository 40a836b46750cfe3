"""End to end: SharePoint files synced with their permissions, the source's identities mapped onto
an AD-shaped directory (users by UPN, Entra groups by cn), and what each directory user then finds
through search: exactly the files granted to them or to a group they are in."""
import pytest
from django.contrib.auth.models import User

from access.mapping import identity_mapping_set
from access.services import directory_sync
from connectors.services import source_sync
from kbsearch.search.services import search_run
from tests.access.conftest import ad, directory_password, slapd, slapd_server  # noqa: F401 - fixtures

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _directory_resolver(settings):
    settings.KBSEARCH_PRINCIPAL_RESOLVER = "access.resolvers.DirectoryPrincipalResolver"


def titles(user) -> set[str]:
    return {r.document.title for r in search_run(user=user, query="handbook", mode="bm25", limit=50).results}


def test_directory_users_find_exactly_the_files_shared_with_them(
    hr, sharepoint_source, ad, tiny_encoder, index_backend  # noqa: F811 - the imported fixture
):
    directory_sync(directory=ad, full=True)
    t = hr.tenant
    jsmith = t.user_add(name="jsmith", upn="JSmith@corp.example.com")
    hanako = t.user_add(name="hanako", upn="hanako@corp.example.com")
    mlee = t.user_add(name="mlee", upn="mlee@corp.example.com")
    readers = t.group_add(display_name="Readers", members=[jsmith, mlee])
    team = t.folder_add(parent=hr.root, name="Team")
    t.inheritance_break(team, copy=False)
    files = {
        "john.txt": [("user", jsmith)], "readers.txt": [("group", readers)], "hanako.txt": [("user", hanako)],
        "mlee.txt": [("user", mlee)], "nobody.txt": [], "org.txt": [("org", None)],
    }
    for name, grants in files.items():
        item = t.file_add(parent=team, name=name, content=f"The {name} handbook page.")
        t.inheritance_break(item, copy=False)
        for kind, who in grants:
            if kind == "org":
                t.link_share(item, scope="organization")
            else:
                t.permission_grant(item, roles=["read"], **{kind: who})
    identity_mapping_set(source_key="sp", user_key="upn", group_key="cn", directory_key="corp-ad")
    source = sharepoint_source(organization_group="All Staff")
    run = source_sync(source=source, encoder=tiny_encoder, index=index_backend)
    assert run.status == "succeeded", run.errors

    people = {name: User.objects.create_user(name) for name in ("jsmith", "hanako", "mlee", "bulk00")}
    place = "Human Resources > Documents > Team > "
    assert titles(people["jsmith"]) == {place + "john.txt", place + "readers.txt", place + "org.txt"}
    assert titles(people["hanako"]) == {place + "hanako.txt", place + "org.txt"}  # All Staff holds hanako
    assert titles(people["mlee"]) == set()  # disabled in the directory: nothing, whatever is granted
    assert titles(people["bulk00"]) == set()  # in the directory, granted nothing
