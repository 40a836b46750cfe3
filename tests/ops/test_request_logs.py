"""Every request gets an id (the trusted proxy's, or a new one), returned in X-Request-ID and carried
by every log line written while it is served; the lines are JSON objects."""
import io
import json
import logging
import re

import pytest

from kbsearch.ops.logging import KbsearchJsonFormatter, RequestIdFilter
from kbsearch.search import services as search_services


@pytest.fixture
def json_log():
    """The root logger's lines during the test, formatted as production formats them."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(KbsearchJsonFormatter())
    handler.addFilter(RequestIdFilter())
    root = logging.getLogger()
    previous = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    root.removeHandler(handler)
    root.setLevel(previous)


@pytest.fixture
def logging_search(monkeypatch):
    """A log line from deep inside a search, as an index or directory warning would be."""
    real_clean_query = search_services.clean_query

    def clean_query(text):
        logging.getLogger("kbsearch.search.services").warning("cleaning %r", text)
        return real_clean_query(text)

    monkeypatch.setattr(search_services, "clean_query", clean_query)


def test_a_new_request_id_is_made_returned_and_on_every_log_line(clients, json_log, logging_search):
    first = clients["alice"].get("/api/v1/search", {"q": "vpn"})
    second = clients["alice"].get("/api/v1/search", {"q": "vpn"})
    assert first.status_code == second.status_code == 200
    ids = [first["X-Request-ID"], second["X-Request-ID"]]
    assert all(re.fullmatch(r"[0-9a-f]{32}", request_id) for request_id in ids) and ids[0] != ids[1]
    lines = [line for line in json_log() if line["logger"] in {"kbsearch.request", "kbsearch.search.services"}]
    assert [(line["logger"], line["request_id"]) for line in lines] == [
        ("kbsearch.search.services", ids[0]), ("kbsearch.request", ids[0]),
        ("kbsearch.search.services", ids[1]), ("kbsearch.request", ids[1]),
    ]
    access = lines[1]
    assert access["level"] == "INFO" and access["message"] == "GET api:search 200"
    assert (access["method"], access["route"], access["status"]) == ("GET", "api:search", 200)
    assert isinstance(access["duration_ms"], float) and re.fullmatch(r"\d{4}-\d\d-\d\dT[\d:.]+Z", access["time"])


def test_lines_outside_a_request_have_no_request_id(json_log):
    logging.getLogger("kbsearch.test").warning("between requests")
    assert [line["request_id"] for line in json_log() if line["logger"] == "kbsearch.test"] == [None]


def test_the_proxy_request_id_is_kept_only_from_a_trusted_proxy(clients, settings, json_log):
    settings.KBSEARCH_TRUSTED_PROXY_ADDRESSES = ["127.0.0.1"]
    trusted = clients["alice"].get("/api/v1/search", {"q": "vpn"}, HTTP_X_REQUEST_ID="lb-7f3a.2")
    assert trusted["X-Request-ID"] == "lb-7f3a.2"
    untrusted = clients["alice"].get(
        "/api/v1/search", {"q": "vpn"}, HTTP_X_REQUEST_ID="lb-7f3a.2", REMOTE_ADDR="10.9.9.9"
    )
    assert untrusted["X-Request-ID"] != "lb-7f3a.2"
    assert [line["request_id"] for line in json_log() if line["logger"] == "kbsearch.request"] == [
        "lb-7f3a.2", untrusted["X-Request-ID"],
    ]


@pytest.mark.parametrize("offered", ["two\nlines", "x" * 129, "", "quote\"d"])
def test_an_id_that_could_forge_or_bloat_log_lines_is_replaced(offered, clients, settings):
    settings.KBSEARCH_TRUSTED_PROXY_ADDRESSES = ["127.0.0.1"]
    response = clients["alice"].get("/api/v1/search", {"q": "vpn"}, HTTP_X_REQUEST_ID=offered)
    assert re.fullmatch(r"[0-9a-f]{32}", response["X-Request-ID"])
