"""The learning report as a signed PDF (incidents/report.py draws it; it is signed here with the
organisation's document-signing key, like evidence packs: releasegate.documents)."""

import hashlib

from django.conf import settings
from django.http import HttpResponse
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework.request import Request
from rest_framework.views import APIView

import audit
from core.actors import ActingUser, actor_of
from core.api import error_responses
from core.errors import PermissionDenied
from incidents.apis import PeriodInput, figures_of, query_of
from incidents.audit_actions import IncidentAction
from incidents.errors import IncidentError
from incidents.report import render_learning_report
from releasegate.documents import sign_document


def _require_reader(user: ActingUser) -> None:
    if getattr(user, "is_service_account", False) or not (
        user.is_superuser or user.has_perm("incidents.view_incident") or user.has_perm("incidents.classify_incident")
    ):
        raise PermissionDenied(
            IncidentError.NOT_A_REPORT_READER, "The learning report is for auditors, managers and administrators."
        )


class LearningReportApi(APIView):
    @extend_schema(
        operation_id="incidents_learning_report",
        parameters=[PeriodInput],
        responses={
            (200, "application/pdf"): OpenApiResponse(OpenApiTypes.BINARY),
            **error_responses(400, 401, 403, 404),
        },
        description="The learning report of a period (a service, a domain or everything): the delivery figures "
        "of `incidents/figures` and charts of incidents by month, severity, root-cause tag and domain, as a "
        "PDF signed with the organisation's key. Its SHA-256 is in the audit trail.",
    )
    def get(self, request: Request) -> HttpResponse:
        _require_reader(actor_of(request))
        given = PeriodInput(data=query_of(request))
        given.is_valid(raise_exception=True)
        figures = figures_of(dict(given.validated_data))
        pdf = render_learning_report(
            figures=figures,
            organisation=settings.ORGANISATION_NAME,
            generated_at=f"{timezone.now():%Y-%m-%d %H:%M} UTC",
        )
        signed = sign_document(pdf, "Release Gate learning report")
        digest = hashlib.sha256(signed).hexdigest()
        audit.record(
            actor=actor_of(request),
            action=IncidentAction.LEARNING_REPORT,
            target=("incidents.report", f"{figures['start']:%Y-%m-%d}..{figures['end']:%Y-%m-%d}"),
            data={"service": figures["service"], "domain": figures["domain"], "sha256": digest},
        )
        response = HttpResponse(signed, content_type="application/pdf")
        response["Content-Disposition"] = 'attachment; filename="learning-report.pdf"'
        return response
