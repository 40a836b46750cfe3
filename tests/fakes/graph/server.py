"""The fake Graph server on loopback: a threaded HTTP server, faults, the request log, a fixture.

    with FakeGraphServer() as graph:
        graph.tenant.apps.app_add(client_id="app", secret="s3cret")
        site = graph.tenant.site_add(name="hr")
        ...  # point the connector at graph.base_url (Graph) and graph.token_url (login)

It listens on 127.0.0.1 on a port the OS picks and answers on daemon threads, so tests can run
side by side. HTTP/1.1 with keep-alive, like the real service, so connection reuse and dropped
connections behave as they would against it.
"""
import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from tests.fakes.graph.api import GraphApi, Response
from tests.fakes.graph.faults import ERROR_CODES, Faults, RequestLog
from tests.fakes.graph.model import GraphTenant
from tests.fakes.graph.render import error


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # One write per answer and no Nagle: else keep-alive clients wait on delayed ACKs (~40 ms a call).
    wbufsize = -1
    disable_nagle_algorithm = True
    server: "_HTTPServer"

    def do_GET(self):
        self._serve("GET")

    def do_POST(self):
        self._serve("POST")

    def do_PATCH(self):
        self._serve("PATCH")

    def do_PUT(self):
        self._serve("PUT")

    def do_DELETE(self):
        self._serve("DELETE")

    def log_message(self, format, *args):  # noqa: A002 - the base class's signature
        """Quiet: the request log is the record."""

    def _serve(self, method: str) -> None:
        fake = self.server.fake
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        headers = {k.lower(): v for k, v in self.headers.items()}
        decision = fake.faults.decide(method, self.path)
        for hook in decision.hooks:
            hook()
        rule = decision.answer
        if rule is not None and rule.kind == "drop":
            fake.log.record(method, self.path, None, headers.get("prefer"), False)
            self._drop()
            return
        if rule is not None and rule.kind == "status":
            response = _fault_response(fake, rule)
            authorized = False
        else:
            response, authorized = fake.api.handle(method, self.path, headers, body, decision.malformed_item)
        fake.log.record(method, self.path, response.status, headers.get("prefer"), authorized)
        self._send(response, truncate=rule is not None and rule.kind == "truncate")

    def _send(self, response: Response, *, truncate: bool) -> None:
        self.send_response(response.status)
        for name, value in response.headers.items():
            self.send_header(name, value)
        if "Content-Length" not in response.headers:
            self.send_header("Content-Length", str(len(response.body)))
        self.send_header("client-request-id", self.headers.get("client-request-id", ""))
        self.end_headers()
        if truncate:
            self.wfile.write(response.body[: len(response.body) // 2])
            self.wfile.flush()
            self._drop()
            return
        self.wfile.write(response.body)

    def _drop(self) -> None:
        """Close the socket without a (complete) answer, as a reset connection would."""
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


def _fault_response(fake: "FakeGraphServer", rule) -> Response:
    code = ERROR_CODES.get(rule.status, "generalException")
    message = {429: "The request has been throttled", 503: "The service is temporarily unavailable."}.get(
        rule.status, "An injected failure of the fake Graph server.")
    response = Response(rule.status, json.dumps(error(code, message, "fault", fake.tenant.clock.now())).encode(),
                        {"Content-Type": "application/json"})
    if rule.retry_after is not None:
        seconds = rule.retry_after
        response.headers["Retry-After"] = str(int(seconds)) if float(seconds).is_integer() else str(seconds)
    return response


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    fake: "FakeGraphServer"


class FakeGraphServer:
    """The tenant (``.tenant``), its faults (``.faults``) and request log (``.log``) on a port."""

    def __init__(self, tenant: GraphTenant | None = None, *, host: str = "127.0.0.1"):
        self.tenant = tenant or GraphTenant()
        self.faults = Faults()
        self.log = RequestLog()
        self._httpd = _HTTPServer((host, 0), _Handler)
        self._httpd.fake = self
        self.api = GraphApi(self.tenant, self.base_url)
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def graph_url(self) -> str:
        """Where Graph v1.0 lives: the fake's ``https://graph.microsoft.com/v1.0``."""
        return f"{self.base_url}/v1.0"

    @property
    def token_url(self) -> str:
        """The fake's ``https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token``."""
        return self.api.token_url

    def start(self) -> "FakeGraphServer":
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="fake-graph", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> "FakeGraphServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
