"""HTTP API for the access review: its view of deployment rights (releasegate/access.py), the
report of who holds which right with the separation-of-duties conflicts, and the periodic
review the domains' owners answer (releasegate/access_review.py)."""

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from audit.selectors import auditor_require
from core.actors import actor_of
from core.api import error_responses
from core.errors import CommonError, NotFound
from identity.sessions import signing_session_require
from releasegate import access_review
from releasegate.access import deployment_rights
from releasegate.models import AccessReview, AccessReviewItem, AccessReviewItemStatus, AccessReviewStatus


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
        auditor_require(user=actor_of(request))
        return Response(DeploymentRightsOutput(deployment_rights()).data)


# --- The access review: the report and the periodic review (releasegate/access_review.py) -----


class AuthorityRowOutput(serializers.Serializer[Any]):
    person = serializers.CharField()
    domain = serializers.CharField()
    authority = serializers.CharField()
    via = serializers.CharField(help_text='"direct" or "group <name>".')
    granted_by = serializers.CharField()
    granted_at = serializers.CharField()
    confirmed_by = serializers.CharField()
    confirmed_at = serializers.CharField()
    membership_granted_by = serializers.CharField()
    membership_confirmed_by = serializers.CharField()
    last_used = serializers.CharField(help_text="The person's latest decision in the domain, or empty.")


class RightRowOutput(serializers.Serializer[Any]):
    person = serializers.CharField()
    human = serializers.BooleanField()
    domain = serializers.CharField(help_text="Empty for a right over every domain.")
    right = serializers.ChoiceField(
        choices=[
            access_review.Right.REQUEST_AND_REPORT,
            access_review.Right.DEPLOYMENT_TOKEN,
            access_review.Right.ADMINISTER,
            access_review.Right.DECIDE_OVERRIDES,
        ]
    )
    via = serializers.CharField()


class SodConflictOutput(serializers.Serializer[Any]):
    person = serializers.CharField()
    domain = serializers.CharField()
    approves_as = serializers.CharField()
    also = serializers.CharField(help_text="The deploying rights the person also holds in the domain.")


class AccessReportOutput(serializers.Serializer[Any]):
    authorities = AuthorityRowOutput(many=True)
    rights = RightRowOutput(many=True)
    conflicts = SodConflictOutput(many=True)


class AccessReportApi(APIView):
    @extend_schema(
        operation_id="access_report",
        responses={200: AccessReportOutput, **error_responses(401, 403)},
        description=(
            "The access review's report (as the admin's CSV and signed PDF): signing authorities with their "
            "grants, the request, deployment, administration and override rights, and the separation-of-duties "
            "conflicts. Auditors and administrators; each read is audited."
        ),
    )
    def get(self, request: Request) -> Response:
        auditor_require(user=actor_of(request))
        report = access_review.full_report()
        access_review.report_downloaded_record(acting_user=actor_of(request), kind="api", report=report)
        return Response(AccessReportOutput(report).data)


class AccessReviewItemOutput(serializers.Serializer[Any]):
    id = serializers.IntegerField(source="item.id")
    grant = serializers.UUIDField(source="item.grant_id")
    grant_of = serializers.CharField(source="item.grant.describe")
    domains = serializers.ListField(child=serializers.CharField())
    status = serializers.ChoiceField(choices=AccessReviewItemStatus.choices, source="item.status")
    decided_by = serializers.CharField(source="item.decided_by.username", allow_null=True, default=None)
    decided_at = serializers.DateTimeField(source="item.decided_at", allow_null=True)


class AccessReviewOutput(serializers.Serializer[Any]):
    id = serializers.IntegerField()
    opened_at = serializers.DateTimeField()
    deadline = serializers.DateTimeField()
    status = serializers.ChoiceField(choices=AccessReviewStatus.choices)
    items = AccessReviewItemOutput(many=True, help_text="The items you see: all for auditors, your domains' otherwise.")


def _review_shown(request: Request, review: AccessReview) -> dict[str, Any]:
    return {
        "id": review.pk,
        "opened_at": review.opened_at,
        "deadline": review.deadline,
        "status": review.status,
        "items": access_review.review_items_for(user=actor_of(request), review=review),
    }


class AccessReviewApi(APIView):
    @extend_schema(
        operation_id="access_review_open_get",
        responses={200: AccessReviewOutput, **error_responses(401, 404)},
        description="The open access review, with the items you may re-confirm (auditors see them all).",
    )
    def get(self, request: Request) -> Response:
        review = AccessReview.objects.filter(status=AccessReviewStatus.OPEN).first()
        if review is None:
            raise NotFound(CommonError.NOT_FOUND, "No access review is open.")
        return Response(AccessReviewOutput(_review_shown(request, review)).data)

    @extend_schema(
        operation_id="access_review_open",
        request=None,
        responses={201: AccessReviewOutput, **error_responses(401, 403, 409)},
        description=(
            "Open an access review now (administrators): every grant in force is put to its domain's owners, "
            "who are notified; audited. One review is open at a time."
        ),
    )
    def post(self, request: Request) -> Response:
        review = access_review.review_open(acting_user=actor_of(request))
        return Response(AccessReviewOutput(_review_shown(request, review)).data, status=status.HTTP_201_CREATED)


class AccessReviewReconfirmApi(APIView):
    @extend_schema(
        operation_id="access_review_item_reconfirm",
        request=None,
        responses={200: AccessReviewItemOutput, **error_responses(401, 403, 404, 409)},
        description=(
            "Re-confirm one authority of the open review: a domain's owner (a signing authority of the domain, "
            "never the grantee) or an administrator, with a fresh second factor; audited."
        ),
    )
    def post(self, request: Request, item_id: int) -> Response:
        item = AccessReviewItem.objects.filter(pk=item_id, review__status=AccessReviewStatus.OPEN).first()
        if item is None:
            raise NotFound(CommonError.NOT_FOUND, "No such item in the open review.")
        signing_session_require(request._request)
        item = access_review.review_item_reconfirm(acting_user=actor_of(request), item=item)
        shown = access_review.ReviewItemView(item, [domain.slug for domain in access_review.domains_of(item.grant)])
        return Response(AccessReviewItemOutput(shown).data)
