"""HTTP API for evidence packs: ask for one, follow its build, download its files. For
auditors and administrators."""

from typing import Any

from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from audit.selectors import auditor_require
from core.actors import actor_of
from core.api import InstantField, StrictInput, checked, error_responses
from packs import selectors, services
from packs.models import PackKind, PackStatus


class PackRequestInput(StrictInput):
    kind = serializers.ChoiceField(choices=PackKind.choices)
    changelog = serializers.UUIDField(required=False, help_text="For a changelog pack.")
    start = InstantField(required=False, help_text="For a population pack: from (inclusive).")
    end = InstantField(required=False, help_text="For a population pack: to (exclusive).")
    domain = serializers.SlugField(required=False, default="", allow_blank=True, help_text="Population of one domain.")
    sample_size = serializers.IntegerField(required=False, default=25, min_value=0, max_value=1000)
    seed = serializers.IntegerField(
        required=False, min_value=0, max_value=2**31 - 1, help_text="Draw the sample again with a known seed."
    )


class PackFileOutput(serializers.Serializer[Any]):
    name = serializers.CharField()
    sha256 = serializers.CharField()
    size = serializers.IntegerField()
    media_type = serializers.CharField()
    url = serializers.CharField()


class PackJobOutput(serializers.Serializer[Any]):
    id = serializers.UUIDField()
    kind = serializers.ChoiceField(choices=PackKind.choices)
    params = serializers.DictField()
    status = serializers.ChoiceField(choices=PackStatus.choices)
    progress = serializers.IntegerField(help_text="Percent.")
    stage = serializers.CharField()
    attempts = serializers.IntegerField()
    error = serializers.CharField()
    requested_by = serializers.CharField(source="requested_by.username")
    created_at = serializers.DateTimeField()
    finished_at = serializers.DateTimeField(allow_null=True)
    files = serializers.SerializerMethodField()

    def get_files(self, job: Any) -> list[dict[str, Any]]:
        if job.status != PackStatus.DONE:
            return []  # nothing of an unfinished build is ever visible
        return [
            {
                "name": name,
                "sha256": meta["sha256"],
                "size": meta["size"],
                "media_type": meta["media_type"],
                "url": f"/api/v1/packs/{job.pk}/files/{name}",
            }
            for name, meta in sorted(job.files.items())
        ]


class AuditorApi(APIView):
    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)
        auditor_require(user=actor_of(request))


class PackListRequestApi(AuditorApi):
    @extend_schema(
        operation_id="packs_request",
        request=PackRequestInput,
        responses={202: PackJobOutput, 200: PackJobOutput, **error_responses(400, 401, 403, 404, 409)},
        description=(
            "Ask for a changelog pack (signed PDF + verifiable ZIP) or a population pack (signed PDF + CSV) "
            "for a period. Built in the background: follow `GET /api/v1/packs/{id}`. The same request while "
            "the job is running, or soon after it finished, returns the same job (200)."
        ),
    )
    def post(self, request: Request) -> Response:
        values = checked(PackRequestInput, request.data)
        job, created = services.pack_request_for(acting_user=actor_of(request), **values)
        return Response(PackJobOutput(job).data, status=status.HTTP_202_ACCEPTED if created else status.HTTP_200_OK)

    @extend_schema(operation_id="packs_list", responses={200: PackJobOutput(many=True), **error_responses(401, 403)})
    def get(self, request: Request) -> Response:
        return Response(PackJobOutput(selectors.pack_job_list()[:200], many=True).data)


class PackJobApi(AuditorApi):
    @extend_schema(operation_id="packs_retrieve", responses={200: PackJobOutput, **error_responses(401, 403, 404)})
    def get(self, request: Request, job_id: str) -> Response:
        return Response(PackJobOutput(selectors.pack_job_get(job_id=job_id)).data)


class PackFileApi(AuditorApi):
    @extend_schema(
        operation_id="packs_file_download",
        responses={
            (200, "application/octet-stream"): OpenApiResponse(OpenApiTypes.BINARY),
            **error_responses(401, 403, 404, 409),
        },
        description="A file of a finished pack; its SHA-256 is in `Repr-Digest` and in the audit trail.",
    )
    def get(self, request: Request, job_id: str, name: str) -> HttpResponse:
        data, meta = selectors.pack_file(job_id=job_id, name=name)
        response = HttpResponse(data, content_type=meta["media_type"])
        response["Content-Disposition"] = f'attachment; filename="{name}"'
        response["Repr-Digest"] = f"sha-256=:{meta['sha256_b64']}:"
        response["X-Content-Type-Options"] = "nosniff"
        return response
