"""HTTP API for the catalog and changelogs. Thin: parse, call a selector or service, render."""

import base64
import html
import re
from typing import Any

from django.conf import settings
from django.http import HttpResponse
from django.http.multipartparser import MultiPartParser as DjangoMultiPartParser
from django.http.multipartparser import MultiPartParserError
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import ParseError
from rest_framework.parsers import DataAndFiles, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from changelogs import parsers, selectors, services
from changelogs.content import ChangelogContentSerializer
from changelogs.content_rules import digest_validator
from changelogs.errors import ChangelogError
from changelogs.files import file_name_problem
from changelogs.models import ChangelogKind, ChangelogStatus, EvidenceKind, Service, Verdict
from core.actors import ActingUser, actor_of
from core.api import (
    InstantField,
    NewestFirstCursorPagination,
    QueryFilters,
    StrictInput,
    checked,
    cursor_page,
    error_responses,
)
from core.errors import InvalidInput, PayloadTooLarge, field_error, reject_unknown_fields

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
    class FilterSerializer(QueryFilters):
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
    write_scope = "changelogs"  # the API token scope its writes need (releasegate.tokens)

    class FilterSerializer(QueryFilters):
        service = serializers.SlugField(required=False)
        domain = serializers.SlugField(required=False)
        kind = serializers.ChoiceField(choices=ChangelogKind.choices, required=False)
        status = serializers.ChoiceField(choices=ChangelogStatus.choices, required=False)
        created_after = InstantField(required=False, help_text="Created at or after (ISO 8601).")
        created_before = InstantField(required=False, help_text="Created before (ISO 8601).")

    @extend_schema(
        operation_id="changelogs_list",
        parameters=[FilterSerializer],
        responses={200: cursor_page("ChangelogPage", ChangelogOutput(many=True)), **error_responses(400, 401)},
    )
    def get(self, request: Request) -> Response:
        filters = self.FilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        changelogs = selectors.changelog_list(user=actor_of(request), **filters.validated_data)
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
        service = _managed_service(actor_of(request), request.data.get("service"))
        content = {k: v for k, v in request.data.items() if k in CONTENT_FIELDS}
        changelog = services.changelog_create(
            acting_user=actor_of(request), service=service, kind=kind, content=content
        )
        return Response(ChangelogOutput(changelog).data, status=status.HTTP_201_CREATED)


_SLUG = re.compile(r"[-a-zA-Z0-9_]+")


def _managed_service(user: ActingUser, slug: Any) -> Service:
    """The service if the caller may act on it. An unknown service and one the caller may not
    act on give the same answer, so a token cannot probe which services exist."""
    # Only a slug can name a service; anything else (a NUL character, say, which PostgreSQL
    # text cannot even hold) is unknown without asking the database.
    is_slug = isinstance(slug, str) and _SLUG.fullmatch(slug) is not None
    service = selectors.service_list_managed(user=user).filter(slug=slug).first() if is_slug else None
    if service is None:
        message = "No such service, or the caller may not act on it."
        raise InvalidInput.on_field("service", ChangelogError.UNKNOWN_SERVICE, message)
    return service


class ChangelogDetailApi(APIView):
    write_scope = "changelogs"  # the API token scope its writes need (releasegate.tokens)

    @extend_schema(operation_id="changelogs_retrieve", responses={200: ChangelogOutput, **error_responses(401, 404)})
    def get(self, request: Request, changelog_id: str) -> Response:
        changelog = selectors.changelog_get(user=actor_of(request), changelog_id=changelog_id)
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
        changelog = selectors.changelog_get(user=actor_of(request), changelog_id=changelog_id)
        services.changelog_edit(acting_user=actor_of(request), changelog=changelog, changes=request.data)
        return Response(ChangelogOutput(changelog).data)


class RevisionListApi(APIView):
    @extend_schema(
        operation_id="changelogs_revisions_list",
        responses={200: RevisionSummaryOutput(many=True), **error_responses(401, 404)},
    )
    def get(self, request: Request, changelog_id: str) -> Response:
        changelog = selectors.changelog_get(user=actor_of(request), changelog_id=changelog_id)
        return Response(RevisionSummaryOutput(selectors.revision_list(changelog=changelog), many=True).data)


class RevisionDetailApi(APIView):
    @extend_schema(
        operation_id="changelogs_revisions_retrieve",
        responses={200: RevisionOutput, **error_responses(401, 404)},
    )
    def get(self, request: Request, changelog_id: str, number: int) -> Response:
        changelog = selectors.changelog_get(user=actor_of(request), changelog_id=changelog_id)
        return Response(RevisionOutput(selectors.revision_get(changelog=changelog, number=number)).data)


class EvidenceOutput(serializers.Serializer[Any]):
    id = serializers.UUIDField()
    kind = serializers.ChoiceField(choices=EvidenceKind.choices)
    format = serializers.CharField()
    file_name = serializers.CharField()
    size = serializers.IntegerField()
    sha256 = serializers.CharField(help_text="SHA-256 of the exact bytes uploaded, hex.")
    media_type = serializers.CharField()
    tool = serializers.CharField()
    environment = serializers.CharField()
    artifact_digest = serializers.CharField(
        help_text="The artifact digest the evidence was produced against; empty when the upload named none."
    )
    declared_journeys = serializers.ListField(child=serializers.CharField())
    parser_version = serializers.CharField()
    verdict = serializers.ChoiceField(choices=Verdict.choices, help_text="The parser's view; the policy decides.")
    summary = serializers.DictField(help_text="What the parser made of the file (see docs/evidence.md).")
    added_in_revision = serializers.IntegerField()
    uploaded_by = serializers.CharField(source="uploaded_by.username")
    uploaded_at = serializers.DateTimeField()


class EvidenceUploadInput(StrictInput):
    kind = serializers.ChoiceField(choices=EvidenceKind.choices)
    format = serializers.ChoiceField(
        choices=sorted(parsers.FORMATS), required=False, help_text="Detected from the content when left out."
    )
    file = serializers.FileField(allow_empty_file=True, use_url=False)
    tool = serializers.CharField(max_length=100, required=False, default="", allow_blank=True)
    environment = serializers.CharField(
        max_length=50, required=False, default="", allow_blank=True, help_text="Where it ran, e.g. staging."
    )
    artifact_digest = serializers.CharField(
        max_length=71,
        required=False,
        default="",
        validators=[digest_validator],
        help_text=(
            "The artifact digest (sha256:…) the tests or measurements ran against. Sanity and performance "
            "evidence naming another digest than the revision's does not count (evidence_other_artifact)."
        ),
    )
    journeys = serializers.CharField(
        max_length=1000,
        required=False,
        default="",
        allow_blank=True,
        help_text="Journey ids the file is meant to cover, comma-separated (coverage itself comes from the tests).",
    )


def _upload_too_large(request: Request) -> bool:
    """Refuse an oversized upload from its declared length, before reading it."""
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return False
    return declared > settings.EVIDENCE_MAX_UPLOAD_BYTES + 64 * 1024  # room for the multipart envelope


class _UnsafeFileName(MultiPartParserError):
    pass


class _FileNameCheckingParser(DjangoMultiPartParser):
    """Django quietly cuts a client's file name down to its last path segment; an upload whose
    name tries to climb out of its folder is refused instead, so that it shows as what it is."""

    def sanitize_file_name(self, file_name: str) -> str | None:
        problem = file_name_problem(html.unescape(file_name))
        if problem:
            raise _UnsafeFileName(problem)
        return super().sanitize_file_name(file_name)


class EvidenceMultiPartParser(MultiPartParser):
    def parse(self, stream: Any, media_type: Any = None, parser_context: Any = None) -> "DataAndFiles[Any, Any]":
        context = parser_context or {}
        meta = context["request"].META.copy()
        meta["CONTENT_TYPE"] = media_type
        try:
            data, files = _FileNameCheckingParser(
                meta, stream, context["request"].upload_handlers, context.get("encoding", settings.DEFAULT_CHARSET)
            ).parse()
        except _UnsafeFileName as error:
            raise InvalidInput(
                ChangelogError.INVALID_FILE_NAME,
                str(error),
                fields={"file": [field_error(ChangelogError.INVALID_FILE_NAME, str(error))]},
            ) from error
        except MultiPartParserError as error:
            raise ParseError(f"Multipart form parse error - {error}") from error
        return DataAndFiles(data, files)


class EvidenceListAddApi(APIView):
    parser_classes = [EvidenceMultiPartParser]
    write_scope = "evidence"  # the API token scope its writes need (releasegate.tokens)

    class FilterSerializer(QueryFilters):
        revision = serializers.IntegerField(
            required=False, min_value=1, max_value=2**31 - 1, help_text="A revision number; the current one by default."
        )

    @extend_schema(
        operation_id="changelogs_evidence_list",
        parameters=[FilterSerializer],
        responses={200: EvidenceOutput(many=True), **error_responses(400, 401, 404)},
    )
    def get(self, request: Request, changelog_id: str) -> Response:
        changelog = selectors.changelog_get(user=actor_of(request), changelog_id=changelog_id)
        filters = self.FilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        number = filters.validated_data.get("revision")
        revision = (
            selectors.revision_get(changelog=changelog, number=number)
            if number is not None
            else selectors.revision_current(changelog=changelog)
        )
        return Response(EvidenceOutput(selectors.evidence_list(revision=revision), many=True).data)

    @extend_schema(
        operation_id="changelogs_evidence_add",
        request={"multipart/form-data": EvidenceUploadInput},
        responses={201: EvidenceOutput, **error_responses(400, 401, 403, 404, 409, 413)},
        description=(
            "Upload one evidence file to the current draft revision. It is parsed first: a file that does "
            "not parse is refused (400, with the parser's code and where it failed) and nothing is stored."
        ),
    )
    def post(self, request: Request, changelog_id: str) -> Response:
        changelog = selectors.changelog_get(user=actor_of(request), changelog_id=changelog_id, to_change=True)
        if _upload_too_large(request):
            raise PayloadTooLarge(
                ChangelogError.EVIDENCE_TOO_LARGE,
                f"Evidence files may be at most {settings.EVIDENCE_MAX_UPLOAD_BYTES} bytes.",
            )
        values = checked(EvidenceUploadInput, request.data)
        file = values["file"]
        evidence = services.evidence_add(
            acting_user=actor_of(request),
            changelog=changelog,
            data=file.read(settings.EVIDENCE_MAX_UPLOAD_BYTES + 1),
            file_name=file.name or "",
            kind=values["kind"],
            fmt=values.get("format"),
            tool=values["tool"],
            environment=values["environment"],
            artifact_digest=values["artifact_digest"],
            declared_journeys=[j.strip() for j in values["journeys"].split(",") if j.strip()],
        )
        return Response(EvidenceOutput(evidence).data, status=status.HTTP_201_CREATED)


class EvidenceDetailApi(APIView):
    write_scope = "evidence"  # the API token scope its writes need (releasegate.tokens)

    @extend_schema(
        operation_id="changelogs_evidence_retrieve", responses={200: EvidenceOutput, **error_responses(401, 404)}
    )
    def get(self, request: Request, changelog_id: str, evidence_id: str) -> Response:
        changelog = selectors.changelog_get(user=actor_of(request), changelog_id=changelog_id)
        return Response(EvidenceOutput(selectors.evidence_get(changelog=changelog, evidence_id=evidence_id)).data)

    @extend_schema(
        operation_id="changelogs_evidence_detach",
        responses={204: None, **error_responses(401, 403, 404, 409)},
        description="Take the file off the current draft revision. It stays stored, and in earlier revisions.",
    )
    def delete(self, request: Request, changelog_id: str, evidence_id: str) -> Response:
        changelog = selectors.changelog_get(user=actor_of(request), changelog_id=changelog_id, to_change=True)
        evidence = selectors.evidence_get(changelog=changelog, evidence_id=evidence_id)
        services.evidence_detach(acting_user=actor_of(request), changelog=changelog, evidence=evidence)
        return Response(status=status.HTTP_204_NO_CONTENT)


class EvidenceDownloadApi(APIView):
    @extend_schema(
        operation_id="changelogs_evidence_download",
        responses={(200, "application/octet-stream"): OpenApiTypes.BINARY, **error_responses(401, 404)},
        description="The exact bytes uploaded. `Repr-Digest` carries their SHA-256; they are checked before sending.",
    )
    def get(self, request: Request, changelog_id: str, evidence_id: str) -> HttpResponse:
        changelog = selectors.changelog_get(user=actor_of(request), changelog_id=changelog_id)
        evidence = selectors.evidence_get(changelog=changelog, evidence_id=evidence_id)
        data = services.evidence_bytes(evidence=evidence)
        # Bytes a pipeline uploaded are never rendered by a browser as this site's page: an HTML
        # or SVG "report" could otherwise run script with the reader's session. Its media type
        # is in the metadata (EvidenceOutput.media_type), not on the download.
        response = HttpResponse(data, content_type="application/octet-stream")
        response["Content-Disposition"] = f'attachment; filename="{evidence.file_name}"'
        response["Content-Security-Policy"] = "sandbox"
        response["Repr-Digest"] = f"sha-256=:{base64.b64encode(bytes.fromhex(evidence.sha256)).decode()}:"
        response["X-Content-Type-Options"] = "nosniff"
        return response


class FindingOutput(serializers.Serializer[Any]):
    code = serializers.CharField(help_text="Stable: see docs/api-errors.md (readiness findings).")
    message = serializers.CharField()
    evidence = serializers.UUIDField(allow_null=True)
    journey = serializers.CharField(allow_null=True)


class ReadinessOutput(serializers.Serializer[Any]):
    revision = serializers.IntegerField()
    policy = serializers.CharField(help_text='The rules applied, e.g. "domain:payments@v3" or "default@v0".')
    ready = serializers.BooleanField(help_text="True when there are no findings: ready for approval.")
    findings = FindingOutput(many=True)


class ReadinessApi(APIView):
    @extend_schema(
        operation_id="changelogs_readiness",
        responses={200: ReadinessOutput, **error_responses(401, 404)},
        description="What is still missing or failing in the current revision's evidence, by the policy in force.",
    )
    def get(self, request: Request, changelog_id: str) -> Response:
        changelog = selectors.changelog_get(user=actor_of(request), changelog_id=changelog_id)
        return Response(ReadinessOutput(selectors.readiness_of(changelog=changelog).to_json()).data)


class PolicyOutput(serializers.Serializer[Any]):
    domain = serializers.SlugField(source="domain.slug")
    service = serializers.SlugField(source="service.slug", allow_null=True, default=None)
    version = serializers.IntegerField()
    rules = serializers.DictField()
    reason = serializers.CharField()
    created_by = serializers.CharField(source="created_by.username")
    created_at = serializers.DateTimeField()


class PolicyListApi(APIView):
    class FilterSerializer(QueryFilters):
        domain = serializers.SlugField(required=False, help_text="A domain slug.")

    @extend_schema(
        operation_id="policies_list",
        parameters=[FilterSerializer],
        responses={200: PolicyOutput(many=True), **error_responses(400, 401)},
    )
    def get(self, request: Request) -> Response:
        filters = self.FilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        return Response(PolicyOutput(selectors.policy_list(**filters.validated_data), many=True).data)
