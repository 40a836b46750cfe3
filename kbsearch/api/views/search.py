"""``GET /api/v1/search``: ranked, highlighted hits and facets over what the caller may see."""
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from kbsearch.api.errors import error_responses
from kbsearch.api.fields import HighlightedHtmlField, PlaceField, QueryTextField, SourceSerializer
from kbsearch.documents.places import PLACE_VALUE_MAX
from kbsearch.search.pages import LANGUAGES, MAX_FILTER_VALUES, MAX_LIMIT, MAX_OFFSET, search_page_run
from kbsearch.search.throttles import SearchRateThrottle


class SearchResultSerializer(serializers.Serializer):
    document_id = serializers.IntegerField(source="document.pk")
    rank = serializers.IntegerField(help_text="1-based position in the whole ranking (offset included).")
    score = serializers.FloatField()
    title = serializers.CharField(source="document.title")
    title_html = HighlightedHtmlField(source="title")
    url = serializers.CharField(source="document.url", help_text="Link to the original.")
    source = SourceSerializer(source="document.source")
    place = PlaceField(source="document")
    language = serializers.CharField(source="document.language")
    updated_at = serializers.DateTimeField()
    snippet = serializers.CharField(source="snippet.text")
    snippet_html = HighlightedHtmlField(source="snippet")
    highlights = serializers.ListField(
        child=serializers.ListField(child=serializers.IntegerField(), min_length=2, max_length=2),
        source="snippet.spans",
        help_text="[start, end) code-point offsets of the matched terms in `snippet`.",
    )

    class Meta:
        ref_name = "SearchResult"


class FacetValueSerializer(serializers.Serializer):
    value = serializers.CharField(help_text="The value to pass back as a filter.")
    label = serializers.CharField()
    count = serializers.IntegerField(help_text="Matching documents you may see with this value.")

    class Meta:
        ref_name = "FacetValue"


class FacetsSerializer(serializers.Serializer):
    source = FacetValueSerializer(many=True)
    language = FacetValueSerializer(many=True)
    place = FacetValueSerializer(
        many=True,
        help_text="Where the documents live: a Confluence space, a SharePoint library or site pages, a file "
        "share's top folder. `value` is `<source key>:<place key>`, `label` the name people know it by.",
    )

    class Meta:
        ref_name = "Facets"



class SearchApi(APIView):
    """Search as the signed-in user. Hidden documents never appear: not in hits, totals or facets."""

    throttle_classes = [SearchRateThrottle]

    class InputSerializer(serializers.Serializer):
        q = QueryTextField()
        source = serializers.ListField(
            child=serializers.CharField(max_length=200),
            required=False,
            default=list,
            max_length=MAX_FILTER_VALUES,
            help_text="Only these sources (repeat the parameter for several). An unknown key is a 400 "
            "that lists the keys you can search.",
        )
        place = serializers.ListField(
            child=serializers.CharField(max_length=PLACE_VALUE_MAX),
            required=False,
            default=list,
            max_length=MAX_FILTER_VALUES,
            help_text="Only documents in these places (repeat the parameter for several; any of them): a `value` "
            "of the `place` facet, `<source key>:<place key>`. A place you can see no document in is a 400.",
        )
        lang = serializers.ListField(
            child=serializers.ChoiceField(
                choices=LANGUAGES,
                error_messages={"invalid_choice": f"unknown language {{input!r}}; use one of: {', '.join(LANGUAGES)}"},
            ),
            required=False,
            default=list,
            max_length=len(LANGUAGES),
            help_text="Only these document languages (repeat the parameter for several).",
        )
        updated_after = serializers.DateTimeField(
            required=False, default=None, help_text="ISO 8601; only documents updated after this time."
        )
        limit = serializers.IntegerField(min_value=1, max_value=MAX_LIMIT, default=10)
        offset = serializers.IntegerField(
            min_value=0,
            max_value=MAX_OFFSET,
            default=0,
            help_text=f"Results to skip. Past the last result the page is empty (200); above {MAX_OFFSET}, a 400.",
        )

        class Meta:
            ref_name = "SearchInput"

    class OutputSerializer(serializers.Serializer):
        query_id = serializers.IntegerField(
            source="query_log.pk", help_text="Send back with feedback and clicks on these results."
        )
        query = serializers.CharField(help_text="The query as searched, after cleaning.")
        total = serializers.IntegerField(help_text="Matching documents you may see (at most the ranked pool).")
        limit = serializers.IntegerField()
        offset = serializers.IntegerField()
        next_offset = serializers.IntegerField(allow_null=True, help_text="Offset of the next page; null if none.")
        exhausted = serializers.BooleanField(help_text="No results exist beyond this page.")
        took_ms = serializers.FloatField(help_text="Search time, query encoding included.")
        results = SearchResultSerializer(source="items", many=True)
        facets = FacetsSerializer()

        class Meta:
            ref_name = "SearchOutput"

    @extend_schema(
        tags=["search"],
        operation_id="search",
        parameters=[InputSerializer],
        responses={200: OutputSerializer, **error_responses(400, 401, 429)},
    )
    def get(self, request):
        serializer = self.InputSerializer(data=request.query_params)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        page = search_page_run(
            user=request.user,
            query=data["q"],
            channel="api",
            sources=data["source"],
            languages=data["lang"],
            updated_after=data["updated_after"],
            places=data["place"],
            limit=data["limit"],
            offset=data["offset"],
        )
        return Response(self.OutputSerializer(page).data)
