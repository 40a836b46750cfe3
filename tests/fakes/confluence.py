"""A fake Confluence (Cloud or Data Center) on 127.0.0.1, for connector tests and benchmarks.

Drive it from Python::

    with FakeConfluence(cloud=True) as fake:          # or the `confluence_server` pytest fixture
        eng = fake.site.add_space("ENG", "Engineering")
        home = fake.site.add_page(eng, "Home", body="<p>Hello</p>")
        fake.site.grant_space(eng, "eng-team")        # v2 permission read/space for a group
        fake.faults.fail(r"/content$", nth=2)         # the 2nd listing request answers 500
        session = fake.session()                      # requests.Session with the service account
        session.get(fake.api_url + "/content", params={"spaceKey": "ENG"})
        fake.log.count(r"/content")                   # HTTP calls made so far

``fake.base_url`` is what a connector is configured with (``http://127.0.0.1:<port>/wiki`` on Cloud,
``http://127.0.0.1:<port>`` on Data Center); ``fake.credentials()`` gives the service account's
``{"email", "api_token"}`` (Cloud) or ``{"personal_access_token"}`` (Data Center). The service
account sees everything; add users with ``fake.add_user`` to test what others may see (space read
permissions and read restrictions on the page and its ancestors apply to them) and ``can_use=False``
for a 403.

What of the API descriptions is served (v1 on both, v2 on Cloud only): ``GET /space``, ``/content``,
``/content/search``, ``/search``, ``/content/{id}``, ``/content/{id}/child``,
``/content/{id}/child/{page|attachment|comment}``, ``/content/{id}/restriction``,
``/content/{id}/restriction/byOperation[/{read|update}]``, the attachment download link,
``/group/{name}/member`` (both; deprecated on Cloud), ``/group/{id}/membersByGroupId`` (Cloud) and
``/user/memberof?accountId=`` (Cloud) / ``?username=`` (Data Center); v2
``/spaces``, ``/spaces/{id}``, ``/spaces/{id}/permissions``, ``/spaces/{id}/pages``, ``/pages``,
``/pages/{id}``. Space permissions on Data Center: v1 ``/space?expand=permissions`` (subjects user
or group, operation read/space ...), which Cloud also serves; Data Center has no v2.

Left out: writes over HTTP (mutate through ``fake.site``), comments (always empty), page history
(``version=`` other than the current one is a 404), labels, update restrictions (always empty),
``cqlcontext``, ``orderby`` on ``/content``, descendants, body formats other than storage, v2
page children/versions/labels/operations. CQL subset: see ``tests.fakes.confluence_cql``.
"""
import requests

from tests.fakes.confluence_http import ConfluenceApp
from tests.fakes.confluence_model import Site, User
from tests.fakes.confluence_populate import populate
from tests.fakes.http import LoopbackServer

try:
    import pytest
except ImportError:  # bench scripts run without pytest installed
    pytest = None

SERVICE_TOKEN = "fake-api-token-for-kbsearch"


class FakeConfluence:
    def __init__(self, *, cloud: bool = True, site: Site | None = None, max_limit: int = 100):
        self.site = site or Site()
        self.cloud = cloud
        self.app = ConfluenceApp(self.site, cloud=cloud, max_limit=max_limit)
        self._server = LoopbackServer(self.app)
        self.service_user = self.add_user("svc-kbsearch", display_name="kbsearch service", sees_everything=True)

    # -- lifecycle ----------------------------------------------------------------------------
    def start(self) -> "FakeConfluence":
        self._server.start()
        self.app.root_url = self._server.url
        return self

    def stop(self) -> None:
        self._server.stop()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # -- where and who ------------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        return self.app.base

    @property
    def api_url(self) -> str:
        return f"{self.app.base}/rest/api"

    @property
    def v2_url(self) -> str:
        return f"{self.app.root_url}/wiki/api/v2"

    @property
    def log(self):
        return self.app.log

    @property
    def faults(self):
        return self.app.faults

    def add_user(self, handle: str, *, token: str | None = None, **kw) -> User:
        """A user with an API token (Cloud) and a personal access token (Data Center), both ``token``."""
        user = self.site.add_user(handle, **kw)
        token = token or (SERVICE_TOKEN if handle == "svc-kbsearch" else f"token-{handle}")
        self.site.add_api_token(user, token)
        self.site.add_personal_token(user, token)
        return user

    def token(self, user: User | None = None) -> str:
        user = user or self.service_user
        return next(t for t, u in self.site.personal_tokens.items() if u is user)

    def credentials(self, user: User | None = None) -> dict:
        user = user or self.service_user
        if self.cloud:
            return {"email": user.email, "api_token": self.token(user)}
        return {"personal_access_token": self.token(user)}

    def session(self, user: User | None = None) -> requests.Session:
        session = requests.Session()
        user = user or self.service_user
        if self.cloud:
            session.auth = (user.email, self.token(user))
        else:
            session.headers["Authorization"] = f"Bearer {self.token(user)}"
        return session

    # -- fault shortcuts specific to Confluence ------------------------------------------------
    def malformed_item(self, pattern: str = r"/content$", *, index: int = 0, kind: str = "missing_title", nth: int = 1) -> None:
        """The ``index``-th result of the nth matching listing loses its title (``missing_title``), gets a
        number for its type (``wrong_type``), a null id (``null_id``) or is no object at all (``not_object``)."""
        def mutate(payload):
            item = payload["results"][index]
            if kind == "not_object":
                payload["results"][index] = "<unexpected>"
            elif kind == "missing_title":
                item.pop("title", None)
            elif kind == "wrong_type":
                item["type"] = 42
            elif kind == "null_id":
                item["id"] = None
            else:
                raise ValueError(kind)
        self.faults.mangle(pattern, mutate, nth=nth)

    def delete_after_listing(self, content, pattern: str = r"/content$", *, nth: int = 1, purge: bool = False) -> None:
        """Delete ``content`` right after the nth matching listing was answered (listed, then gone)."""
        self.faults.after(pattern, lambda: self.site.delete(content, purge=purge), nth=nth)

    def populate(self, space, n_pages: int, **kw):
        return populate(self.site, space, n_pages, **kw)


if pytest is not None:
    @pytest.fixture
    def confluence_server(request):
        """A running fake; Cloud unless parametrized indirectly with "dc" (or "cloud")."""
        flavour = getattr(request, "param", "cloud")
        with FakeConfluence(cloud=flavour == "cloud") as fake:
            yield fake
