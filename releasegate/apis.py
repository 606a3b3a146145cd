"""HTTP API of the gate: the decision pipelines ask for, and the deployments they report."""

import json
import re
import time
import uuid
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from changelogs import selectors as changelog_selectors
from changelogs.content_rules import digest_validator
from changelogs.errors import ChangelogError
from changelogs.models import DIGEST_PATTERN, Service
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
from core.errors import InvalidInput
from releasegate import gate
from releasegate.authentication import token_of
from releasegate.deployments import deployment_report
from releasegate.gate import gate_check_as_caller
from releasegate.models import ApiToken, Deployment, DeploymentStatus, GateDecision, GateOutcome, NotCovered
from releasegate.tokens import TokenScope


def _unknown_service() -> InvalidInput:
    message = "No such service, or the caller may not act on it."
    return InvalidInput.on_field("service", ChangelogError.UNKNOWN_SERVICE, message)


def _service(user: ActingUser, slug: str) -> Service:
    service = changelog_selectors.service_list_managed(user=user).filter(slug=slug).select_related("domain").first()
    if service is None:
        raise _unknown_service()
    return service


class GatedEnvironmentField(serializers.CharField):
    def to_internal_value(self, data: Any) -> str:
        value = super().to_internal_value(data)
        if value not in settings.GATE_ENVIRONMENTS:
            raise serializers.ValidationError(
                f"Only {', '.join(settings.GATE_ENVIRONMENTS)} is gated.", code="environment_not_gated"
            )
        return value


class GateCheckInput(StrictInput):
    service = serializers.SlugField()
    environment = GatedEnvironmentField(max_length=50, required=False, default="production")
    artifact_digest = serializers.CharField(max_length=71, validators=[digest_validator])
    changelog = serializers.UUIDField(required=False, help_text="Match this changelog only.")


_SLUG = re.compile(r"^[-a-zA-Z0-9_]+$")  # DRF's SlugField
_GATE_QUESTION_FIELDS = frozenset(GateCheckInput().fields)
_DIGEST = re.compile(DIGEST_PATTERN)


def gate_question(data: Any) -> dict[str, Any] | None:
    """``GateCheckInput``'s validated data for a plainly well-formed question (strings that
    pass its fields' checks as they are), or None for anything else, which the serializer then
    judges and explains. DRF's field machinery costs a gate check about as much as its reading
    (bench/gate.py); a test checks that this never accepts what the serializer would not, nor
    differently."""
    if not isinstance(data, dict) or not set(data) <= _GATE_QUESTION_FIELDS:
        return None
    service, digest = data.get("service"), data.get("artifact_digest")
    environment = data.get("environment", "production")
    if not (isinstance(service, str) and isinstance(digest, str) and isinstance(environment, str)):
        return None
    # CharFields trim whitespace before their validators run.
    service, digest, environment = service.strip(), digest.strip(), environment.strip()
    if not (_SLUG.search(service) and _DIGEST.search(digest)):
        return None
    if len(environment) > 50 or environment not in settings.GATE_ENVIRONMENTS:
        return None
    question: dict[str, Any] = {"service": service, "environment": environment, "artifact_digest": digest}
    if "changelog" in data:
        changelog = data["changelog"]
        if not isinstance(changelog, str):
            return None
        try:
            question["changelog"] = uuid.UUID(hex=changelog)
        except ValueError:
            return None
    return question


class ReasonOutput(serializers.Serializer[Any]):
    code = serializers.CharField(help_text="Stable; see docs/gate.md.")
    message = serializers.CharField()


class GateDecisionOutput(serializers.Serializer[Any]):
    decision = serializers.ChoiceField(choices=GateOutcome.choices, source="outcome")
    decision_id = serializers.UUIDField(source="id")
    service = serializers.SlugField(source="service.slug")
    environment = serializers.CharField()
    artifact_digest = serializers.CharField()
    changelog = serializers.UUIDField(source="changelog_id", allow_null=True)
    revision = serializers.IntegerField(source="revision.number", allow_null=True, default=None)
    reasons = ReasonOutput(many=True)
    policy = serializers.CharField(help_text='The rules applied, e.g. "domain:payments@v3"; empty without a changelog.')
    evaluated_at = serializers.DateTimeField()
    valid_until = serializers.DateTimeField(help_text="An allow decision covers a deployment reported until then.")


_TIME = serializers.DateTimeField()


def gate_decision_output(decision: GateDecision) -> dict[str, Any]:
    """``GateDecisionOutput(decision).data``, built directly: DRF builds and deep-copies a
    serializer's fields on every use, which costs the gate check more than its decision
    (bench/gate.py). The serializer stays the schema; a test checks that both agree."""
    revision = decision.revision
    return {
        "decision": decision.outcome,
        "decision_id": str(decision.id),
        "service": decision.service.slug,
        "environment": decision.environment,
        "artifact_digest": decision.artifact_digest,
        "changelog": str(decision.changelog_id) if decision.changelog_id else None,
        "revision": revision.number if revision else None,
        "reasons": [{"code": reason["code"], "message": reason["message"]} for reason in decision.reasons],
        "policy": decision.policy,
        "evaluated_at": _TIME.to_representation(decision.evaluated_at),
        "valid_until": _TIME.to_representation(decision.valid_until),
    }


def _question_in(request: Request) -> dict[str, Any] | None:
    """The plainly well-formed gate question of a JSON body (``gate_question``), read without
    REST framework's parser (which runs after authentication, and judges every other body)."""
    if request.content_type.split(";")[0].strip() != "application/json":
        return None
    try:
        length = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return None
    if not 0 < length <= 4096:  # a question is a few hundred bytes
        return None
    try:
        return gate_question(json.loads(request._request.body.decode("utf-8")))
    except ValueError:  # not UTF-8, not JSON
        return None


class GateCheckApi(APIView):
    write_scope = TokenScope.GATE
    atomic_request = False  # see as_view

    @classmethod
    def as_view(cls, **initkwargs: Any) -> Any:
        # Outside the request's transaction: on PostgreSQL the check is one statement that reads
        # (with the API token) and one that writes the decision with its audit event, each
        # atomic by itself, which spares every check the round trips of BEGIN and COMMIT
        # (releasegate.gate.gate_check_as_caller; issue 17, bench/gate.py). Elsewhere the check
        # is one transaction of its own.
        return transaction.non_atomic_requests(super().as_view(**initkwargs))

    def token_read_with_facts(self, request: Request, prefix: str) -> tuple[ApiToken | None] | None:
        """For ``ApiTokenAuthentication``, which checks the token exactly as for every endpoint:
        on PostgreSQL, the API token with this prefix (and its service account) read by the
        gate's one statement together with the facts of the question in the body, for the
        token's account: one round trip fewer per check (issue 17; bench/gate.py). The facts
        reach ``post`` only through an authenticated request. None (not read: the ordinary
        lookup follows) for anything else: no plainly well-formed question, another database,
        an unknown service."""
        question = _question_in(request) if connection.vendor == "postgresql" else None
        if question is None:
            return None
        started = time.perf_counter()
        found = gate.facts_with_token(
            token_prefix=prefix,
            service_slug=question["service"],
            digest=question["artifact_digest"],
            changelog_id=question.get("changelog"),
        )
        if found is None:
            return None
        token, snapshot = found
        if snapshot is not None:
            self.gate_read = (question, (snapshot, started))
        return (token,)

    @extend_schema(
        operation_id="gate_check",
        request=GateCheckInput,
        responses={200: GateDecisionOutput, **error_responses(400, 401)},
        description=(
            "May this artifact of this service be deployed now? Always 200 with `decision` allow or deny and "
            "coded reasons: a denial is an answer, not an error. Every decision is stored and audited."
        ),
    )
    def post(self, request: Request) -> Response:
        values = gate_question(request.data)
        if values is None:
            values = checked(GateCheckInput, request.data)
        token = token_of(request)
        # Read with the token (token_read_with_facts) for this very question, or now.
        question, read = getattr(self, "gate_read", (None, None))
        # The caller's right to act on the service is checked with the facts (one read on
        # PostgreSQL); without it nothing is decided or recorded.
        decision = gate_check_as_caller(
            read=read if question == values else None,
            acting_user=actor_of(request),
            service_slug=values["service"],
            environment=values["environment"],
            digest=values["artifact_digest"],
            changelog_id=values.get("changelog"),
            token_prefix=token.prefix if token else "",
        )
        if decision is None:
            raise _unknown_service()
        return Response(gate_decision_output(decision))


class DeploymentReportInput(StrictInput):
    idempotency_key = serializers.CharField(
        max_length=200, help_text="Chosen by the client: the same key and report again changes nothing."
    )
    service = serializers.SlugField()
    environment = serializers.CharField(max_length=50)
    artifact_digest = serializers.CharField(
        max_length=71, validators=[digest_validator], help_text="What was deployed."
    )
    status = serializers.ChoiceField(choices=DeploymentStatus.choices)
    pipeline_run_url = serializers.URLField(max_length=500, required=False, default="", allow_blank=True)
    started_at = InstantField()
    finished_at = InstantField(required=False, allow_null=True, default=None)
    data_change_executor = serializers.CharField(
        max_length=254,
        required=False,
        default="",
        allow_blank=True,
        help_text=(
            "Who executed the change's data changes (username or e-mail). Required for a change with data "
            "changes, and none of its approvers: otherwise the deployment is unauthorised."
        ),
    )


class DeploymentOutput(serializers.Serializer[Any]):
    id = serializers.UUIDField()
    idempotency_key = serializers.CharField()
    service = serializers.SlugField(source="service.slug")
    environment = serializers.CharField()
    artifact_digest = serializers.CharField()
    status = serializers.ChoiceField(choices=DeploymentStatus.choices)
    pipeline_run_url = serializers.CharField()
    data_change_executor = serializers.CharField()
    started_at = serializers.DateTimeField()
    finished_at = serializers.DateTimeField(allow_null=True)
    decision = serializers.UUIDField(source="decision_id", allow_null=True, help_text="The allow decision covering it.")
    changelog = serializers.UUIDField(source="changelog_id", allow_null=True)
    unauthorised = serializers.BooleanField(help_text="No allow decision covered it.")
    not_covered_because = serializers.ChoiceField(
        choices=NotCovered.choices,
        allow_null=True,
        source="not_covered_reason",
        help_text="Why no allow decision covers it (docs/gate.md); null when covered.",
    )
    reported_by = serializers.CharField(source="reported_by.username")
    reported_at = serializers.DateTimeField()


def _visible_deployments(user: ActingUser) -> QuerySet[Deployment]:
    deployments = Deployment.objects.select_related("service", "reported_by")
    if user.is_superuser or user.has_perm("releasegate.view_deployment"):
        return deployments
    return deployments.filter(service__in=changelog_selectors.service_list_managed(user=user))


class DeploymentListReportApi(APIView):
    write_scope = TokenScope.DEPLOYMENTS

    @extend_schema(
        operation_id="deployments_report",
        request=DeploymentReportInput,
        responses={201: DeploymentOutput, 200: DeploymentOutput, **error_responses(400, 401, 409)},
        description=(
            "Report a deployment (started, succeeded, failed, rolled_back) with the digest actually deployed. "
            "201 for a new report, 200 when the same key and report were sent before (nothing changes). "
            "A deployment is identified by service, environment, digest and `started_at` (never by the run URL); "
            "its first report is covered by an allow decision for the same service, environment and digest that "
            "was valid at `started_at` and whose changelog is still approved, if it arrives within "
            "DEPLOYMENT_REPORT_WINDOW_MINUTES of the start; anything else is flagged `unauthorised` with "
            "`not_covered_because` (docs/gate.md). Every report is attached to the changelog carrying its digest. "
            "400 `deployment_starts_in_future` / `deployment_finishes_in_future`: a time ahead of the server's "
            "clock by more than DEPLOYMENT_CLOCK_SKEW_SECONDS; 400 `deployment_finishes_before_start`; "
            "409 `idempotency_key_reused`."
        ),
    )
    def post(self, request: Request) -> Response:
        values = checked(DeploymentReportInput, request.data)
        deployment, created = deployment_report(
            acting_user=actor_of(request),
            idempotency_key=values["idempotency_key"],
            service=_service(actor_of(request), values["service"]),
            environment=values["environment"],
            digest=values["artifact_digest"],
            status=values["status"],
            pipeline_run_url=values["pipeline_run_url"],
            started_at=values["started_at"],
            finished_at=values["finished_at"],
            data_change_executor=values["data_change_executor"],
        )
        return Response(
            DeploymentOutput(deployment).data, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK
        )

    class FilterSerializer(QueryFilters):
        service = serializers.SlugField(required=False, help_text="A service slug.")
        unauthorised = serializers.BooleanField(required=False, help_text="Only deployments flagged unauthorised.")

    @extend_schema(
        operation_id="deployments_list",
        parameters=[FilterSerializer],
        responses={200: cursor_page("DeploymentPage", DeploymentOutput(many=True)), **error_responses(400, 401)},
    )
    def get(self, request: Request) -> Response:
        filters = self.FilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        deployments = _visible_deployments(actor_of(request))
        if service := filters.validated_data.get("service"):
            deployments = deployments.filter(service__slug=service)
        if filters.validated_data.get("unauthorised"):
            deployments = deployments.filter(unauthorised=True)
        paginator = DeploymentPagination()
        page = paginator.paginate_queryset(deployments, request, view=self)
        return paginator.get_paginated_response(DeploymentOutput(page, many=True).data)


class DeploymentPagination(NewestFirstCursorPagination):
    ordering = ("-reported_at", "-id")


class UnauthorisedDeploymentListApi(APIView):
    @extend_schema(
        operation_id="exceptions_unauthorised_deployments",
        responses={200: DeploymentOutput(many=True), **error_responses(401)},
        description="Deployments no allow decision covered: what auditors look for first.",
    )
    def get(self, request: Request) -> Response:
        deployments = _visible_deployments(actor_of(request)).filter(unauthorised=True).order_by("-reported_at")[:1000]
        return Response(DeploymentOutput(deployments, many=True).data)
