"""Shared test machinery: a knowledge base synced from files, users in groups, API and page clients.

Registered for every test by ``pytest_plugins`` in ``tests/conftest.py``. A test directory (or
module) declares only what its knowledge base holds and who its users are:

    kb_files, kb_users = knowledge_base_declared(FILES, USERS)

FILES is ``{relative path: text}`` (``_access.yaml`` files set the permissions), USERS is
``{username: {"groups": [...], optional "first_name", "last_name", "is_active"}}``. Tests then use ``kb`` ({external_id: Document}), ``users`` ({name: User}), ``clients`` (token API
clients by name), ``token_client(user)``, ``page_client(name)``, ``add_source(key, files)``.

``kb_encoder`` is the encoder the knowledge base is embedded with and searches embed queries with
(the tiny test model unless a test overrides it, e.g. with ``tests.keyword_encoder.KeywordEncoder``
to choose the geometry a ranking assertion depends on).
"""
from pathlib import Path

import pytest
from django.contrib.auth.models import Group, User
from django.core.cache import cache
from django.test import Client
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from connectors.services import source_create, source_sync
from kbsearch.documents.models import Document, Source


def knowledge_base_declared(files: dict[str, str], users: dict[str, dict]):
    """The ``kb_files`` and ``kb_users`` fixtures for a directory's or module's knowledge base."""

    @pytest.fixture(name="kb_files")
    def kb_files_fixture() -> dict[str, str]:
        return files

    @pytest.fixture(name="kb_users")
    def kb_users_fixture() -> dict[str, dict]:
        return users

    return kb_files_fixture, kb_users_fixture


def write_tree(root: Path, files: dict[str, str]) -> Path:
    """Write ``{relative path: text}`` under ``root``; returns ``root``."""
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root


def source_from_files(
    *, root: Path, key: str, name: str, files: dict[str, str], encoder, check: bool = True
) -> Source:
    """A file-share source holding ``files``, synced through the connector.

    ``check``: fail the test if the sync reported errors (off for tests that add bad files on purpose).
    """
    write_tree(root, files)
    source = source_create(key=key, name=name, connector="filesystem", config={"root": str(root)})
    run = source_sync(source=source, encoder=encoder)
    assert not (check and run.errors), run.errors
    return source


def users_create(spec: dict[str, dict]) -> dict[str, User]:
    """Users named by ``spec`` with password ``pw-<name>``, in the groups it lists (created as needed)."""
    users = {}
    for name, details in spec.items():
        user = User.objects.create_user(
            name,
            password=f"pw-{name}",
            first_name=details.get("first_name", ""),
            last_name=details.get("last_name", ""),
            is_active=details.get("is_active", True),
        )
        user.groups.set([Group.objects.get_or_create(name=group)[0] for group in details.get("groups", ())])
        users[name] = user
    return users


def api_client_for(user) -> APIClient:
    """An API client that authenticates as ``user`` with their token, as API clients do."""
    client = APIClient()
    token, _ = Token.objects.get_or_create(user=user)
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    return client


def use_encoder(monkeypatch, encoder) -> None:
    """Make everything that asks for the process-wide encoder (searches, commands) get ``encoder``."""
    monkeypatch.setattr("embeddings.loading.get_encoder", lambda: encoder)


@pytest.fixture(autouse=True)
def _fresh_rate_limits():
    """Rate-limit counters live in the process-wide cache; each test starts with none."""
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def kb_encoder(tiny_encoder):
    """The encoder of the knowledge base and of searches on it; override to choose the geometry."""
    return tiny_encoder


@pytest.fixture
def kb(db, tmp_path, kb_files, kb_encoder, index_backend, monkeypatch) -> dict[str, Document]:
    """The synced knowledge base (source ``share``, "Shared drive"); returns {external_id: Document}."""
    use_encoder(monkeypatch, kb_encoder)
    source_from_files(root=tmp_path / "share", key="share", name="Shared drive", files=kb_files, encoder=kb_encoder)
    return {document.external_id: document for document in Document.objects.all()}


@pytest.fixture
def users(db, kb_users) -> dict[str, User]:
    return users_create(kb_users)


@pytest.fixture
def token_client():
    """Makes an API client that authenticates as the given user with their token."""
    return api_client_for


@pytest.fixture
def clients(users, kb) -> dict[str, APIClient]:
    return {name: api_client_for(user) for name, user in users.items()}


@pytest.fixture
def add_source(tmp_path, kb_encoder, index_backend):
    """Makes and syncs another file-share source: add_source(key, files) -> Source."""

    def add(key: str, files: dict[str, str]) -> Source:
        return source_from_files(
            root=tmp_path / key, key=key, name=key.title(), files=files, encoder=kb_encoder, check=False
        )

    return add


@pytest.fixture
def page_client(users, kb, settings):
    """Makes a browser-like client signed in as a user, asking for the given UI language."""
    settings.KBSEARCH_WARM_ENCODER = False  # a loader thread started by a page would outlive the test

    def make(name: str, accept_language: str = "en") -> Client:
        client = Client(HTTP_ACCEPT_LANGUAGE=accept_language)
        client.force_login(users[name])
        return client

    return make
