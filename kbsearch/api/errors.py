"""One error shape for every API failure: ``{"detail": message, "code": code[, "errors": {...}]}``.

Domain errors become 4xx here rather than in each view: a bad query or filter is a 400 with the
validator's message, a foreign ``query_id`` a 400, and a missing or hidden document the same 404.
Anything unexpected is left to Django (a logged 500), which the tests and the schema fuzzing
treat as a bug.
"""
from drf_spectacular.utils import OpenApiResponse
from rest_framework import serializers, status
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response
from rest_framework.views import exception_handler

from kbsearch.analytics.selectors import UnknownQueryLog
from kbsearch.text.query import InvalidQuery


class ErrorSerializer(serializers.Serializer):
    detail = serializers.CharField(help_text="What went wrong, for people.")
    code = serializers.CharField(help_text="A stable identifier, for programs.")
    errors = serializers.DictField(
        required=False, help_text="Messages by input field, when the request failed validation."
    )

    class Meta:
        ref_name = "Error"


def error_responses(*codes: int) -> dict[int, OpenApiResponse]:
    """Schema entries for the error statuses an endpoint can answer with."""
    descriptions = {
        400: "Invalid input; `detail` says what to change.",
        401: "Missing or invalid credentials.",
        404: "No such document, or one you may not see.",
        429: "Rate limit reached; retry after the `Retry-After` seconds.",
    }
    return {code: OpenApiResponse(ErrorSerializer, description=descriptions[code]) for code in codes}


def _clean(text: str) -> str:
    # A JSON body may carry lone surrogates that an echoed message would fail to encode as UTF-8.
    return str(text).encode("utf-8", "replace").decode("utf-8")


def _flatten(errors, prefix: str = "") -> list[str]:
    if isinstance(errors, dict):
        # List items are reported by index ({0: [...]}); the field name alone reads better.
        return [
            line
            for key, value in errors.items()
            for line in _flatten(value, prefix if str(key).isdigit() else f"{prefix}{key}.")
        ]
    if isinstance(errors, list):
        return [line for item in errors for line in _flatten(item, prefix)]
    label = prefix.rstrip(".")
    return [f"{label}: {_clean(errors)}" if label and label != "non_field_errors" else _clean(errors)]


def _sanitized(errors):
    if isinstance(errors, dict):
        return {_clean(key): _sanitized(value) for key, value in errors.items()}
    if isinstance(errors, list):
        return [_sanitized(item) for item in errors]
    return _clean(errors)


def api_exception_handler(exc, context):
    """REST framework's EXCEPTION_HANDLER: domain errors to 4xx, every error to the one shape."""
    if isinstance(exc, InvalidQuery):
        return Response({"detail": _clean(exc), "code": "invalid_query"}, status=status.HTTP_400_BAD_REQUEST)
    if isinstance(exc, UnknownQueryLog):
        return Response({"detail": _clean(exc), "code": "unknown_query_id"}, status=status.HTTP_400_BAD_REQUEST)
    response = exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, ValidationError) and not (isinstance(response.data, dict) and "detail" in response.data):
        response.data = {
            "detail": "; ".join(_flatten(response.data)) or "invalid input",
            "code": "invalid",
            "errors": _sanitized(response.data if isinstance(response.data, dict) else {"input": response.data}),
        }
        return response
    data = response.data if isinstance(response.data, dict) else {"detail": response.data}
    detail = data.get("detail", "")
    code = getattr(detail, "code", None) or getattr(exc, "default_code", "error")
    response.data = {"detail": _clean(detail), "code": str(code)}
    return response
