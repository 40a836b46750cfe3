"""No leak on any endpoint when access comes only through nested directory groups.

A small Active-Directory-shaped tree in the real slapd, synced by the directory sync and read by
``DirectoryPrincipalResolver``:

- anna is listed by team-payroll only; team-payroll is in dept-people, dept-people is in hr. She
  reaches ``group:hr`` through that chain and no other way.
- ben is in loop-a; loop-a and loop-b list each other (a cycle).
- cora is listed by hr directly, but her account is disabled (userAccountControl 514).
- dan is in the directory and in no group.

Their Django accounts are made as sign-in makes them (``directory_account_get_or_create``), the
documents come from the file-share connector with access files naming the directory groups, and
the expected sets are written by hand. Every endpoint is checked for every user with the shared
leak checks (``tests.leak_checks``). Then the middle link of anna's chain (team-payroll in
dept-people) is removed in LDAP; after one incremental directory sync she sees exactly the public
documents everywhere, nobody else's view changes, and nothing is embedded again.
"""
import pytest

from access.models import DirectorySyncRun, DirectoryUser
from access.resolvers import principals_for, reset_principal_resolver
from access.services import directory_account_get_or_create, directory_sync
from tests.access.directory_data import AD_CONTAINERS, ad_group_dn, ad_group_entry, ad_user_dn, ad_user_entry
from tests.counting_encoder import CountingEncoder
from tests.leak_checks import Expected, api_search_check, documents_check, feedback_and_clicks_check, page_search_check

pytestmark = pytest.mark.django_db

# sAMAccountName: (cn, displayName, userAccountControl, rid, uSNChanged); 512 enabled, 514 disabled.
PEOPLE = {
    "anna": ("Anna Chain", "Anna Chain", 512, 3101, 7001),
    "ben": ("Ben Loop", "Ben Loop", 512, 3102, 7002),
    "cora": ("Cora Gone", "Cora Gone", 514, 3103, 7003),
    "dan": ("Dan None", "Dan None", 512, 3104, 7004),
}
DEPT_USN = 7102
NESTED_LDIF = "\n".join([
    *AD_CONTAINERS,
    *(ad_user_entry(sam, *details) for sam, details in PEOPLE.items()),
    ad_group_entry("team-payroll", [ad_user_dn("Anna Chain")], 3201, 7101),
    ad_group_entry("dept-people", [ad_group_dn("team-payroll")], 3202, DEPT_USN),
    ad_group_entry("hr", [ad_group_dn("dept-people"), ad_user_dn("Cora Gone")], 3203, 7103),
    ad_group_entry("loop-a", [ad_group_dn("loop-b"), ad_user_dn("Ben Loop")], 3204, 7104),
    ad_group_entry("loop-b", [ad_group_dn("loop-a")], 3205, 7105),
])
FILES = {
    "_access.yaml": "principals: [public]\n",
    "public/welcome.en.md": "# Welcome handbook\n\nRead the handbook, then connect to the VPN.\n",
    "public/kantine.ja.md": "# 社員食堂\n\n社員食堂は正午に開きます。VPN は不要。\n",
    "hr/_access.yaml": "principals: [group:hr]\n",
    "hr/pay.en.md": "# Kestrel pay scale\n\nThe kestrel pay scale and the VPN allowance.\n",
    "hr/parental.ko.md": "# 육아 kestrel\n\nkestrel 육아 규정. VPN 장비 지급.\n",
    "dept/_access.yaml": "principals: [group:dept-people]\n",
    "dept/plan.zh.md": "# Pangolin 部门计划\n\nPangolin 部门明年扩编，VPN 账号统一申请。\n",
    "loop/_access.yaml": "principals: [group:loop-b]\n",
    "loop/rota.en.md": "# Narwhal rota\n\nThe narwhal rota; on call staff keep the VPN up.\n",
    "drafts/_access.yaml": "principals: []\n",
    "drafts/idea.en.md": "# Axolotl idea\n\nAn axolotl idea nobody may read, VPN or not.\n",
}
PUBLIC = {("share", "public/welcome.en.md"), ("share", "public/kantine.ja.md")}
HR = {("share", "hr/pay.en.md"), ("share", "hr/parental.ko.md")}
DEPT = {("share", "dept/plan.zh.md")}
LOOP = {("share", "loop/rota.en.md")}
VISIBLE = {
    "anna": PUBLIC | HR | DEPT,
    "ben": PUBLIC | LOOP,
    "cora": set(),  # disabled: nothing, not even public
    "dan": PUBLIC,
}
# After team-payroll leaves dept-people: anna keeps only what everyone sees.
VISIBLE_AFTER_UNLINK = VISIBLE | {"anna": PUBLIC}
MARKERS = {
    **dict.fromkeys(HR, "kestrel"), **dict.fromkeys(DEPT, "pangolin"), **dict.fromkeys(LOOP, "narwhal"),
    ("share", "drafts/idea.en.md"): "axolotl",
}
QUERIES = {"VPN handbook": True, "kestrel pangolin narwhal axolotl pay rota": False}  # query: names no marker


@pytest.fixture
def kb_files():
    return FILES


@pytest.fixture
def kb_encoder(tiny_encoder):
    return CountingEncoder(tiny_encoder)


@pytest.fixture(autouse=True)
def _directory_resolver(settings):
    settings.KBSEARCH_PRINCIPAL_RESOLVER = "access.resolvers.DirectoryPrincipalResolver"
    reset_principal_resolver()  # (the settings change does it too; explicit, as nothing may be stale)
    yield
    reset_principal_resolver()


@pytest.fixture
def nested(ad, slapd):
    """The tree above, loaded into the test slapd (restored after the test) and fully synced."""
    slapd.reload(NESTED_LDIF)
    slapd.changed = True
    # Five memberships in all: the unlink removes two (40%); the implausible-change guard, which
    # would hold that, is tested in test_directory_sync.
    ad.max_removal_share = 0.5
    ad.save()
    run = directory_sync(directory=ad, full=True)
    assert run.status == DirectorySyncRun.Status.SUCCEEDED, run.errors
    return ad


@pytest.fixture
def users(nested):
    """Django accounts for the directory users, as signing in creates them (no password, no groups)."""
    return {
        row.username: directory_account_get_or_create(directory_user=row)
        for row in DirectoryUser.objects.filter(directory=nested)
    }


@pytest.fixture
def expected(kb) -> Expected:
    documents = {("share", external_id): document.pk for external_id, document in kb.items()}
    assert set(documents) == {("share", path) for path in FILES if not path.endswith("_access.yaml")}
    return Expected(documents=documents, visible=VISIBLE, markers=MARKERS, source_names={"share": "Shared drive"})


def every_endpoint_check(expected: Expected, users, token_client, page_client) -> None:
    for name, user in users.items():
        api, page = token_client(user), page_client(name)
        for query, names_no_marker in QUERIES.items():
            api_search_check(expected, name, api, query, names_no_marker=names_no_marker)
            page_search_check(expected, name, page, query, names_no_marker=names_no_marker)
        documents_check(expected, name, api, page)
        feedback_and_clicks_check(expected, name, user, api, page)


def test_the_directory_gives_anna_hr_only_through_the_chain(users):
    anna = DirectoryUser.objects.get(username="anna")
    assert {edge.group.name for edge in anna.group_edges.select_related("group")} == {"team-payroll"}
    assert principals_for(users["anna"]) == {"public", "user:anna", "group:team-payroll", "group:dept-people", "group:hr"}
    assert principals_for(users["ben"]) == {"public", "user:ben", "group:loop-a", "group:loop-b"}
    assert principals_for(users["cora"]) == frozenset()
    assert principals_for(users["dan"]) == {"public", "user:dan"}
    assert not any(user.has_usable_password() or user.groups.exists() for user in users.values())


def test_every_endpoint_shows_each_user_exactly_what_their_nested_groups_allow(expected, users, token_client, page_client):
    assert set(users) == set(VISIBLE)
    every_endpoint_check(expected, users, token_client, page_client)


def test_unlinking_the_middle_of_the_chain_leaves_anna_the_public_set_everywhere(
    expected, users, token_client, page_client, nested, slapd, kb_encoder
):
    embedded = kb_encoder.passages
    # team-payroll leaves dept-people; a domain controller raises uSNChanged, the test plays that part.
    slapd.ldapmodify(
        f"dn: {ad_group_dn('dept-people')}\nchangetype: modify\ndelete: member\nmember: {ad_group_dn('team-payroll')}\n-\n"
        f"replace: uSNChanged\nuSNChanged: {DEPT_USN + 100}\n"
    )
    anna = token_client(users["anna"])
    api_search_check(expected, "anna", anna, "VPN handbook", names_no_marker=True)  # not synced yet: unchanged
    run = directory_sync(directory=nested)
    assert (run.mode, run.status) == ("incremental", "succeeded")
    assert run.changes["memberships_removed"] == [["anna", "dept-people"], ["anna", "hr"]]
    assert principals_for(users["anna"]) == {"public", "user:anna", "group:team-payroll"}
    after = Expected(documents=expected.documents, visible=VISIBLE_AFTER_UNLINK, markers=MARKERS,
                     source_names=expected.source_names)
    every_endpoint_check(after, users, token_client, page_client)
    assert kb_encoder.passages == embedded  # permissions changed; nothing was embedded again
