"""The fake Graph server answers as Microsoft Graph v1.0 does: delta, permissions, content, pages.

Shapes are checked against JSON Schemas built from the official type descriptions; behaviours
(what delta returns when, which permissions an item lists) are asserted as exact sets.
Sign-in is in test_graph_fake_auth.py, faults and the request log in test_graph_fake_faults.py.
"""
from datetime import datetime, timedelta

import jsonschema
import pytest
import requests

from tests.fakes.graph.schemas import validator_for


def _validate(instance: dict, type_name: str) -> None:
    validator_for(type_name).validate(instance)


# -- delta ------------------------------------------------------------------------------------------


def test_first_delta_walks_the_whole_tree_in_pages_parents_first(contoso):
    contoso.tenant.delta_page_size = 2
    items, delta_link, pages = contoso.delta_walk(contoso.session())
    ids = [i["id"] for i in items]
    t = contoso
    assert ids[0] == t.root.id and "root" in items[0]
    assert set(ids) == {t.root.id, t.policies.id, t.leave.id, t.private.id, t.salaries.id, t.readme.id}
    assert len(ids) == len(set(ids)) and pages == 3
    for item in items[1:]:
        assert ids.index(item["parentReference"]["id"]) < ids.index(item["id"])
        _validate(item, "driveItem")
        assert "cTag" not in item and "path" not in item["parentReference"]  # as OneDrive for Business
    leave = next(i for i in items if i["id"] == t.leave.id)
    assert leave["file"] == {"mimeType": "text/plain"} and leave["size"] == len("Leave: 25 days")
    assert leave["@microsoft.graph.downloadUrl"].startswith(t.graph.base_url)
    assert delta_link.startswith(t.url(f"/drives/{t.drive.id}/root/delta?token="))


def test_delta_link_returns_only_changes_since_with_their_ancestors(contoso):
    t, session = contoso, contoso.session()
    _, delta_link, _ = t.delta_walk(session)
    nothing, unchanged_link, _ = t.delta_walk(session, delta_link)
    assert nothing == [] and unchanged_link
    t.tenant.file_edit(t.salaries, content="new numbers")
    notes = t.tenant.file_add(parent=t.root, name="notes.md", content="# Notes")
    items, next_link, _ = t.delta_walk(session, delta_link)
    assert [i["id"] for i in items] == [t.root.id, t.policies.id, t.private.id, t.salaries.id, notes.id]
    without_parents, _, _ = t.delta_walk(session, delta_link, deltaExcludeParent="true")
    assert [i["id"] for i in without_parents] == [t.salaries.id, notes.id]
    assert t.delta_walk(session, next_link)[0] == []


def test_an_item_changed_several_times_appears_once_in_its_latest_state(contoso):
    t, session = contoso, contoso.session()
    _, delta_link, _ = t.delta_walk(session)
    t.tenant.file_edit(t.readme, content="v2")
    t.tenant.item_rename(t.readme, name="README.txt")
    t.tenant.file_edit(t.readme, content="version three")
    items, _, _ = t.delta_walk(session, delta_link, deltaExcludeParent="true")
    assert len(items) == 1
    assert items[0]["name"] == "README.txt" and items[0]["size"] == len("version three")


def test_edit_changes_etag_and_ctag_rename_only_the_etag(contoso):
    t, session = contoso, contoso.session()
    url = t.url(f"/drives/{t.drive.id}/items/{t.readme.id}")
    before = session.get(url).json()
    t.tenant.item_rename(t.readme, name="renamed.txt")
    renamed = session.get(url).json()
    assert renamed["eTag"] != before["eTag"] and renamed["cTag"] == before["cTag"]
    t.tenant.clock.advance(seconds=90)
    t.tenant.file_edit(t.readme, content="changed")
    edited = session.get(url).json()
    assert edited["cTag"] != renamed["cTag"] and edited["eTag"] != renamed["eTag"]
    assert datetime.fromisoformat(edited["lastModifiedDateTime"]) - datetime.fromisoformat(
        renamed["lastModifiedDateTime"]) == timedelta(seconds=90)
    _validate(edited, "driveItem")
    assert edited["parentReference"]["path"] == f"/drives/{t.drive.id}/root:"


def test_deleting_a_folder_reports_it_and_its_descendants_deleted(contoso):
    t, session = contoso, contoso.session()
    _, delta_link, _ = t.delta_walk(session)
    t.tenant.item_delete(t.private)
    items, _, _ = t.delta_walk(session, delta_link, deltaExcludeParent="true")
    assert {i["id"] for i in items} == {t.private.id, t.salaries.id}
    for item in items:
        assert item["deleted"] == {"state": "deleted"} and "name" not in item
        _validate(item, "driveItem")
    gone = session.get(t.url(f"/drives/{t.drive.id}/items/{t.salaries.id}"))
    assert gone.status_code == 404 and gone.json()["error"]["code"] == "itemNotFound"


def test_moving_a_folder_reports_the_folder_not_its_children(contoso):
    t, session = contoso, contoso.session()
    _, delta_link, _ = t.delta_walk(session)
    t.tenant.item_move(t.private, parent=t.root)
    items, _, _ = t.delta_walk(session, delta_link, deltaExcludeParent="true")
    assert [i["id"] for i in items] == [t.private.id]
    assert items[0]["parentReference"]["id"] == t.root.id


def test_token_latest_gives_an_empty_page_and_a_link_to_later_changes(contoso):
    t, session = contoso, contoso.session()
    latest = session.get(t.url(f"/drives/{t.drive.id}/root/delta?token=latest")).json()
    assert latest["value"] == [] and "@odata.nextLink" not in latest
    t.tenant.file_add(parent=t.policies, name="travel.txt", content="Travel")
    items, _, _ = t.delta_walk(session, latest["@odata.deltaLink"], deltaExcludeParent="true")
    assert [i["name"] for i in items] == ["travel.txt"]


def test_a_timestamp_token_returns_changes_after_that_time(contoso):
    t, session = contoso, contoso.session()
    t.tenant.clock.advance(minutes=10)
    since = t.tenant.clock.now()
    t.tenant.clock.advance(minutes=1)
    t.tenant.file_edit(t.leave, content="Leave: 30 days")
    stamp = since.strftime("%Y-%m-%dT%H:%M:%SZ")
    items, _, _ = t.delta_walk(session, t.url(f"/drives/{t.drive.id}/root/delta?token={stamp}"),
                               deltaExcludeParent="true")
    assert [i["id"] for i in items] == [t.leave.id]


def test_the_odata_function_form_of_the_token_is_understood(contoso):
    t, session = contoso, contoso.session()
    _, delta_link, _ = t.delta_walk(session)
    token = delta_link.split("token=")[1]
    t.tenant.file_edit(t.readme, content="again")
    answer = session.get(t.url(f"/drives/{t.drive.id}/root/delta(token='{token}')"), headers={"deltaExcludeParent": "1"})
    assert [i["id"] for i in answer.json()["value"]] == [t.readme.id]


@pytest.mark.parametrize("how", ["expired by a test", "too old"])
def test_an_expired_token_gets_410_resync_with_a_fresh_start_in_location(contoso, how):
    t, session = contoso, contoso.session()
    _, delta_link, _ = t.delta_walk(session)
    if how == "too old":
        t.tenant.delta_tokens.max_age = timedelta(days=30)
        t.tenant.clock.advance(days=31)
        session = t.session()  # the access token has expired too
    else:
        t.tenant.delta_tokens.expire(t.drive)
    gone = session.get(delta_link)
    assert gone.status_code == 410
    error = gone.json()["error"]
    assert error["code"] == "resyncRequired" and error["innerError"]["code"] == "resyncChangesApplyDifferences"
    items, _, _ = t.delta_walk(session, gone.headers["Location"])
    assert len(items) == 6


# -- permissions ----------------------------------------------------------------------------------


def _permissions(contoso, item) -> list[dict]:
    answer = contoso.session().get(contoso.url(f"/drives/{contoso.drive.id}/items/{item.id}/permissions"))
    assert answer.status_code == 200
    for permission in answer.json()["value"]:
        _validate(permission, "permission")
    return answer.json()["value"]


def test_the_root_grants_the_site_groups(contoso):
    granted = {(p["grantedToV2"]["siteGroup"]["displayName"], tuple(p["roles"])) for p in _permissions(contoso, contoso.root)}
    assert granted == {("Human Resources Owners", ("owner",)), ("Human Resources Members", ("write",)),
                       ("Human Resources Visitors", ("read",))}


def test_inherited_permissions_name_the_item_they_come_from(contoso):
    t = contoso
    grant = t.tenant.permission_grant(t.policies, roles=["read"], user=t.alice)
    t.tenant.permission_grant(t.leave, roles=["write"], user=t.bob)
    listed = _permissions(t, t.leave)
    own = [p for p in listed if "inheritedFrom" not in p]
    assert [(p["grantedToV2"]["user"]["id"], p["roles"]) for p in own] == [(t.bob.id, ["write"])]
    from_policies = [p for p in listed if p.get("inheritedFrom", {}).get("id") == t.policies.id]
    assert [p["id"] for p in from_policies] == [grant.id]
    assert from_policies[0]["grantedToV2"]["siteUser"]["loginName"] == f"i:0#.f|membership|{t.alice.user_principal_name}"
    from_root = {p["grantedToV2"]["siteGroup"]["displayName"] for p in listed if p.get("inheritedFrom", {}).get("id") == t.root.id}
    assert len(from_root) == 3 and len(listed) == 5


def test_sharing_links_by_scope(contoso):
    t = contoso
    t.tenant.link_share(t.leave, scope="anonymous")
    t.tenant.link_share(t.leave, scope="organization", type="edit")
    t.tenant.link_share(t.leave, scope="users", recipients=[t.alice, t.bob])
    links = {p["link"]["scope"]: p for p in _permissions(t, t.leave) if "link" in p}
    assert set(links) == {"anonymous", "organization", "users"}
    assert links["organization"]["roles"] == ["write"] and links["organization"]["link"]["type"] == "edit"
    people = links["users"]["grantedToIdentitiesV2"]
    assert [p["user"]["id"] for p in people] == [t.alice.id, t.bob.id]
    assert "grantedToIdentitiesV2" not in links["anonymous"]
    item = t.session().get(t.url(f"/drives/{t.drive.id}/items/{t.leave.id}")).json()
    assert item["shared"] == {"scope": "anonymous"}


def test_group_grants_and_limited_access(contoso):
    t = contoso
    hr = t.tenant.group_add(display_name="HR staff", members=[t.alice], mail="hr@contoso.com")
    t.tenant.permission_grant(t.private, roles=["write"], group=hr)
    t.tenant.permission_grant(t.policies, roles=["sp.limited access"], user=t.bob)
    own = [p for p in _permissions(t, t.private) if "inheritedFrom" not in p]
    assert own[0]["grantedToV2"]["group"] == {"id": hr.id, "displayName": "HR staff", "email": "hr@contoso.com"}
    limited = [p for p in _permissions(t, t.salaries) if p["roles"] == ["sp.limited access"]]
    assert [p["inheritedFrom"]["id"] for p in limited] == [t.policies.id]


def test_breaking_inheritance_copies_then_unsharing_removes_only_there(contoso):
    t = contoso
    t.tenant.permission_grant(t.policies, roles=["read"], user=t.alice)
    t.tenant.inheritance_break(t.private)
    members = next(p for p, _ in t.tenant.effective_permissions(t.private) if p.site_group
                   and p.site_group.display_name.endswith("Members"))
    t.tenant.permission_remove(t.private, members)
    names = {_who(p) for p in _permissions(t, t.salaries)}
    assert names == {"Human Resources Owners", "Human Resources Visitors", t.alice.id}
    assert all(p["inheritedFrom"]["id"] == t.private.id for p in _permissions(t, t.salaries))
    assert "Human Resources Members" in {_who(p) for p in _permissions(t, t.leave)}
    t.tenant.inheritance_restore(t.private)
    assert {_who(p) for p in _permissions(t, t.salaries)} == {_who(p) for p in _permissions(t, t.leave)}


def _who(permission: dict) -> str:
    granted = permission["grantedToV2"]
    return granted["siteGroup"]["displayName"] if "siteGroup" in granted else granted["user"]["id"]


def test_permission_changes_in_delta_follow_the_prefer_header(contoso):
    t, session = contoso, contoso.session()
    t.tenant.inheritance_break(t.private)
    _, delta_link, _ = t.delta_walk(session)
    t.tenant.link_share(t.policies, scope="organization")
    plain, _, _ = t.delta_walk(session, delta_link, deltaExcludeParent="1")
    assert plain == []  # permission changes are scoped to the caller: an app's own access never changes
    prefer = "deltashowremovedasdeleted, deltatraversepermissiongaps, deltashowsharingchanges"
    shown, _, _ = t.delta_walk(session, delta_link, deltaExcludeParent="1", Prefer=prefer)
    assert {i["id"] for i in shown} == {t.policies.id, t.leave.id}  # Private has its own permissions
    assert all(i["@microsoft.graph.sharedChanged"] == "True" for i in shown)
    hierarchical, _, _ = t.delta_walk(session, delta_link, deltaExcludeParent="1", Prefer=prefer + ", hierarchicalsharing")
    assert [i["id"] for i in hierarchical] == [t.policies.id]
    assert hierarchical[0]["shared"] == {"scope": "organization"}


# -- content, items, pages, sites --------------------------------------------------------------------


def test_content_redirects_to_a_preauthenticated_download_url_that_expires(contoso):
    t, session = contoso, contoso.session()
    answer = session.get(t.url(f"/drives/{t.drive.id}/items/{t.leave.id}/content"), allow_redirects=False)
    assert answer.status_code == 302
    download = answer.headers["Location"]
    fetched = requests.get(download)  # no bearer: the URL carries its own authorisation
    assert fetched.status_code == 200 and fetched.content == b"Leave: 25 days"
    t.tenant.clock.advance(hours=1)
    assert requests.get(download).status_code == 401


def test_an_item_deleted_after_delta_is_404_on_content_and_download(contoso):
    t, session = contoso, contoso.session()
    items, _, _ = t.delta_walk(session)
    download = next(i for i in items if i["id"] == t.leave.id)["@microsoft.graph.downloadUrl"]
    t.tenant.item_delete(t.leave)
    content = session.get(t.url(f"/drives/{t.drive.id}/items/{t.leave.id}/content"))
    assert content.status_code == 404 and content.json()["error"]["code"] == "itemNotFound"
    assert requests.get(download).status_code == 404


def test_select_and_expand_permissions_on_one_item(contoso):
    t, session = contoso, contoso.session()
    body = session.get(t.url(f"/drives/{t.drive.id}/items/{t.leave.id}?$select=name,size&$expand=permissions")).json()
    assert {k for k in body if not k.startswith("@")} == {"id", "name", "size", "permissions"}
    assert len(body["permissions"]) == 3
    refused = session.get(t.url(f"/drives/{t.drive.id}/root/delta?$expand=permissions"))
    assert refused.status_code == 400


def test_site_pages_with_their_canvas(contoso):
    t, session = contoso, contoso.session()
    page = t.tenant.page_add(site=t.site, name="Welcome.aspx", title="Welcome", author=t.alice,
                             web_parts=["<p>Hello <b>HR</b></p>", "<p>Second part</p>"])
    listed = session.get(t.url(f"/sites/{t.site.id}/pages")).json()["value"]
    assert [(p["@odata.type"], p["title"]) for p in listed] == [("#microsoft.graph.sitePage", "Welcome")]
    one = session.get(t.url(f"/sites/{t.site.id}/pages/{page.id}/microsoft.graph.sitePage?$expand=canvasLayout")).json()
    parts = [w["innerHtml"] for s in one["canvasLayout"]["horizontalSections"] for c in s["columns"] for w in c["webparts"]]
    assert parts == ["<p>Hello <b>HR</b></p>", "<p>Second part</p>"]
    assert session.get(t.url(f"/sites/{t.site.id}/pages?$expand=canvasLayout")).status_code == 400
    t.tenant.page_edit(page, title="Welcome!")
    again = session.get(t.url(f"/sites/{t.site.id}/pages/{page.id}")).json()
    assert again["title"] == "Welcome!" and again["eTag"] != one["eTag"]


def test_sites_search_by_path_drives_and_paging(contoso):
    t, session = contoso, contoso.session()
    t.tenant.site_add(name="finance", display_name="Finance")
    t.tenant.site_add(name="it", display_name="IT")
    first = session.get(t.url("/sites?search=*&$top=2")).json()
    rest = session.get(first["@odata.nextLink"]).json()
    sites = first["value"] + rest["value"]
    assert sorted(s["name"] for s in sites) == ["finance", "hr", "it"] and "@odata.nextLink" not in rest
    for site in sites:
        _validate(site, "site")
    assert [s["name"] for s in session.get(t.url("/sites?search=finance")).json()["value"]] == ["finance"]
    by_path = session.get(t.url("/sites/contoso.sharepoint.com:/sites/hr")).json()
    assert by_path["id"] == t.site.id and by_path["id"].count(",") == 2
    drives = session.get(t.url(f"/sites/{t.site.id}/drives")).json()["value"]
    assert [d["id"] for d in drives] == [t.drive.id] and drives[0]["driveType"] == "documentLibrary"
    _validate(drives[0], "drive")


def test_the_schemas_catch_a_misspelt_property():
    with pytest.raises(jsonschema.ValidationError):
        _validate({"id": "1", "roles": ["read"], "grantedToV3": {}}, "permission")
    with pytest.raises(jsonschema.ValidationError):
        _validate({"id": "1", "size": "12"}, "driveItem")


def test_a_user_may_have_the_upn_of_a_hybrid_tenant_and_grants_carry_it(contoso):
    t = contoso
    jsmith = t.tenant.user_add(name="jsmith", upn="jsmith@corp.example.com")
    t.tenant.permission_grant(t.readme, roles=["read"], user=jsmith)
    session = t.session()
    assert session.get(t.url(f"/users/{jsmith.id}")).json()["userPrincipalName"] == "jsmith@corp.example.com"
    permissions = session.get(t.url(f"/drives/{t.drive.id}/items/{t.readme.id}/permissions")).json()["value"]
    granted = [p["grantedToV2"] for p in permissions if "user" in p.get("grantedToV2", {})]
    assert granted == [{"user": {"email": "jsmith@contoso.com", "id": jsmith.id, "displayName": "Jsmith"},
                        "siteUser": {"email": "jsmith@contoso.com", "id": granted[0]["siteUser"]["id"],
                                     "displayName": "Jsmith", "loginName": "i:0#.f|membership|jsmith@corp.example.com"}}]
