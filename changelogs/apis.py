"""HTTP API for the catalog and changelogs. Thin: parse, call a selector or service, render."""

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from changelogs import selectors, services
from changelogs.content import ChangelogContentSerializer, content_validate
from changelogs.errors import ChangelogError
from changelogs.models import ChangelogKind, ChangelogStatus, Service
from releasegate.api import NewestFirstCursorPagination, cursor_page, error_responses, reject_unknown_fields
from releasegate.errors import InvalidInput, field_error

CONTENT_FIELDS = tuple(ChangelogContentSerializer().fields)


class DomainOutput(serializers.Serializer[Any]):
    slug = serializers.SlugField()
    name = serializers.CharField()
    owning_squad = serializers.CharField()


class ServiceOutput(serializers.Serializer[Any]):
    slug = serializers.SlugField()
    name = serializers.CharField()
    domain = serializers.SlugField(source="domain.slug")
    repository_url = serializers.CharField()


class JourneyOutput(serializers.Serializer[Any]):
    journey_id = serializers.CharField()
    name = serializers.CharField()
    domain = serializers.SlugField(source="domain.slug")
    critical = serializers.BooleanField()


class DomainListApi(APIView):
    @extend_schema(operation_id="domains_list", responses={200: DomainOutput(many=True), **error_responses(401)})
    def get(self, request: Request) -> Response:
        return Response(DomainOutput(selectors.domain_list(), many=True).data)


class ServiceListApi(APIView):
    @extend_schema(operation_id="services_list", responses={200: ServiceOutput(many=True), **error_responses(401)})
    def get(self, request: Request) -> Response:
        return Response(ServiceOutput(selectors.service_list(), many=True).data)


class JourneyListApi(APIView):
    class FilterSerializer(serializers.Serializer[Any]):
        domain = serializers.SlugField(required=False)
        critical = serializers.BooleanField(required=False, allow_null=True, default=None)

    @extend_schema(
        operation_id="journeys_list",
        parameters=[FilterSerializer],
        responses={200: JourneyOutput(many=True), **error_responses(400, 401)},
    )
    def get(self, request: Request) -> Response:
        filters = self.FilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        journeys = selectors.journey_list(**filters.validated_data)
        return Response(JourneyOutput(journeys, many=True).data)


class RevisionSummaryOutput(serializers.Serializer[Any]):
    number = serializers.IntegerField()
    status = serializers.CharField()
    content_hash = serializers.CharField(help_text="SHA-256 of the canonical content; empty while a draft.")
    created_at = serializers.DateTimeField()
    submitted_at = serializers.DateTimeField(allow_null=True)


class RevisionOutput(RevisionSummaryOutput):
    submitted_by = serializers.CharField(source="submitted_by.username", allow_null=True, default=None)
    content = ChangelogContentSerializer()


class ChangelogOutput(serializers.Serializer[Any]):
    id = serializers.UUIDField()
    service = serializers.SlugField(source="service.slug")
    domain = serializers.SlugField(source="service.domain.slug")
    kind = serializers.ChoiceField(choices=ChangelogKind.choices)
    status = serializers.ChoiceField(choices=ChangelogStatus.choices)
    created_by = serializers.CharField(source="created_by.username")
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()
    revision = RevisionOutput(source="current_revision", help_text="The current revision.")


class ChangelogCreateInput(ChangelogContentSerializer):
    service = serializers.SlugField(help_text="Slug of a service the caller may act on.")
    kind = serializers.ChoiceField(choices=ChangelogKind.choices)


class ChangelogListCreateApi(APIView):
    class FilterSerializer(serializers.Serializer[Any]):
        service = serializers.SlugField(required=False)
        domain = serializers.SlugField(required=False)
        kind = serializers.ChoiceField(choices=ChangelogKind.choices, required=False)
        status = serializers.ChoiceField(choices=ChangelogStatus.choices, required=False)
        created_after = serializers.DateTimeField(required=False, help_text="Created at or after (ISO 8601).")
        created_before = serializers.DateTimeField(required=False, help_text="Created before (ISO 8601).")

    @extend_schema(
        operation_id="changelogs_list",
        parameters=[FilterSerializer],
        responses={200: cursor_page("ChangelogPage", ChangelogOutput(many=True)), **error_responses(400, 401)},
    )
    def get(self, request: Request) -> Response:
        filters = self.FilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        changelogs = selectors.changelog_list(user=request.user, **filters.validated_data)
        paginator = NewestFirstCursorPagination()
        page = paginator.paginate_queryset(changelogs, request, view=self)
        return paginator.get_paginated_response(ChangelogOutput(page, many=True).data)

    @extend_schema(
        operation_id="changelogs_create",
        request=ChangelogCreateInput,
        responses={201: ChangelogOutput, **error_responses(400, 401)},
    )
    def post(self, request: Request) -> Response:
        reject_unknown_fields(request.data, ("service", "kind", *CONTENT_FIELDS))
        # Kind first: the content rules depend on it.
        kind = request.data.get("kind")
        if kind not in ChangelogKind.values:
            raise InvalidInput(
                ChangelogError.INVALID_KIND,
                "kind must be 'train' or 'hotfix'.",
                fields={"kind": [field_error(ChangelogError.INVALID_KIND, "Must be 'train' or 'hotfix'.")]},
            )
        service = _managed_service(request.user, request.data.get("service"))
        content = content_validate(kind=kind, content={k: v for k, v in request.data.items() if k in CONTENT_FIELDS})
        changelog = services.changelog_create(acting_user=request.user, service=service, kind=kind, content=content)
        return Response(ChangelogOutput(changelog).data, status=status.HTTP_201_CREATED)


def _managed_service(user: Any, slug: Any) -> Service:
    """The service if the caller may act on it. An unknown service and one the caller may not
    act on give the same answer, so a token cannot probe which services exist."""
    service = selectors.service_list_managed(user=user).filter(slug=slug).first() if isinstance(slug, str) else None
    if service is None:
        message = "No such service, or the caller may not act on it."
        raise InvalidInput(
            ChangelogError.UNKNOWN_SERVICE,
            message,
            fields={"service": [field_error(ChangelogError.UNKNOWN_SERVICE, message)]},
        )
    return service


class ChangelogDetailApi(APIView):
    @extend_schema(operation_id="changelogs_retrieve", responses={200: ChangelogOutput, **error_responses(401, 404)})
    def get(self, request: Request, changelog_id: str) -> Response:
        changelog = selectors.changelog_get(user=request.user, changelog_id=changelog_id)
        return Response(ChangelogOutput(changelog).data)

    @extend_schema(
        operation_id="changelogs_edit",
        request=ChangelogContentSerializer(partial=True),
        responses={200: ChangelogOutput, **error_responses(400, 401, 403, 404, 409)},
        description=(
            "Replace top-level content fields. A draft is edited in place; a submitted changelog gets "
            "a new draft revision (earlier approvals no longer count). The whole content is validated."
        ),
    )
    def patch(self, request: Request, changelog_id: str) -> Response:
        changelog = selectors.changelog_get(user=request.user, changelog_id=changelog_id, for_update=True)
        reject_unknown_fields(request.data, CONTENT_FIELDS)
        merged = {**selectors.revision_content(changelog=changelog), **request.data}
        content = content_validate(kind=changelog.kind, content=merged)
        services.changelog_edit(acting_user=request.user, changelog=changelog, content=content)
        return Response(ChangelogOutput(changelog).data)


class ChangelogSubmitApi(APIView):
    @extend_schema(
        operation_id="changelogs_submit",
        request=None,
        responses={200: ChangelogOutput, **error_responses(401, 403, 404, 409)},
        description="Freeze the current draft revision and record the SHA-256 of its canonical content.",
    )
    def post(self, request: Request, changelog_id: str) -> Response:
        changelog = selectors.changelog_get(user=request.user, changelog_id=changelog_id, for_update=True)
        services.changelog_submit(acting_user=request.user, changelog=changelog)
        return Response(ChangelogOutput(changelog).data)


class RevisionListApi(APIView):
    @extend_schema(
        operation_id="changelogs_revisions_list",
        responses={200: RevisionSummaryOutput(many=True), **error_responses(401, 404)},
    )
    def get(self, request: Request, changelog_id: str) -> Response:
        changelog = selectors.changelog_get(user=request.user, changelog_id=changelog_id)
        return Response(RevisionSummaryOutput(selectors.revision_list(changelog=changelog), many=True).data)


class RevisionDetailApi(APIView):
    @extend_schema(
        operation_id="changelogs_revisions_retrieve",
        responses={200: RevisionOutput, **error_responses(401, 404)},
    )
    def get(self, request: Request, changelog_id: str, number: int) -> Response:
        changelog = selectors.changelog_get(user=request.user, changelog_id=changelog_id)
        return Response(RevisionOutput(selectors.revision_get(changelog=changelog, number=number)).data)
