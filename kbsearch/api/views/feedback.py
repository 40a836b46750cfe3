"""``POST /api/v1/feedback`` and ``POST /api/v1/clicks``: judgements on results the caller may see.

Both endpoints take a document, the search it came from (``query_id`` or the query text) and a
rank, record them through a service as the caller, and answer 201 for a new record or 200 when the
service kept an earlier one. That flow lives once in ``_JudgementCreateApi``; each endpoint
brings its own fields, its service call and its OpenAPI description.
"""
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import serializers, status
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


# The result judged: a document and the search it was shown by. (No docstrings on these serializers:
# drf-spectacular would publish them as the schemas' descriptions.)
class _JudgementInputSerializer(serializers.Serializer):
    document_id = IdField()
    query = QueryTextField(required=False, help_text=_QUERY_HELP)
    query_id = IdField(required=False, help_text=_QUERY_ID_HELP)


class _JudgementOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    document_id = serializers.IntegerField()
    query = serializers.CharField()
    query_id = serializers.IntegerField(source="query_log_id", allow_null=True)
    created_at = serializers.DateTimeField()


def _judgement_schema(*, operation_id: str, input_serializer, output_serializer, repeated: str):
    return extend_schema(
        tags=["feedback"],
        operation_id=operation_id,
        request=input_serializer,
        responses={
            201: OpenApiResponse(output_serializer, description="Recorded."),
            200: OpenApiResponse(output_serializer, description=repeated),
            **error_responses(400, 401, 404, 429),
        },
    )


class _JudgementCreateApi(APIView):
    """Validate, record as the caller, answer 201 when recorded and 200 when an earlier one was kept."""

    # Feedback and clicks share one bucket (see kbsearch.search.throttles).
    throttle_classes = [FeedbackRateThrottle]
    InputSerializer: type[serializers.Serializer]
    OutputSerializer: type[serializers.Serializer]

    def record(self, *, user, data: dict) -> tuple[object, bool]:
        """Call the service; returns (the record, whether it was created)."""
        raise NotImplementedError

    def post(self, request):
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        record, created = self.record(user=request.user, data=serializer.validated_data)
        return Response(
            self.OutputSerializer(record).data, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK
        )


class _FeedbackInputSerializer(_JudgementInputSerializer):
    value = serializers.ChoiceField(choices=sorted(_VALUES))
    rank = serializers.IntegerField(required=False, min_value=1, max_value=_MAX_RANK)

    class Meta:
        ref_name = "FeedbackInput"


class _FeedbackOutputSerializer(_JudgementOutputSerializer):
    value = serializers.SerializerMethodField()
    rank = serializers.IntegerField(allow_null=True)

    class Meta:
        ref_name = "Feedback"

    def get_value(self, feedback) -> str:
        return "up" if feedback.value > 0 else "down"


@extend_schema_view(
    post=_judgement_schema(
        operation_id="feedback_create",
        input_serializer=_FeedbackInputSerializer,
        output_serializer=_FeedbackOutputSerializer,
        repeated="Replaced an earlier vote on the same pair.",
    )
)
class FeedbackCreateApi(_JudgementCreateApi):
    """Thumbs up or down on a (query, document) pair; voting again on the same pair replaces it."""

    InputSerializer = _FeedbackInputSerializer
    OutputSerializer = _FeedbackOutputSerializer

    def record(self, *, user, data: dict):
        return feedback_record(
            user=user,
            document_id=data["document_id"],
            value=_VALUES[data["value"]],
            query=data.get("query"),
            query_id=data.get("query_id"),
            rank=data.get("rank"),
        )


class _ClickInputSerializer(_JudgementInputSerializer):
    rank = serializers.IntegerField(min_value=1, max_value=_MAX_RANK)

    class Meta:
        ref_name = "ClickInput"


class _ClickOutputSerializer(_JudgementOutputSerializer):
    rank = serializers.IntegerField()

    class Meta:
        ref_name = "Click"


@extend_schema_view(
    post=_judgement_schema(
        operation_id="click_create",
        input_serializer=_ClickInputSerializer,
        output_serializer=_ClickOutputSerializer,
        repeated="Already recorded for this search.",
    )
)
class ClickCreateApi(_JudgementCreateApi):
    """A result was opened, at this rank. Opening it again from the same search counts once."""

    InputSerializer = _ClickInputSerializer
    OutputSerializer = _ClickOutputSerializer

    def record(self, *, user, data: dict):
        return click_record(
            user=user,
            document_id=data["document_id"],
            rank=data["rank"],
            query=data.get("query"),
            query_id=data.get("query_id"),
        )
