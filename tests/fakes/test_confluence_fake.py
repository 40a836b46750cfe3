"""The fake Confluence answers as the official API descriptions say: shapes, paging, CQL, permissions.

Response bodies are validated against the schemas of ../shared/apis/confluence_v*_subset.openapi.json
(``$ref`` resolved inside each file). Plain HTTP with requests, no database. The ``site`` fixture
(tests/fakes/conftest.py) is a small Cloud site; faults, auth, Data Center and scale are in
test_confluence_fake_faults.py.
"""
import pytest
import requests

from tests.fakes.spec_check import assert_valid, cql_ids, response_schema, walk

# -- shapes -------------------------------------------------------------------------------------
V1_CASES = [
    ("/space", {"expand": "permissions,homepage,history"}, "SpaceArray"),
    ("/content", {"spaceKey": "ENG", "expand": "body.storage,version,ancestors,space,history.lastUpdated,"
                  "restrictions.read.restrictions.user,restrictions.read.restrictions.group,children.attachment,container"},
     "ContentArray"),
    ("/content", {"type": "blogpost"}, "ContentArray"),
    ("/content/search", {"cql": 'space = "ENG" and type = page', "expand": "body.storage,version"}, "ContentArray"),
    ("/content/{secret}", {"expand": "ancestors.restrictions.read.restrictions.group,body.storage"}, "Content"),
    ("/content/{open}/child/attachment", {"expand": "version,container"}, "ContentArray"),
    ("/content/{home}/child", {"expand": "page,attachment,comment"}, "ContentChildren"),
    ("/content/{secret}/restriction", {}, "ContentRestrictionArray"),
    ("/content/{secret}/restriction/byOperation/read", {}, "ContentRestriction"),
    ("/search", {"cql": "type = page"}, "SearchPageResponseSearchResult"),
]


@pytest.mark.parametrize("path, params, schema", V1_CASES)
def test_v1_bodies_match_the_spec(site, path, params, schema):
    ids = {"secret": site.secret.id, "open": site.open.id, "home": site.home.id}
    response = site.session().get(site.api_url + path.format(**ids), params=params)
    assert response.status_code == 200, response.text
    assert_valid(response.json(), "v1", schema)
    assert response.json()  # not an empty object that would pass any schema


def test_by_operation_matches_the_spec_map(site):
    body = site.session().get(f"{site.api_url}/content/{site.secret.id}/restriction/byOperation").json()
    assert_valid(body, "v1", response_schema("v1", "/wiki/rest/api/content/{id}/restriction/byOperation"))
    assert body["read"]["restrictions"]["group"]["results"][0]["name"] == "eng"
    assert body["update"]["restrictions"]["user"]["results"] == []


@pytest.mark.parametrize("path, params, spec_path", [
    ("/spaces", {"keys": "ENG,OPS"}, "/spaces"),
    ("/spaces/{eng}/permissions", {}, "/spaces/{id}/permissions"),
    ("/pages", {"space-id": "{eng}", "body-format": "storage"}, "/pages"),
    ("/spaces/{eng}/pages", {"depth": "root"}, "/spaces/{id}/pages"),
])
def test_v2_bodies_match_the_spec(site, path, params, spec_path):
    ids = {"eng": site.eng.id}
    params = {k: v.format(**ids) for k, v in params.items()}
    response = site.session().get(site.v2_url + path.format(**ids), params=params)
    assert response.status_code == 200, response.text
    assert response.json()["results"]
    assert_valid(response.json(), "v2", response_schema("v2", spec_path))


def test_v2_single_page_and_permissions_content(site):
    session = site.session()
    page = session.get(f"{site.v2_url}/pages/{site.inner.id}", params={"body-format": "storage"}).json()
    assert_valid(page, "v2", "PageSingle")
    assert (page["parentId"], page["spaceId"], page["body"]["storage"]["value"]) == (
        site.secret.id, str(site.eng.id), site.inner.body)
    permissions = session.get(f"{site.v2_url}/spaces/{site.eng.id}/permissions").json()["results"]
    assert {(p["principal"]["type"], p["principal"]["id"], p["operation"]["key"], p["operation"]["targetType"])
            for p in permissions} == {
        ("group", site.site.groups["eng"].id, "read", "space"), ("group", site.site.groups["staff"].id, "read", "space"),
        ("user", site.alice.account_id, "administer", "space")}


def test_content_fields_carry_version_history_ancestors_and_body(site):
    site.site.clock.advance(hours=2)
    site.site.edit(site.inner, body="<p>v2</p>")
    body = site.session().get(f"{site.api_url}/content/{site.inner.id}",
                              params={"expand": "body.storage,version,history.lastUpdated,ancestors,space"}).json()
    assert body["version"]["number"] == 2
    assert body["version"]["when"] == body["history"]["lastUpdated"]["when"] == "2024-03-01T11:00:00.000Z"
    assert body["history"]["createdDate"] == "2024-03-01T09:00:00.000Z"
    assert [a["id"] for a in body["ancestors"]] == [site.home.id, site.secret.id]
    assert body["body"]["storage"] == {**body["body"]["storage"], "value": "<p>v2</p>", "representation": "storage"}
    assert body["space"]["key"] == "ENG"
    assert "body" not in site.session().get(f"{site.api_url}/content/{site.inner.id}").json()


def test_attachment_listing_and_download(site):
    session = site.session()
    listing = session.get(f"{site.api_url}/content/{site.open.id}/child/attachment").json()
    [attachment] = listing["results"]
    assert (attachment["id"], attachment["title"], attachment["extensions"]["mediaType"],
            attachment["extensions"]["fileSize"]) == (site.pdf.id, "plan v2.pdf", "application/pdf", 13)
    download = session.get(listing["_links"]["base"] + attachment["_links"]["download"])
    assert (download.status_code, download.content, download.headers["Content-Type"]) == (
        200, b"%PDF-1.4 fake", "application/pdf")
    assert requests.get(listing["_links"]["base"] + attachment["_links"]["download"]).status_code == 401


def test_missing_content_is_a_json_404(site):
    response = site.session().get(f"{site.api_url}/content/424242")
    assert response.status_code == 404
    assert response.json()["statusCode"] == 404
    assert response.json()["message"] == "No content found with id: ContentId{id=424242}"


# -- pagination ---------------------------------------------------------------------------------
def test_v1_pagination_walks_every_page_once(confluence_server):
    fake = confluence_server
    space = fake.site.add_space("BIG")
    pages = [fake.site.add_page(space, f"P{i}") for i in range(53)]
    items, calls = walk(fake.session(), f"{fake.api_url}/content", {"spaceKey": "BIG", "limit": 7})
    assert [i["id"] for i in items] == [p.id for p in pages]
    assert calls == 8


def test_limit_is_capped_like_the_real_server(confluence_server):
    fake = confluence_server
    space = fake.site.add_space("BIG")
    for i in range(150):
        fake.site.add_page(space, f"P{i}")
    body = fake.session().get(f"{fake.api_url}/content", params={"spaceKey": "BIG", "limit": 1000}).json()
    assert (body["limit"], body["size"], body["start"]) == (100, 100, 0)
    assert "start=100" in body["_links"]["next"]


@pytest.mark.parametrize("confluence_server", ["cloud", "dc"], indirect=True)
def test_search_pages_with_cursor_on_cloud_and_start_on_dc(confluence_server):
    fake = confluence_server
    space = fake.site.add_space("BIG")
    pages = [fake.site.add_page(space, f"P{i}") for i in range(30)]
    first = fake.session().get(f"{fake.api_url}/content/search", params={"cql": "space = BIG", "limit": 10}).json()
    assert ("cursor=" in first["_links"]["next"]) is fake.cloud
    assert ("start=10" in first["_links"]["next"]) is not fake.cloud
    items, calls = walk(fake.session(), f"{fake.api_url}/content/search", {"cql": "space = BIG", "limit": 10})
    assert [i["id"] for i in items] == [p.id for p in pages] and calls == 3


def test_v2_cursor_pagination_with_link_header(confluence_server):
    fake = confluence_server
    space = fake.site.add_space("BIG")
    pages = [fake.site.add_page(space, f"P{i}") for i in range(12)]
    session = fake.session()
    first = session.get(f"{fake.v2_url}/pages", params={"space-id": space.id, "limit": 5})
    assert first.json()["_links"]["next"].startswith("/wiki/api/v2/pages?")
    assert first.headers["Link"].startswith(f'<{first.json()["_links"]["next"]}>; rel="next"')
    items, calls = walk(session, f"{fake.v2_url}/pages", {"space-id": space.id, "limit": 5})
    assert [i["id"] for i in items] == [p.id for p in pages] and calls == 3


def test_space_listing_filters_and_pages(site):
    session = site.session()
    body = session.get(f"{site.api_url}/space", params={"spaceKey": "OPS"}).json()
    assert [s["key"] for s in body["results"]] == ["OPS"]
    items, _ = walk(session, f"{site.api_url}/space", {"limit": 1})
    assert [s["key"] for s in items] == ["ENG", "OPS"]


# -- CQL ----------------------------------------------------------------------------------------
def test_cql_lastmodified_window(site):
    s = site.site
    s.clock.advance(hours=1, seconds=30)  # 10:00:30
    s.edit(site.open)
    s.clock.advance(minutes=10)  # 10:10:30
    s.edit(site.news)
    assert set(cql_ids(site, 'lastmodified >= "2024-03-01 10:00"')) == {site.open.id, site.news.id}
    assert set(cql_ids(site, 'lastmodified > "2024-03-01 10:10"')) == {site.news.id}  # minute start, ms compare
    assert cql_ids(site, 'lastmodified >= "2024-03-01 10:11"') == []
    assert set(cql_ids(site, 'lastmodified < "2024-03-01 10:00"')) == {
        site.home.id, site.secret.id, site.inner.id, site.pdf.id}
    assert cql_ids(site, 'type in (page, blogpost) and lastmodified >= "2024/03/01 10:00" order by lastmodified desc') == [
        site.news.id, site.open.id]


def test_cql_space_type_ancestor_and_id(site):
    assert set(cql_ids(site, 'space = "ENG" and type = page')) == {site.home.id, site.secret.id, site.inner.id, site.open.id}
    assert set(cql_ids(site, "space in ('ENG', 'OPS') and type = blogpost")) == {site.news.id}
    assert set(cql_ids(site, f"ancestor = {site.secret.id}")) == {site.inner.id}
    assert set(cql_ids(site, f'ancestor = "{site.home.id}" and type = attachment')) == {site.pdf.id}
    assert set(cql_ids(site, f"parent = {site.home.id}")) == {site.secret.id, site.open.id}
    assert cql_ids(site, f'id in ({site.open.id}, {site.news.id}) ORDER BY id DESC') == [site.news.id, site.open.id]
    assert set(cql_ids(site, 'space != ENG')) == {site.news.id}
    assert set(cql_ids(site, 'title ~ "ECR"')) == {site.secret.id}


def test_cql_forgets_deleted_content_and_move_is_invisible_to_lastmodified(site):
    s = site.site
    s.clock.advance(hours=5)
    s.delete(site.secret)
    assert site.secret.id not in cql_ids(site, "type = page")
    assert cql_ids(site, f"ancestor = {site.secret.id}") == []
    # The deleted page's child moved up to Home, without a new version.
    assert set(cql_ids(site, f"parent = {site.home.id}")) == {site.open.id, site.inner.id}
    assert cql_ids(site, 'lastmodified >= "2024-03-01 14:00"') == []
    s.move(site.open, site.inner, bump_version=True)
    assert cql_ids(site, 'lastmodified >= "2024-03-01 14:00"') == [site.open.id]


@pytest.mark.parametrize("cql", [
    "type = page or space = ENG", "(type = page)", "lastmodified >= now('-1d')", "label = x", "type = ",
    'lastmodified >= "yesterday"', "type = page order by relevance", "space ~ ENG",
])
def test_unsupported_cql_is_a_400(site, cql):
    response = site.session().get(f"{site.api_url}/content/search", params={"cql": cql})
    assert response.status_code == 400
    assert response.json()["message"] == f"Could not parse cql : {cql}"


def test_cql_is_required(site):
    assert site.session().get(f"{site.api_url}/content/search").status_code == 400


# -- permissions --------------------------------------------------------------------------------
def test_inherited_restriction_is_visible_through_ancestors(site):
    body = site.session().get(f"{site.api_url}/content/{site.inner.id}", params={
        "expand": "restrictions.read.restrictions.group,ancestors.restrictions.read.restrictions.user,"
                  "ancestors.restrictions.read.restrictions.group"}).json()
    assert body["restrictions"]["read"]["restrictions"]["group"]["results"] == []  # none set on the page itself
    inherited = {a["id"]: ([u["accountId"] for u in a["restrictions"]["read"]["restrictions"]["user"]["results"]],
                           [g["name"] for g in a["restrictions"]["read"]["restrictions"]["group"]["results"]])
                 for a in body["ancestors"]}
    assert inherited == {site.home.id: ([], []), site.secret.id: ([site.alice.account_id], ["eng"])}


def test_users_see_exactly_what_space_permissions_and_restrictions_allow(site):
    everyone_eng = {site.home.id, site.secret.id, site.inner.id, site.open.id}
    for user, expected in ((site.alice, everyone_eng), (site.bob, {site.home.id, site.open.id})):
        items, _ = walk(site.session(user), f"{site.api_url}/content", {"spaceKey": "ENG"})
        assert {i["id"] for i in items} == expected
        assert set(cql_ids(site, "type = page", site.session(user))) == expected
    assert site.session(site.bob).get(f"{site.api_url}/content/{site.inner.id}").status_code == 404
    assert [s["key"] for s in site.session(site.alice).get(f"{site.api_url}/space").json()["results"]] == ["ENG"]


def test_space_permissions_through_v1_expand(site):
    body = site.session().get(f"{site.api_url}/space", params={"spaceKey": "ENG", "expand": "permissions"}).json()
    grants = {(p["operation"]["operation"], p["operation"]["targetType"],
               tuple(u["accountId"] for u in p["subjects"]["user"]["results"]),
               tuple(g["name"] for g in p["subjects"]["group"]["results"])) for p in body["results"][0]["permissions"]}
    assert grants == {("read", "space", (), ("eng",)), ("read", "space", (), ("staff",)),
                      ("administer", "space", (site.alice.account_id,), ())}


def test_restriction_changes_are_seen_on_the_next_call(site):
    session = site.session(site.bob)
    assert session.get(f"{site.api_url}/content/{site.open.id}").status_code == 200
    site.site.restrict_read(site.open, groups=("eng",))
    assert session.get(f"{site.api_url}/content/{site.open.id}").status_code == 404
    site.site.clear_restrictions(site.open)
    assert session.get(f"{site.api_url}/content/{site.open.id}").status_code == 200


def test_bad_parameters_are_400_in_each_api_shape(site):
    session = site.session()
    v1 = session.get(f"{site.api_url}/content", params={"start": "x"})
    assert (v1.status_code, v1.json()["statusCode"]) == (400, 400)
    v2 = session.get(f"{site.v2_url}/pages", params={"space-id": "ENG"})
    assert (v2.status_code, v2.json()["errors"][0]["status"]) == (400, 400)
    assert session.get(f"{site.v2_url}/pages", params={"body-format": "wiki"}).status_code == 400


@pytest.mark.parametrize("confluence_server", ["cloud", "dc"], indirect=True)
def test_group_members_and_memberships(site):
    session, api = site.session(), site.api_url
    members = session.get(f"{api}/group/eng/member").json()["results"]
    assert [m.get("email") or m.get("username") for m in members] in (["alice@example.com"], ["alice"])
    mine = session.get(f"{api}/user/memberof", params=(
        {"accountId": site.alice.account_id} if site.cloud else {"username": "alice"})).json()["results"]
    assert [g["name"] for g in mine] == ["eng"]
    assert session.get(f"{api}/group/nobody/member").status_code == 404
    by_id = session.get(f"{api}/group/{site.site.groups['eng'].id}/membersByGroupId")
    assert by_id.status_code == (200 if site.cloud else 404)
