"""Reading Confluence read restrictions: a restriction that cannot be read whole never opens a page."""
import pytest

from connectors.confluence.permissions import AccessResolver, Level, MalformedAccess


class _Client:
    """Answers the restriction listing endpoint with a fixed body."""

    def __init__(self, body: dict) -> None:
        self.body, self.paths = body, []

    def request(self, path, params=None):
        self.paths.append(path)
        return self.body


def _long_restriction() -> dict:
    # The expanded restriction shows one user of more (totalSize > size): it is fetched whole.
    return {"id": "42", "restrictions": {"read": {"restrictions": {
        "user": {"results": [{"accountId": "a-1", "email": "ann@example.com"}], "size": 1, "totalSize": 150},
        "group": {"results": [], "size": 0},
    }}}}


def test_a_long_restriction_is_read_whole():
    client = _Client({"restrictions": {
        "user": {"results": [{"accountId": "a-1", "email": "ann@example.com"}]},
        "group": {"results": [{"name": "hr"}]},
    }})
    level = AccessResolver(client, cloud=True).restriction_level(_long_restriction())
    assert client.paths == ["/rest/api/content/42/restriction/byOperation/read"]
    assert level is not None and level.groups == {"hr"} and {p.principal for p in level.users} == {"user:ann@example.com"}


@pytest.mark.parametrize("body", [{}, {"restrictions": {}}, {"restrictions": {"user": {"results": []}}}])
def test_a_long_restriction_whose_whole_listing_names_nobody_is_unknown_access_not_no_restriction(body):
    resolver = AccessResolver(_Client(body), cloud=True)
    with pytest.raises(MalformedAccess):
        resolver.restriction_level(_long_restriction())


def test_a_restriction_to_identities_that_no_longer_exist_admits_nobody():
    content = {"id": "7", "restrictions": {"read": {"restrictions": {
        "user": {"results": [{"displayName": "deleted user"}], "size": 1}, "group": {"results": [], "size": 0},
    }}}}
    assert AccessResolver(_Client({}), cloud=True).restriction_level(content) == Level()
