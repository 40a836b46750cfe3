"""A threaded HTTP server on 127.0.0.1 for fake services, with a request log and programmable faults.

Generic on purpose (the Confluence fake uses it; a Microsoft Graph fake can too): a service is an
*app* with ``handle(request) -> Response`` and ``error_response(status, message) -> Response``.
The server asks the app's ``faults`` what to do with each request before the app sees it, and
appends every request, faulted or not, to the app's ``log`` so tests and benchmarks can count calls.

Faults are deterministic: a rule counts the requests whose path matches its pattern *from the
moment it was added* and fires on the ``nth`` of them and the ``times - 1`` that follow.
"""
import json
import re
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]  # lower-cased names
    body: bytes = b""

    def arg(self, name: str, default: str | None = None) -> str | None:
        values = self.query.get(name)
        return values[-1] if values else default


@dataclass
class Response:
    status: int = 200
    json: object = None
    body: bytes = b""
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    principal: str | None = None  # who the app authenticated, for the log


@dataclass(frozen=True)
class RequestRecord:
    method: str
    path: str
    query: dict[str, list[str]]
    status: int | None  # None: the connection was dropped without a response
    principal: str | None
    seconds: float


class RequestLog:
    """Every request the server saw, in arrival order (thread-safe)."""

    def __init__(self):
        self._lock = threading.Lock()
        self._records: list[RequestRecord] = []

    def add(self, record: RequestRecord) -> None:
        with self._lock:
            self._records.append(record)

    @property
    def records(self) -> list[RequestRecord]:
        with self._lock:
            return list(self._records)

    def count(self, pattern: str | None = None, *, method: str | None = None, status: int | None = None) -> int:
        """Requests whose path matches ``pattern`` (re.search), optionally of one method and status."""
        regex = re.compile(pattern) if pattern else None
        return sum(
            1
            for r in self.records
            if (regex is None or regex.search(r.path))
            and (method is None or r.method == method)
            and (status is None or r.status == status)
        )

    def clear(self) -> None:
        with self._lock:
            self._records.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._records)


@dataclass
class _Rule:
    pattern: re.Pattern
    nth: int
    times: int | None  # None: forever
    kind: str  # respond | drop | delay | mangle | after
    payload: object = None
    seen: int = 0

    def fires(self, path: str) -> bool:
        """Count a matching request; True when it is one this rule acts on."""
        if not self.pattern.search(path):
            return False
        self.seen += 1
        if self.seen < self.nth:
            return False
        return self.times is None or self.seen < self.nth + self.times


@dataclass
class Plan:
    delay: float = 0.0
    drop: bool = False
    respond: tuple | None = None  # (status, headers, message)
    mangles: list = field(default_factory=list)
    afters: list = field(default_factory=list)


class Faults:
    """What goes wrong, and when. Patterns are regular expressions searched in the request path."""

    def __init__(self):
        self._lock = threading.Lock()
        self._rules: list[_Rule] = []

    def _add(self, pattern, nth, times, kind, payload=None) -> None:
        if nth < 1:
            raise ValueError("nth counts from 1")
        with self._lock:
            self._rules.append(_Rule(re.compile(pattern), nth, times, kind, payload))

    def fail(self, pattern: str = ".*", *, status: int = 500, nth: int = 1, times: int | None = 1,
             message: str = "Internal server error (injected)", headers: dict | None = None) -> None:
        """Answer the nth matching request (and times-1 more) with ``status`` instead of the real answer."""
        self._add(pattern, nth, times, "respond", (status, dict(headers or {}), message))

    def throttle(self, times: int, *, retry_after: float = 0, status: int = 429, pattern: str = ".*") -> None:
        """A storm: the next ``times`` matching requests get ``status`` with ``Retry-After`` (seconds; may be
        fractional or zero so tests stay fast). ``status=503`` is the maintenance variant."""
        value = str(int(retry_after)) if float(retry_after).is_integer() else str(retry_after)
        self.fail(pattern, status=status, times=times, headers={"Retry-After": value},
                  message="Rate limit exceeded" if status == 429 else "Service unavailable")

    def drop(self, pattern: str = ".*", *, nth: int = 1, times: int | None = 1) -> None:
        """Close the socket without any response."""
        self._add(pattern, nth, times, "drop")

    def delay(self, pattern: str, seconds: float, *, nth: int = 1, times: int | None = None) -> None:
        """Sleep before answering matching requests (all of them unless ``times`` is given)."""
        self._add(pattern, nth, times, "delay", seconds)

    def mangle(self, pattern: str, mutate: Callable[[object], None], *, nth: int = 1, times: int | None = 1) -> None:
        """Let ``mutate`` edit the JSON payload of a matching successful response before it is sent."""
        self._add(pattern, nth, times, "mangle", mutate)

    def after(self, pattern: str, callback: Callable[[], None], *, nth: int = 1, times: int | None = 1) -> None:
        """Run ``callback`` once a matching response is rendered, before the client gets it (e.g. delete a
        page that the response lists)."""
        self._add(pattern, nth, times, "after", callback)

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()

    def plan(self, path: str) -> Plan:
        plan = Plan()
        with self._lock:
            for rule in self._rules:
                if not rule.fires(path):
                    continue
                if rule.kind == "delay":
                    plan.delay += rule.payload
                elif rule.kind == "drop":
                    plan.drop = True
                elif rule.kind == "respond" and plan.respond is None:
                    plan.respond = rule.payload
                elif rule.kind == "mangle":
                    plan.mangles.append(rule.payload)
                elif rule.kind == "after":
                    plan.afters.append(rule.payload)
        return plan


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as clients pool connections against real services

    def log_message(self, format, *args):  # the request log replaces stderr chatter
        pass

    def do_GET(self):
        self._serve()

    do_POST = do_PUT = do_DELETE = do_HEAD = do_GET

    def _serve(self) -> None:
        app = self.server.app
        started = time.monotonic()
        url = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        request = Request(
            method=self.command,
            path=url.path,
            query=parse_qs(url.query, keep_blank_values=True),
            headers={k.lower(): v for k, v in self.headers.items()},
            body=self.rfile.read(length) if length else b"",
        )
        plan = app.faults.plan(request.path)
        if plan.delay:
            time.sleep(plan.delay)
        if plan.drop:
            self._record(app, request, None, None, started)
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return
        if plan.respond is not None:
            status, headers, message = plan.respond
            response = app.error_response(status, message)
            response.headers.update(headers)
        else:
            try:
                response = app.handle(request)
            except Exception as error:  # a bug in the fake must surface as an answer, not a hung client
                response = app.error_response(500, f"The fake server failed: {error!r}")
            if response.status < 300 and response.json is not None:
                for mutate in plan.mangles:
                    mutate(response.json)
        # The answer is rendered already; callbacks and the log entry happen before it leaves so that a
        # client's next call, on any connection, sees their effect (deterministic, no race).
        for callback in plan.afters:
            callback()
        self._record(app, request, response.status, response.principal, started)
        self._write(response)

    def _write(self, response: Response) -> None:
        body = response.body
        if response.json is not None:
            body = json.dumps(response.json, ensure_ascii=False).encode()
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in response.headers.items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _record(self, app, request, status, principal, started) -> None:
        app.log.add(RequestRecord(request.method, request.path, request.query, status, principal,
                                  time.monotonic() - started))


class LoopbackServer:
    """Serve ``app`` on 127.0.0.1 with an ephemeral port from a daemon thread; a context manager."""

    def __init__(self, app):
        self.app = app
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> "LoopbackServer":
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._server.daemon_threads = True
        self._server.app = self.app
        # A short poll so stopping takes milliseconds, not the default half second per test.
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.02},
                                        name="fake-http", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join(timeout=5)
            self._server = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
