"""HTTP API for the access review's view of deployment rights (releasegate/access.py)."""

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from audit.selectors import auditor_require
from core.api import error_responses
from releasegate.access import deployment_rights


class ReporterOutput(serializers.Serializer[Any]):
    principal = serializers.CharField(help_text="user:<username> or service_account:<name>.")
    human = serializers.BooleanField()
    services = serializers.ListField(child=serializers.CharField())
    via = serializers.ListField(child=serializers.CharField(), help_text="How the right is held.")


class DeciderOutput(serializers.Serializer[Any]):
    principal = serializers.CharField()
    domains = serializers.ListField(child=serializers.CharField())


class DeploymentRightsOutput(serializers.Serializer[Any]):
    deployment_reporters = ReporterOutput(many=True)
    humans_who_can_report_deployments = serializers.ListField(child=serializers.CharField())
    override_deciders = DeciderOutput(many=True)


class DeploymentRightsApi(APIView):
    @extend_schema(
        operation_id="access_deployment_rights",
        responses={200: DeploymentRightsOutput, **error_responses(401, 403)},
        description=(
            "Who can report production deployments (and so make one count as covered) and who can decide a "
            "gate override, for the access review: auditors and administrators only (docs/compliance.md, PR-07)."
        ),
    )
    def get(self, request: Request) -> Response:
        auditor_require(user=request.user)
        return Response(DeploymentRightsOutput(deployment_rights()).data)
