"""HTTP to Confluence Cloud (``/wiki/rest/api``) and Data Center (``/rest/api``): auth, paging, retries.

Cloud authenticates with HTTP basic ``email:api_token``; Data Center with ``Authorization: Bearer
<personal access token>``. Both come from the source's encrypted credentials and are never logged.

Errors are classified so callers can act on them:
- 401/403: ``ConfluenceAuthError`` (a ``ConnectorError``): the run fails, and nothing is pruned.
- 404: ``ConfluenceNotFound``: the item is gone (deleted between listing and fetch).
- 429 and 503 are waited out: ``Retry-After`` (seconds, possibly fractional, or an HTTP date) when
  given, else exponential backoff; each wait capped at ``max_wait`` seconds, at most
  ``max_retries`` times. Other 5xx and dropped connections are retried the same way.
- What is still failing after that: ``ConfluenceUnavailable`` (a ``ConnectorError``).

Listings page by following ``_links.next`` (relative to ``_links.base``), which covers v1's
``start``/``limit`` and Cloud search's opaque ``cursor`` alike.
"""
import email.utils
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import requests

from connectors.base import ConnectorError

logger = logging.getLogger(__name__)

_RETRIED_STATUSES = frozenset({429, 500, 502, 503, 504})


class ConfluenceAuthError(ConnectorError):
    """The credentials were refused (401) or lack permission (403)."""


class ConfluenceUnavailable(ConnectorError):
    """Confluence kept failing (5xx, throttling, dropped connections) after every retry."""


class ConfluenceNotFound(Exception):
    """A 404: the content is gone (or the service account cannot see it any more)."""


class ConfluenceBadRequest(ConnectorError):
    """A 400: kbsearch asked something Confluence does not understand (a bug, or an unsupported site)."""


@dataclass(frozen=True)
class Page:
    """One page of a listing: its results and the path of the next page (None at the end)."""

    results: list
    next_path: str | None
    raw: dict


class ConfluenceClient:
    def __init__(self, *, base_url: str, flavour: str, credentials: dict, timeout: float = 30.0,
                 max_retries: int = 8, max_wait: float = 60.0, sleep=time.sleep) -> None:
        self.base_url = base_url.rstrip("/")
        self.flavour = flavour
        self.timeout, self.max_retries, self.max_wait = timeout, max_retries, max_wait
        self._sleep = sleep
        self.session = requests.Session()
        self.session.headers["Accept"] = "application/json"
        if flavour == "cloud":
            email_address, token = credentials.get("email"), credentials.get("api_token")
            if not email_address or not token:
                raise ConfluenceAuthError("Confluence Cloud needs the credentials 'email' and 'api_token'")
            self.session.auth = (email_address, token)
        else:
            token = credentials.get("personal_access_token")
            if not token:
                raise ConfluenceAuthError("Confluence Data Center needs the credential 'personal_access_token'")
            self.session.headers["Authorization"] = f"Bearer {token}"
        self.calls = 0

    def url(self, path: str) -> str:
        return path if path.startswith("http") else f"{self.base_url}{path}"

    # -- one request, retried -------------------------------------------------------------------
    def request(self, path: str, params: dict | None = None, *, raw: bool = False):
        """GET ``path`` (relative to the base URL); the decoded JSON, or the bytes when ``raw``."""
        url = self.url(path)
        attempt = 0
        while True:
            attempt += 1
            self.calls += 1
            try:
                response = self.session.get(url, params=params, timeout=self.timeout)
            except (requests.ConnectionError, requests.Timeout) as error:
                if attempt > self.max_retries:
                    raise ConfluenceUnavailable(f"GET {path}: {type(error).__name__} after {attempt} attempts") from None
                self._wait(attempt, None, f"GET {path}: {type(error).__name__}")
                continue
            status = response.status_code
            if status in (401, 403):
                raise ConfluenceAuthError(f"GET {path}: HTTP {status} {_message(response)}")
            if status == 404:
                raise ConfluenceNotFound(f"GET {path}: HTTP 404 {_message(response)}")
            if status in _RETRIED_STATUSES:
                if attempt > self.max_retries:
                    raise ConfluenceUnavailable(f"GET {path}: HTTP {status} after {attempt} attempts")
                self._wait(attempt, response.headers.get("Retry-After"), f"GET {path}: HTTP {status}")
                continue
            if status == 400:
                raise ConfluenceBadRequest(f"GET {path}: HTTP 400 {_message(response)}")
            if status >= 300:
                raise ConfluenceUnavailable(f"GET {path}: HTTP {status} {_message(response)}")
            if raw:
                return response.content
            try:
                return response.json()
            except ValueError:
                if attempt > self.max_retries:
                    raise ConfluenceUnavailable(f"GET {path}: the answer is not JSON") from None
                self._wait(attempt, None, f"GET {path}: truncated or non-JSON answer")

    def _wait(self, attempt: int, retry_after: str | None, what: str) -> None:
        seconds = retry_after_seconds(retry_after)
        if seconds is None:
            seconds = min(0.5 * 2 ** (attempt - 1), 30.0)
        seconds = max(0.0, min(seconds, self.max_wait))
        logger.info("%s; retrying in %.2fs (attempt %d)", what, seconds, attempt)
        self._sleep(seconds)

    # -- listings -------------------------------------------------------------------------------
    def pages(self, path: str, params: dict | None = None) -> Iterator[Page]:
        """Every page of a listing, following ``_links.next``."""
        next_path: str | None = path
        first = True
        while next_path:
            page = self.page_of(self.request(next_path, params if first else None))
            first = False
            yield page
            next_path = page.next_path

    def page_of(self, body) -> Page:
        if not isinstance(body, dict) or not isinstance(body.get("results"), list):
            raise ConfluenceUnavailable("a listing answered without a results array")
        links = body.get("_links") or {}
        next_link = links.get("next") if isinstance(links, dict) else None
        if next_link and not next_link.startswith("http"):
            # Relative to _links.base, which on Cloud already holds the /wiki context.
            context = links.get("context") or ""
            if context and next_link.startswith(context + "/"):
                next_link = next_link[len(context):]
        return Page(body["results"], next_link or None, body)

    def all_results(self, path: str, params: dict | None = None) -> list:
        return [item for page in self.pages(path, params) for item in page.results]


def retry_after_seconds(value: str | None) -> float | None:
    """``Retry-After`` as seconds: a (possibly fractional) number, or an HTTP date."""
    if not value:
        return None
    try:
        return float(value)
    except ValueError:
        pass
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (moment - datetime.now(UTC)).total_seconds()


def _message(response: requests.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return ""
    if isinstance(body, dict):
        return str(body.get("message") or body.get("errors") or "")[:300]
    return ""
