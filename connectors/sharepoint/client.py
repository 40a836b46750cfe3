"""Microsoft Graph over HTTP: bearer tokens, throttling, retries and error classes.

Every call goes through ``GraphClient._send``:
- 429 and 503 (throttling, service busy) are waited out for as long as ``Retry-After`` says
  (seconds, fractions accepted), capped at ``max_wait``; without the header, and for 500/502/504
  and dropped connections, an exponential backoff. A call gives up after ``max_attempts`` tries
  or ``max_total_wait`` seconds of waiting, with ``GraphUnavailable``.
- 401: the token is dropped and fetched again, once; a second 401 is ``GraphUnauthorized``.
- 403 ``GraphForbidden``, 404 ``GraphNotFound``, 410 ``GraphGone`` (a delta token Graph no longer
  knows: ``resyncRequired``), anything else ``GraphError``. All carry Graph's error code.

Whole-source failures (sign-in, 401, 403 on a listing) are ``ConnectorError``s: the run fails and
nothing is pruned. Per-item failures are caught by the connector and reported for that item.
"""
import logging
import random
import time
from urllib.parse import urljoin

import requests

from connectors.base import ConnectorError
from connectors.sharepoint.auth import ClientCredentials

logger = logging.getLogger(__name__)
_RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
_pause = time.sleep  # looked up at each wait, so tests can watch the waits


class GraphError(ConnectorError):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"Graph answered {status} {code}: {message}")
        self.status, self.code = status, code


class GraphUnauthorized(GraphError):
    pass


class GraphForbidden(GraphError):
    pass


class GraphNotFound(GraphError):
    pass


class GraphGone(GraphError):
    pass


class GraphUnavailable(GraphError):
    """Throttled, busy or unreachable for longer than the client waits."""


class GraphClient:
    def __init__(self, *, base_url: str, credentials: ClientCredentials, session: requests.Session | None = None,
                 timeout: float = 60.0, max_attempts: int = 8, max_wait: float = 60.0, max_total_wait: float = 300.0,
                 sleep=None) -> None:
        self.base_url = base_url.rstrip("/") + "/"
        self.credentials = credentials
        self.session = session or requests.Session()
        self.timeout = timeout
        self.max_attempts = max_attempts
        self.max_wait = max_wait
        self.max_total_wait = max_total_wait
        self.sleep = sleep
        self.calls = 0  # HTTP requests sent, for logs and tests
        self.waited = 0.0  # seconds spent waiting on throttling and backoff

    def url(self, path_or_url: str) -> str:
        """A Graph URL: next/delta links are absolute already, paths are under the base URL."""
        if path_or_url.startswith(("http://", "https://")):
            return path_or_url
        return urljoin(self.base_url, path_or_url.lstrip("/"))

    def get_json(self, path_or_url: str, *, params: dict | None = None, headers: dict | None = None) -> dict:
        answer = self._send(self.url(path_or_url), params=params, headers=headers, authorized=True)
        try:
            body = answer.json()
        except ValueError:
            raise GraphError(answer.status_code, "invalidJson", "the answer is not JSON") from None
        if not isinstance(body, dict):
            raise GraphError(answer.status_code, "invalidJson", "the answer is not a JSON object")
        return body

    def get_pages(self, path: str, *, params: dict | None = None):
        """Every item of a collection, following ``@odata.nextLink``."""
        body = self.get_json(path, params=params)
        while True:
            yield from body.get("value") or []
            next_link = body.get("@odata.nextLink")
            if not next_link:
                return
            body = self.get_json(next_link)

    def download(self, url: str, *, authorized: bool) -> bytes:
        """A file's bytes: a pre-authenticated download URL (no token) or ``/content`` (token, redirect)."""
        return self._send(self.url(url), authorized=authorized).content

    def _send(self, url: str, *, params=None, headers=None, authorized: bool) -> requests.Response:
        attempt, waited, refreshed = 0, 0.0, False
        while True:
            attempt += 1
            sent = dict(headers or {})
            if authorized:
                sent["Authorization"] = f"Bearer {self.credentials.token()}"
            self.calls += 1
            try:
                answer = self.session.get(url, params=params, headers=sent, timeout=self.timeout)
            except requests.RequestException as error:
                answer, problem = None, f"{type(error).__name__}"
            else:
                problem = ""
            if answer is not None and answer.status_code < 400:
                return answer
            if answer is not None and answer.status_code == 401 and authorized and not refreshed:
                self.credentials.invalidate()  # expired or revoked before our own deadline
                refreshed = True
                continue
            if answer is not None and answer.status_code not in _RETRY_STATUSES:
                raise _error(answer)
            delay = _retry_after(answer) if answer is not None else None
            if delay is None:
                delay = min(self.max_wait, 0.5 * 2 ** (attempt - 1)) * (0.5 + random.random() / 2)
            delay = min(delay, self.max_wait)
            if attempt >= self.max_attempts or waited + delay > self.max_total_wait:
                if answer is None:
                    raise GraphUnavailable(0, "connectionFailed", f"{problem} after {attempt} attempts")
                raise GraphUnavailable(answer.status_code, _code(answer), f"still failing after {attempt} attempts")
            logger.info("Graph %s; retrying in %.2fs", answer.status_code if answer is not None else problem, delay)
            (self.sleep or _pause)(delay)
            waited += delay
            self.waited += delay


def _retry_after(answer: requests.Response) -> float | None:
    value = answer.headers.get("Retry-After")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None  # an HTTP date: rare from Graph; back off instead


def _code(answer: requests.Response) -> str:
    try:
        return str(answer.json().get("error", {}).get("code") or "")
    except (ValueError, AttributeError):
        return ""


def _error(answer: requests.Response) -> GraphError:
    try:
        error = answer.json().get("error") or {}
        code, message = str(error.get("code") or ""), str(error.get("message") or "")[:300]
    except (ValueError, AttributeError):
        code, message = "", answer.reason or ""
    kind = {401: GraphUnauthorized, 403: GraphForbidden, 404: GraphNotFound, 410: GraphGone}.get(
        answer.status_code, GraphError)
    return kind(answer.status_code, code, message)
