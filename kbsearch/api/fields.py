"""Serializer fields shared by the API views."""
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from kbsearch.documents.ids import MAX_ID
from kbsearch.documents.places import document_place_value
from kbsearch.text.highlight import Highlighted
from kbsearch.text.query import MAX_QUERY_CHARS


class QueryTextField(serializers.CharField):
    """Raw query text; cleaning and its error messages are ``clean_query``'s job, not DRF's.

    DRF would reject control characters such as NUL outright, while the search core turns every
    control character into a space, so both are accepted here and treated alike.
    """

    def __init__(self, **kwargs) -> None:
        kwargs.setdefault("allow_blank", True)
        kwargs.setdefault("trim_whitespace", False)
        kwargs.setdefault(
            "help_text", f"Query text, 1-{MAX_QUERY_CHARS} characters; control characters count as spaces."
        )
        super().__init__(**kwargs)
        self.validators = [v for v in self.validators if type(v).__name__ != "ProhibitNullCharactersValidator"]


@extend_schema_field(OpenApiTypes.STR)
class HighlightedHtmlField(serializers.Field):
    """Highlighted text as HTML: the text escaped, matched terms wrapped in ``<mark>``."""

    def __init__(self, **kwargs) -> None:
        kwargs["read_only"] = True
        super().__init__(**kwargs)

    def to_representation(self, value: Highlighted) -> str:
        return value.html()


class IdField(serializers.IntegerField):
    def __init__(self, **kwargs) -> None:
        kwargs.setdefault("min_value", 1)
        kwargs.setdefault("max_value", MAX_ID)
        super().__init__(**kwargs)


class SourceSerializer(serializers.Serializer):
    key = serializers.CharField()
    name = serializers.CharField()

    class Meta:
        ref_name = "Source"


class PlaceSerializer(serializers.Serializer):
    value = serializers.CharField(help_text="`<source key>:<place key>`, as the `place` filter takes it.")
    label = serializers.CharField()

    class Meta:
        ref_name = "Place"


@extend_schema_field(PlaceSerializer(allow_null=True))
class PlaceField(serializers.Field):
    """A document's place (a space, a library, a top folder), or null when it is in none."""

    def __init__(self, **kwargs) -> None:
        kwargs["read_only"] = True
        kwargs.setdefault("source", "*")
        kwargs.setdefault("help_text", "Where the document lives in its source; null when nowhere in particular.")
        super().__init__(**kwargs)

    def to_representation(self, document) -> dict | None:
        if not document.place_key:
            return None
        return {"value": document_place_value(document), "label": document.place_label or document.place_key}
