"""Pytest fixtures for the fake Graph server: ``fake_graph`` (empty tenant) and ``contoso`` (a
small HR site with a signed-in session helper and a delta walker).

Load with ``pytest_plugins = ["tests.fakes.graph_testing"]`` in a test module.
"""
from dataclasses import dataclass

import pytest
import requests

from tests.fakes.graph.model import Drive, GraphTenant, Item, Site, User
from tests.fakes.graph.server import FakeGraphServer

CLIENT_ID = "11111111-2222-3333-4444-555555555555"
SECRET = "fake-secret-value"
SCOPE = "https://graph.microsoft.com/.default"


@dataclass
class Contoso:
    """HR site: Documents/Policies/{leave.txt, Private/salaries.txt}, Documents/readme.txt."""

    graph: FakeGraphServer
    tenant: GraphTenant
    alice: User
    bob: User
    site: Site
    drive: Drive
    root: Item
    policies: Item
    leave: Item
    private: Item
    salaries: Item
    readme: Item
    client_id: str = CLIENT_ID
    secret: str = SECRET
    scope: str = SCOPE

    def token(self) -> str:
        answer = requests.post(self.graph.token_url, data={
            "grant_type": "client_credentials", "client_id": CLIENT_ID, "client_secret": SECRET, "scope": SCOPE})
        answer.raise_for_status()
        return answer.json()["access_token"]

    def session(self) -> requests.Session:
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {self.token()}"
        return session

    def url(self, path: str) -> str:
        return self.graph.graph_url + path

    def delta_walk(self, session: requests.Session, url: str | None = None, **headers) -> tuple[list[dict], str, int]:
        """Follow nextLinks to the deltaLink: (items, deltaLink, pages)."""
        url = url or self.url(f"/drives/{self.drive.id}/root/delta")
        items, pages = [], 0
        while True:
            answer = session.get(url, headers=headers)
            assert answer.status_code == 200, answer.text
            body = answer.json()
            items.extend(body["value"])
            pages += 1
            if "@odata.nextLink" in body:
                assert "@odata.deltaLink" not in body
                url = body["@odata.nextLink"]
            else:
                return items, body["@odata.deltaLink"], pages


@pytest.fixture
def fake_graph():
    """A running fake Graph server with an empty tenant; stopped after the test."""
    with FakeGraphServer() as server:
        yield server


@pytest.fixture
def contoso():
    with FakeGraphServer() as graph:
        tenant = graph.tenant
        tenant.apps.app_add(client_id=CLIENT_ID, secret=SECRET)
        alice, bob = tenant.user_add(name="alice"), tenant.user_add(name="bob")
        site = tenant.site_add(name="hr", display_name="Human Resources")
        drive = next(d for d in tenant.drives.values() if d.site_id == site.id)
        root = tenant.root(drive)
        policies = tenant.folder_add(parent=root, name="Policies", author=alice)
        leave = tenant.file_add(parent=policies, name="leave.txt", content="Leave: 25 days", author=alice)
        private = tenant.folder_add(parent=policies, name="Private", author=alice)
        salaries = tenant.file_add(parent=private, name="salaries.txt", content="secret numbers", author=bob)
        readme = tenant.file_add(parent=root, name="readme.txt", content="Read me", author=bob)
        yield Contoso(graph, tenant, alice, bob, site, drive, root, policies, leave, private, salaries, readme)
