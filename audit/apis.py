"""The auditor's API: checkpoints, the public key, events, and proofs that verify offline with
``python -m tlog.verifier``. Auditors and administrators only."""

import json
from typing import Any

from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.pagination import CursorPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from audit import selectors
from audit.events import format_time
from audit.signing import verifier_key
from audit.witnessing import note_with_cosignatures
from core.actors import actor_of
from core.api import InstantField, QueryFilters, cursor_page, error_responses

_TEXT = {(200, "text/plain"): OpenApiResponse(OpenApiTypes.STR)}


def _text(body: str) -> HttpResponse:
    return HttpResponse(body, content_type="text/plain; charset=utf-8")


class AuditorApi(APIView):
    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)
        selectors.auditor_require(user=actor_of(request))


class CheckpointLatestApi(AuditorApi):
    @extend_schema(
        operation_id="audit_checkpoint_latest",
        responses={**_TEXT, **error_responses(401, 403, 404)},
        description="The latest signed checkpoint, a C2SP tlog-checkpoint signed note, with the witnesses' "
        "tlog-cosignature lines.",
    )
    def get(self, request: Request) -> HttpResponse:
        return _text(note_with_cosignatures(selectors.checkpoint_latest()))


class CheckpointAtApi(AuditorApi):
    @extend_schema(
        operation_id="audit_checkpoint_at",
        responses={**_TEXT, **error_responses(401, 403, 404)},
        description="The signed checkpoint at a tree size.",
    )
    def get(self, request: Request, tree_size: int) -> HttpResponse:
        return _text(note_with_cosignatures(selectors.checkpoint_at(tree_size=tree_size)))


class PublicKeyApi(AuditorApi):
    @extend_schema(
        operation_id="audit_public_key",
        responses={**_TEXT, **error_responses(401, 403)},
        description="The checkpoint verifier key (name+keyid+base64 key), for `python -m tlog.verifier --key`.",
    )
    def get(self, request: Request) -> HttpResponse:
        return _text(verifier_key() + "\n")


class LeafTimeField(serializers.DateTimeField):
    """The time exactly as the leaf bytes have it (six decimals, also when they are zeros)."""

    def to_representation(self, value: Any) -> str:
        return format_time(value)


class EventOutput(serializers.Serializer[Any]):
    id = serializers.IntegerField()
    time = LeafTimeField(source="created_at", help_text="Database clock, UTC, as in the leaf bytes.")
    actor = serializers.CharField()
    actor_id = serializers.IntegerField(allow_null=True)
    action = serializers.CharField()
    target_type = serializers.CharField()
    target_id = serializers.CharField()
    data = serializers.SerializerMethodField()  # type: ignore[assignment]  # a field named like Serializer.data; DRF's metaclass moves it out of the class
    request_id = serializers.CharField()
    leaf_index = serializers.SerializerMethodField(help_text="Position in the Merkle log; null until sequenced.")

    def get_data(self, event: Any) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(event.data)
        return data

    def get_leaf_index(self, event: Any) -> int | None:
        leaf = getattr(event, "leaf", None)
        return leaf.leaf_index if leaf is not None else None


class LogOrderPagination(CursorPagination):
    page_size = 100
    max_page_size = 1000
    page_size_query_param = "limit"
    ordering = ("id",)


class EventListApi(AuditorApi):
    class FilterSerializer(QueryFilters):
        after = InstantField(required=False, help_text="At or after this time.")
        before = InstantField(required=False, help_text="Before this time.")
        target_type = serializers.CharField(required=False, help_text="e.g. changelogs.changelog")
        target_id = serializers.CharField(required=False)
        actor = serializers.CharField(required=False, help_text='e.g. "service_account:svc-payments-ci"')
        action = serializers.CharField(required=False, help_text='e.g. "changelog:submitted"')

    @extend_schema(
        operation_id="audit_events_list",
        parameters=[FilterSerializer],
        responses={200: cursor_page("AuditEventPage", EventOutput(many=True)), **error_responses(400, 401, 403)},
    )
    def get(self, request: Request) -> Response:
        filters = self.FilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        paginator = LogOrderPagination()
        page = paginator.paginate_queryset(selectors.event_list(**filters.validated_data), request, view=self)
        return paginator.get_paginated_response(EventOutput(page, many=True).data)


class InclusionProofOutput(serializers.Serializer[Any]):
    leaf_index = serializers.IntegerField()
    tree_size = serializers.IntegerField()
    leaf_hash = serializers.CharField(help_text="Hex SHA-256(0x00 || event).")
    proof = serializers.ListField(child=serializers.CharField(), help_text="Hex hashes, RFC 9162 order.")
    event = serializers.CharField(help_text="The canonical event bytes the leaf hash covers (UTF-8 JSON).")


class InclusionProofApi(AuditorApi):
    class QuerySerializer(QueryFilters):
        tree_size = serializers.IntegerField(required=False, min_value=1, help_text="Default: the latest checkpoint.")

    @extend_schema(
        operation_id="audit_events_inclusion_proof",
        parameters=[QuerySerializer],
        responses={200: InclusionProofOutput, **error_responses(400, 401, 403, 404, 409)},
        description=(
            "Proof that the event is in the log at a signed tree size. Save it as a file and check it "
            "with `python -m tlog.verifier inclusion --key KEY --checkpoint CHECKPOINT FILE`."
        ),
    )
    def get(self, request: Request, event_id: int) -> Response:
        query = self.QuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        found = selectors.inclusion_proof_get(event_id=event_id, tree_size=query.validated_data.get("tree_size"))
        return Response(
            InclusionProofOutput(
                {
                    "leaf_index": found.leaf_index,
                    "tree_size": found.tree_size,
                    "leaf_hash": found.leaf_hash.hex(),
                    "proof": [node.hex() for node in found.proof],
                    "event": selectors.event_canonical_bytes(found.event).decode("utf-8"),
                }
            ).data
        )


class ConsistencyProofOutput(serializers.Serializer[Any]):
    first_size = serializers.IntegerField()
    second_size = serializers.IntegerField()
    proof = serializers.ListField(child=serializers.CharField(), help_text="Hex hashes, RFC 9162 order.")


class ConsistencyProofApi(AuditorApi):
    class QuerySerializer(QueryFilters):
        first_size = serializers.IntegerField(min_value=1)
        second_size = serializers.IntegerField(min_value=1)

    @extend_schema(
        operation_id="audit_consistency_proof",
        parameters=[QuerySerializer],
        responses={200: ConsistencyProofOutput, **error_responses(400, 401, 403, 404)},
        description=(
            "Proof that the log at second_size extends the log at first_size (both signed checkpoints). "
            "Check it with `python -m tlog.verifier consistency --key KEY --old CP1 --new CP2 FILE`."
        ),
    )
    def get(self, request: Request) -> Response:
        query = self.QuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        sizes = query.validated_data
        proof = selectors.consistency_proof_get(first_size=sizes["first_size"], second_size=sizes["second_size"])
        return Response(ConsistencyProofOutput({**sizes, "proof": [node.hex() for node in proof]}).data)
