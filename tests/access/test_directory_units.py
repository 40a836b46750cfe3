"""Directory code without a server: AD range retrieval over a fake connection, binary ids, DN
comparison, the membership closure with cycles, connection settings from the environment."""
import ldap
import pytest
from ldap.controls import SimplePagedResultsControl

from access.directory.client import ConnectionSettings, DirectoryClient, DirectoryConfigError, DirectoryUnavailable
from access.directory.closure import membership_closure
from access.directory.schema import AD, InvalidEntry, dn_key, group_from_entry, guid_text, sid_text, user_from_entry
from access.models import Directory
from tests.access.directory_data import ad_guid, ad_sid_bytes, ad_sid_text

SETTINGS = ConnectionSettings(
    urls=("ldap://dc.example",), bind_dn="", password="", start_tls=False, ca_file="", timeout=5, page_size=2
)


class RangedServer:
    """Answers like AD: ``member`` of a group in ranges of ``step`` values, and paged listings."""

    def __init__(self, members: list[bytes], step: int) -> None:
        self.members = members
        self.step = step
        self.requests: list[list[str]] = []
        self._pending: dict[int, tuple] = {}

    def _range(self, start: int) -> tuple[str, list[bytes]]:
        chunk = self.members[start : start + self.step]
        last = start + self.step >= len(self.members)
        end = "*" if last else str(start + len(chunk) - 1)
        return f"member;range={start}-{end}", chunk

    def search_ext(self, base, scope, filterstr, attrlist, serverctrls=(), timeout=-1):
        self.requests.append(list(attrlist))
        msgid = len(self.requests)
        wanted = attrlist[0]
        if wanted.lower().startswith("member;range="):
            start = int(wanted.split("=")[1].split("-")[0])
            key, values = self._range(start)
            self._pending[msgid] = ([(base, {key: values})], [])
        else:
            key, values = self._range(0)
            entry = {"cn": [b"Big"], "objectGUID": [ad_guid("Big").bytes_le], key: values}
            self._pending[msgid] = ([(base, entry), (None, ["ldap://other.example/DC=other"])], [])
        return msgid

    def result3(self, msgid, timeout=-1):
        data, controls = self._pending.pop(msgid)
        return ldap.RES_SEARCH_RESULT, data, msgid, controls


def test_ranged_member_attribute_is_read_range_by_range_until_the_star():
    members = [f"CN=User {n},OU=Users,DC=corp".encode() for n in range(3500)]
    server = RangedServer(members, step=1500)
    with DirectoryClient(SETTINGS, connection=server) as client:
        entries = list(client.search("CN=Big,OU=Groups,DC=corp", "(objectClass=group)", ["cn", "member"]))
    assert len(entries) == 1  # the search reference is skipped
    dn, attrs = entries[0]
    assert attrs["member"] == members
    assert not any(";range=" in key for key in attrs)
    assert server.requests[1:] == [["member;range=1500-*"], ["member;range=3000-*"]]
    group = group_from_entry(AD, dn, attrs)
    assert len(group.member_dns) == 3500


def test_a_range_the_server_does_not_continue_is_an_error_not_a_truncated_group():
    server = RangedServer([b"CN=a", b"CN=b", b"CN=c"], step=2)

    def broken_result3(msgid, timeout=-1):
        data, controls = server._pending.pop(msgid)
        if msgid > 1:
            data = [(data[0][0], {"member;range=9-*": [b"CN=z"]})]
        return ldap.RES_SEARCH_RESULT, data, msgid, controls

    server.result3 = broken_result3
    with DirectoryClient(SETTINGS, connection=server) as client, pytest.raises(DirectoryUnavailable, match="range=2-"):
        list(client.search("CN=Big", "(objectClass=group)", ["member"]))


class PagingServer:
    def __init__(self, pages: list[list[str]]) -> None:
        self.pages = pages
        self.cookies: list[bytes] = []

    def search_ext(self, base, scope, filterstr, attrlist, serverctrls=(), timeout=-1):
        (control,) = serverctrls
        assert control.size == 2 and control.criticality
        self.cookies.append(control.cookie)
        return len(self.cookies)

    def result3(self, msgid, timeout=-1):
        page = self.pages[msgid - 1]
        response = SimplePagedResultsControl(True, size=0, cookie=str(msgid).encode() if msgid < len(self.pages) else b"")
        return ldap.RES_SEARCH_RESULT, [(dn, {"cn": [dn.encode()]}) for dn in page], msgid, [response]


def test_paging_follows_the_servers_cookie_until_it_is_empty():
    server = PagingServer([["a", "b"], ["c", "d"], ["e"]])
    with DirectoryClient(SETTINGS, connection=server) as client:
        assert [dn for dn, _ in client.search("o=x", "(cn=*)", ["cn"])] == ["a", "b", "c", "d", "e"]
        assert client.pages == 3
    assert server.cookies == [b"", b"1", b"2"]


def test_binary_ids_decode_to_the_forms_ad_shows():
    guid = ad_guid("jsmith")
    assert guid_text(guid.bytes_le) == str(guid)
    assert guid_text(bytes(range(16))) == "03020100-0504-0706-0809-0a0b0c0d0e0f"
    assert sid_text(ad_sid_bytes(500)) == ad_sid_text(500) == "S-1-5-21-1004336348-1177238915-682003330-500"
    with pytest.raises(InvalidEntry):
        guid_text(b"short")
    with pytest.raises(InvalidEntry):
        sid_text(ad_sid_bytes(500)[:-1])


def test_user_account_control_bit_two_means_disabled():
    def user(control: bytes):
        attrs = {"samaccountname": [b"x"], "objectguid": [ad_guid("x").bytes_le], "useraccountcontrol": [control]}
        return user_from_entry(AD, "CN=x", attrs)

    assert user(b"512").enabled and user(b"66048").enabled
    assert not user(b"514").enabled and not user(b"66050").enabled
    with pytest.raises(InvalidEntry):
        user(b"lots")


def test_dns_compare_regardless_of_case_and_spacing():
    assert dn_key("CN=Bob Baker, OU=People,DC=Example,DC=com") == dn_key("cn=bob baker,ou=people,dc=example,dc=com")
    assert dn_key("cn=田中 太郎,ou=people") == dn_key("CN=田中 太郎, OU=People")
    assert dn_key("cn=a\\,b,ou=x") != dn_key("cn=a,ou=b,ou=x")


def test_closure_handles_cycles_nesting_and_disabled_users():
    found = membership_closure(
        user_members={"a": {"u1"}, "b": {"u2", "off"}, "leaf": {"u3"}},
        group_members={"a": {"b"}, "b": {"a"}, "mid": {"leaf"}, "top": {"mid"}},
        enabled_users={"u1", "u2", "u3"},
    )
    assert found == {
        ("u1", "a"), ("u1", "b"), ("u2", "a"), ("u2", "b"),
        ("u3", "leaf"), ("u3", "mid"), ("u3", "top"),
    }


def test_connection_settings_come_from_the_named_variable_and_are_checked(monkeypatch):
    directory = Directory(key="d", server_urls="ldaps://a ldaps://b", bind_dn="cn=svc", bind_password_env="D_PW")
    monkeypatch.delenv("D_PW", raising=False)
    with pytest.raises(DirectoryConfigError, match="D_PW is not set"):
        ConnectionSettings.for_directory(directory)
    monkeypatch.setenv("D_PW", "s3cret")
    settings = ConnectionSettings.for_directory(directory)
    assert settings.urls == ("ldaps://a", "ldaps://b") and settings.password == "s3cret"
    assert "s3cret" not in repr(settings)
    directory.start_tls = True
    with pytest.raises(DirectoryConfigError, match="StartTLS"):
        ConnectionSettings.for_directory(directory)
    directory.start_tls, directory.server_urls = False, "http://a"
    with pytest.raises(DirectoryConfigError, match="ldap://"):
        ConnectionSettings.for_directory(directory)
