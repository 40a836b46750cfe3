"""``GET /api/v1/documents/{id}``: one document's metadata and text, if the caller may see it."""
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from kbsearch.api.errors import error_responses
from kbsearch.api.fields import PlaceField, SourceSerializer
from kbsearch.documents.selectors import DocumentNotFound, access_document_by_id
from kbsearch.search.throttles import DocumentRateThrottle


class DocumentDetailApi(APIView):
    """A hidden document answers exactly like a missing one (404), so existence does not leak."""

    throttle_classes = [DocumentRateThrottle]

    class OutputSerializer(serializers.Serializer):
        id = serializers.IntegerField()
        title = serializers.CharField()
        url = serializers.CharField(help_text="Link to the original.")
        source = SourceSerializer()
        place = PlaceField()
        external_id = serializers.CharField(help_text="The document's id in its source (a path on file shares).")
        language = serializers.CharField()
        version = serializers.IntegerField(help_text="Increases whenever the content changes.")
        updated_at = serializers.SerializerMethodField()
        text = serializers.CharField(source="body")

        class Meta:
            ref_name = "Document"

        def get_updated_at(self, document) -> OpenApiTypes.DATETIME:
            value = document.source_updated_at or document.updated_at
            return serializers.DateTimeField().to_representation(value)

    @extend_schema(
        tags=["documents"],
        operation_id="document_detail",
        parameters=[OpenApiParameter("document_id", OpenApiTypes.INT, OpenApiParameter.PATH)],
        responses={200: OutputSerializer, **error_responses(401, 404, 429)},
    )
    def get(self, request, document_id: str):
        # The route takes any text so that malformed ids get this API's JSON 404, not an HTML page.
        try:
            parsed = int(document_id)
        except ValueError:
            raise DocumentNotFound() from None
        document = access_document_by_id(parsed, request.user)
        return Response(self.OutputSerializer(document).data)
