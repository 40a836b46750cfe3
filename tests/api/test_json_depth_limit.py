"""Deeply nested JSON bodies are a 400 with a message on every endpoint that parses JSON, never a 500."""
import json

import pytest
from django.urls import URLPattern, URLResolver, get_resolver
from rest_framework.settings import api_settings
from rest_framework.views import APIView

from kbsearch.analytics.models import Click, Feedback
from kbsearch.api.parsers import MAX_JSON_DEPTH, DepthLimitedJSONParser, json_depth_exceeds

pytestmark = pytest.mark.django_db

# What the review sent: about 950 levels in about 2 KB.
DEEP_ARRAY = "[" * 950 + "]" * 950
DEEP_OBJECT = '{"a":' * 950 + "1" + "}" * 950


def nested(levels: int) -> object:
    """A list nested ``levels`` deep (levels >= 1)."""
    value: object = []
    for _ in range(levels - 1):
        value = [value]
    return value


def api_views() -> list[type[APIView]]:
    """Every DRF view routed under /api/, found by walking the URLconf."""
    found = []

    def walk(patterns, prefix: str) -> None:
        for pattern in patterns:
            route = prefix + str(pattern.pattern)
            if isinstance(pattern, URLResolver):
                walk(pattern.url_patterns, route)
            elif isinstance(pattern, URLPattern) and route.startswith("api/"):
                view_class = getattr(pattern.callback, "cls", None)
                if view_class is not None and issubclass(view_class, APIView):
                    found.append(view_class)

    walk(get_resolver().url_patterns, "")
    return found


@pytest.fixture
def json_endpoints(admin_client) -> list[str]:
    """Paths of the operations that take a JSON body, read from the served OpenAPI schema."""
    schema = admin_client.get("/api/schema/?format=json").json()
    return sorted(
        path
        for path, operations in schema["paths"].items()
        for operation in operations.values()
        if "application/json" in operation.get("requestBody", {}).get("content", {})
    )


def test_the_endpoints_taking_json_are_feedback_and_clicks(json_endpoints):
    # If this list grows, the parametrized test below covers the new endpoint through the schema.
    assert json_endpoints == ["/api/v1/clicks", "/api/v1/feedback"]


@pytest.mark.parametrize("body", [DEEP_ARRAY, DEEP_OBJECT], ids=["array", "object"])
def test_a_deeply_nested_body_is_a_400_with_a_message_on_every_json_endpoint(clients, json_endpoints, body):
    for path in json_endpoints:
        response = clients["alice"].post(path, body, content_type="application/json")
        assert response.status_code == 400, (path, response.status_code)
        assert response.json() == {
            "detail": f"JSON parse error - the body nests deeper than {MAX_JSON_DEPTH} levels.",
            "code": "parse_error",
        }
    assert not Feedback.objects.exists() and not Click.objects.exists()


def test_a_deep_body_sent_to_an_endpoint_that_reads_no_body_changes_nothing(clients, kb):
    search = clients["alice"].generic(
        "GET", "/api/v1/search?q=VPN", DEEP_ARRAY, content_type="application/json"
    )
    document = clients["alice"].generic(
        "GET", f"/api/v1/documents/{kb['public/vpn.en.md'].pk}", DEEP_OBJECT, content_type="application/json"
    )
    assert search.status_code == 200 and search.json()["results"]
    assert document.status_code == 200 and document.json()["title"] == "VPN setup"


def test_the_limit_is_on_nesting_not_on_brackets_inside_strings(clients, kb):
    search = clients["alice"].get("/api/v1/search", {"q": "VPN"}).json()
    document_id = kb["public/vpn.en.md"].pk
    at_limit = {"document_id": document_id, "value": "up", "query_id": search["query_id"], "extra": nested(MAX_JSON_DEPTH - 1)}
    over_limit = {**at_limit, "extra": nested(MAX_JSON_DEPTH)}
    accepted = clients["alice"].post("/api/v1/feedback", json.dumps(at_limit), content_type="application/json")
    refused = clients["alice"].post("/api/v1/feedback", json.dumps(over_limit), content_type="application/json")
    assert accepted.status_code == 201, accepted.content  # unknown fields are ignored, as before
    assert refused.status_code == 400 and refused.json()["code"] == "parse_error"
    brackets = {"document_id": document_id, "rank": 1, "query": "[{" * 300 + 'VPN \\" ]}'}
    clicked = clients["alice"].post("/api/v1/clicks", json.dumps(brackets), content_type="application/json")
    assert clicked.status_code == 201, clicked.content


def test_malformed_json_still_gets_the_parsers_own_message(clients, kb):
    response = clients["alice"].post("/api/v1/feedback", '{"document_id": 1,', content_type="application/json")
    assert response.status_code == 400 and response.json()["code"] == "parse_error"
    assert "deeper" not in response.json()["detail"]


def test_every_api_view_parses_with_the_depth_limited_parser():
    assert api_settings.DEFAULT_PARSER_CLASSES == [DepthLimitedJSONParser]
    views = api_views()
    assert len(views) >= 6  # search, documents, feedback, clicks, schema, docs
    for view_class in views:
        parsers = [parser_class() for parser_class in view_class.parser_classes]
        assert parsers and all(isinstance(parser, DepthLimitedJSONParser) for parser in parsers), view_class


@pytest.mark.parametrize(
    ("text", "limit", "exceeds"),
    [
        ("[]", 1, False),
        ("[[]]", 1, True),
        ('{"a": {"b": [1, 2]}}', 3, False),
        ('{"a": {"b": [1, 2]}}', 2, True),
        ('["[[[[", "\\"[[[["]', 1, False),  # brackets inside strings, an escaped quote among them
        ("[]" * 1000, 1, False),  # wide, not deep
        ("]]]" + "[" * 50, 3, False),  # malformed: left for the decoder to report
    ],
)
def test_depth_counting(text, limit, exceeds):
    assert json_depth_exceeds(text, limit) is exceeds
