"""``POST /api/v1/feedback`` and ``POST /api/v1/clicks``: judgements on results the caller may see."""
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.parsers import JSONParser
from rest_framework.response import Response
from rest_framework.views import APIView

from kbsearch.analytics.models import Feedback
from kbsearch.analytics.services import click_record, feedback_record
from kbsearch.api.errors import error_responses
from kbsearch.api.fields import IdField, QueryTextField
from kbsearch.search.throttles import FeedbackRateThrottle

_VALUES = {"up": Feedback.Value.UP, "down": Feedback.Value.DOWN}
_QUERY_HELP = "The query the result came from; may be left out when `query_id` is given."
_QUERY_ID_HELP = "The `query_id` of the search response the result was on."
# Ranks beyond the deepest page the API serves cannot have been shown.
_MAX_RANK = 10_000


class FeedbackCreateApi(APIView):
    """Thumbs up or down on a (query, document) pair; voting again on the same pair replaces it."""

    throttle_classes = [FeedbackRateThrottle]
    parser_classes = [JSONParser]

    class InputSerializer(serializers.Serializer):
        document_id = IdField()
        value = serializers.ChoiceField(choices=sorted(_VALUES))
        query = QueryTextField(required=False, help_text=_QUERY_HELP)
        query_id = IdField(required=False, help_text=_QUERY_ID_HELP)
        rank = serializers.IntegerField(required=False, min_value=1, max_value=_MAX_RANK)

        class Meta:
            ref_name = "FeedbackInput"

    class OutputSerializer(serializers.Serializer):
        id = serializers.IntegerField()
        document_id = serializers.IntegerField()
        value = serializers.SerializerMethodField()
        query = serializers.CharField()
        query_id = serializers.IntegerField(source="query_log_id", allow_null=True)
        rank = serializers.IntegerField(allow_null=True)
        created_at = serializers.DateTimeField()

        class Meta:
            ref_name = "Feedback"

        def get_value(self, feedback) -> str:
            return "up" if feedback.value > 0 else "down"

    @extend_schema(
        tags=["feedback"],
        operation_id="feedback_create",
        request=InputSerializer,
        responses={
            201: OpenApiResponse(OutputSerializer, description="Recorded."),
            200: OpenApiResponse(OutputSerializer, description="Replaced an earlier vote on the same pair."),
            **error_responses(400, 401, 404, 429),
        },
    )
    def post(self, request):
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        feedback, created = feedback_record(
            user=request.user,
            document_id=data["document_id"],
            value=_VALUES[data["value"]],
            query=data.get("query"),
            query_id=data.get("query_id"),
            rank=data.get("rank"),
        )
        return Response(
            self.OutputSerializer(feedback).data, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK
        )


class ClickCreateApi(APIView):
    """A result was opened, at this rank. Opening it again from the same search counts once."""

    throttle_classes = [FeedbackRateThrottle]
    parser_classes = [JSONParser]

    class InputSerializer(serializers.Serializer):
        document_id = IdField()
        rank = serializers.IntegerField(min_value=1, max_value=_MAX_RANK)
        query = QueryTextField(required=False, help_text=_QUERY_HELP)
        query_id = IdField(required=False, help_text=_QUERY_ID_HELP)

        class Meta:
            ref_name = "ClickInput"

    class OutputSerializer(serializers.Serializer):
        id = serializers.IntegerField()
        document_id = serializers.IntegerField()
        rank = serializers.IntegerField()
        query = serializers.CharField()
        query_id = serializers.IntegerField(source="query_log_id", allow_null=True)
        created_at = serializers.DateTimeField()

        class Meta:
            ref_name = "Click"

    @extend_schema(
        tags=["feedback"],
        operation_id="click_create",
        request=InputSerializer,
        responses={
            201: OpenApiResponse(OutputSerializer, description="Recorded."),
            200: OpenApiResponse(OutputSerializer, description="Already recorded for this search."),
            **error_responses(400, 401, 404, 429),
        },
    )
    def post(self, request):
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        click, created = click_record(
            user=request.user,
            document_id=data["document_id"],
            rank=data["rank"],
            query=data.get("query"),
            query_id=data.get("query_id"),
        )
        return Response(
            self.OutputSerializer(click).data, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK
        )
