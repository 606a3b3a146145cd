"""HTTP API for production smoke tests (releasegate/smoke.py). Thin: parse, call, render."""

from typing import Any

from django.conf import settings
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from changelogs.apis import EvidenceMultiPartParser
from core.actors import actor_of
from core.api import StrictInput, checked, error_responses
from releasegate.smoke import deployment_for_smoke, smoke_report
from releasegate.tokens import TokenScope


class SmokeInput(StrictInput):
    file = serializers.FileField(
        allow_empty_file=True, use_url=False, help_text="JUnit XML, Playwright or CTRF JSON, tagged with journey ids."
    )


class SmokeOutput(serializers.Serializer[Any]):
    id = serializers.UUIDField()
    deployment = serializers.UUIDField(source="deployment_id")
    file_name = serializers.CharField()
    format = serializers.CharField()
    sha256 = serializers.CharField()
    journeys = serializers.DictField(
        child=serializers.CharField(), help_text="Each critical journey's outcome in the file."
    )
    failed_journeys = serializers.ListField(child=serializers.CharField())
    passed = serializers.BooleanField()
    reported_by = serializers.CharField(source="reported_by.username")
    reported_at = serializers.DateTimeField()


class DeploymentSmokeApi(APIView):
    parser_classes = [EvidenceMultiPartParser]
    write_scope = TokenScope.DEPLOYMENTS

    @extend_schema(
        operation_id="deployments_smoke_report",
        request={"multipart/form-data": SmokeInput},
        responses={201: SmokeOutput, **error_responses(400, 401, 403, 404, 409, 413)},
        description=(
            "Report the production smoke test of the critical journeys after a succeeded deployment. Every "
            "critical journey must pass. A failed smoke test marks the deployment failed (`smoke_status`), "
            "moves the change to rolled back, records its rollback plan in the audit trail "
            "(`deployment:smoke_failed`) and notifies the domain's signing authorities (docs/gate.md). "
            "404 `deployment_not_found`; 409 `smoke_before_success`."
        ),
    )
    def post(self, request: Request, deployment_id: str) -> Response:
        deployment = deployment_for_smoke(user=actor_of(request), deployment_id=deployment_id)
        file = checked(SmokeInput, request.data)["file"]
        smoke = smoke_report(
            acting_user=actor_of(request),
            deployment=deployment,
            data=file.read(settings.EVIDENCE_MAX_UPLOAD_BYTES + 1),
            file_name=file.name or "",
        )
        return Response(SmokeOutput(smoke).data, status=status.HTTP_201_CREATED)
