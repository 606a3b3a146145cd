"""The webhook GitHub calls for the deployment protection rule (releasegate/github.py,
docs/github.md). GitHub is not a user of ours: the request carries no token or session, and the
signature over the raw body (``X-Hub-Signature-256``) is its authentication."""

import hashlib
import re
from typing import Any

from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_field
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from core.api import DeliveryApi, InstantField, delivery_body, delivery_json, error_responses
from core.errors import CommonError, InvalidInput, error_body
from releasegate.github import (
    PROTECTION_RULE_EVENT,
    GitHubError,
    github_delivery_receive,
    github_signature_verify,
)
from releasegate.models import GitHubAnswer, GitHubAnswerStatus, GitHubDelivery

_DELIVERY_ID = re.compile(r"^[A-Za-z0-9._:-]{1,100}$")


class ProtectionRuleRepositoryInput(serializers.Serializer[Any]):
    id = serializers.IntegerField(min_value=1, required=False, allow_null=True, default=None)
    full_name = serializers.CharField(max_length=300)
    html_url = serializers.URLField(max_length=500)


class ProtectionRuleDeploymentInput(serializers.Serializer[Any]):
    id = serializers.IntegerField(min_value=1, help_text="With the installation and the body, what a delivery is.")
    sha = serializers.RegexField(
        r"^[0-9a-fA-F]{40}(?:[0-9a-fA-F]{24})?$", help_text="The full commit id (SHA-1, or SHA-256 repositories)."
    )
    created_at = InstantField(
        help_text="When GitHub created the deployment: older than GITHUB_DELIVERY_MAX_AGE_SECONDS is refused."
    )


class ProtectionRuleInstallationInput(serializers.Serializer[Any]):
    id = serializers.IntegerField(min_value=1)


class DeploymentProtectionRuleInput(serializers.Serializer[Any]):
    """The parts of GitHub's ``deployment_protection_rule`` payload Release Gate reads; the rest
    is ignored."""

    action = serializers.CharField(max_length=64, help_text="Only `requested` is acted on.")
    environment = serializers.CharField(max_length=255)
    event = serializers.CharField(max_length=64, required=False, allow_blank=True, default="")
    deployment_callback_url = serializers.URLField(max_length=1000)
    deployment = ProtectionRuleDeploymentInput()
    repository = ProtectionRuleRepositoryInput()
    installation = ProtectionRuleInstallationInput()


# Inline rather than a ChoiceField: the same two values as an approval's decision would make the
# schema's enum naming ambiguous (drf-spectacular warns), and they are GitHub's words here.
@extend_schema_field({"type": "string", "enum": [answer.value for answer in GitHubAnswer], "nullable": True})
class AnswerStateField(serializers.CharField):
    pass


class GitHubDeliveryOutput(serializers.Serializer[Any]):
    delivery = serializers.CharField(help_text="GitHub's X-GitHub-Delivery.")
    received = serializers.ChoiceField(
        choices=["evaluated", "duplicate", "ignored"],
        help_text="evaluated: new, answered after commit; duplicate: seen before, nothing done again; ignored: "
        "not a deployment protection rule request.",
    )
    state = AnswerStateField(allow_null=True, help_text="The answer for GitHub: approved or rejected.")
    comment = serializers.CharField(help_text="Why; GitHub shows it with the answer (for ignored: why ignored).")
    decision = serializers.UUIDField(allow_null=True, help_text="The gate decision, when the gate was asked.")
    answer_status = serializers.ChoiceField(choices=GitHubAnswerStatus.choices, allow_null=True)


def _delivery_output(delivery: GitHubDelivery, received: str) -> dict[str, Any]:
    output = {
        "delivery": delivery.delivery_id,
        "received": received,
        "state": delivery.state,
        "comment": delivery.comment,
        "decision": delivery.decision_id,
        "answer_status": delivery.status,
    }
    return dict(GitHubDeliveryOutput(output).data)


def _ignored(delivery_id: str, why: str) -> Response:
    output = {
        "delivery": delivery_id,
        "received": "ignored",
        "state": None,
        "comment": why,
        "decision": None,
        "answer_status": None,
    }
    return Response(GitHubDeliveryOutput(output).data, status=status.HTTP_200_OK)


def _json_object(body: bytes) -> dict[str, Any]:
    payload = delivery_json(body)
    if not isinstance(payload, dict):
        raise InvalidInput(CommonError.MALFORMED_REQUEST, "The delivery is not a JSON object.")
    return payload


class GitHubDeploymentProtectionApi(DeliveryApi):
    @extend_schema(
        operation_id="integrations_github_deployment_protection",
        auth=[],
        request=DeploymentProtectionRuleInput,
        parameters=[
            OpenApiParameter("X-Hub-Signature-256", str, OpenApiParameter.HEADER, description="sha256= HMAC-SHA256."),
            OpenApiParameter(
                "X-GitHub-Event", str, OpenApiParameter.HEADER, description="Acted on: deployment_protection_rule."
            ),
            OpenApiParameter("X-GitHub-Delivery", str, OpenApiParameter.HEADER, description="GitHub's delivery id."),
        ],
        responses={
            202: OpenApiResponse(GitHubDeliveryOutput, description="Evaluated; GitHub gets the answer after commit."),
            200: OpenApiResponse(GitHubDeliveryOutput, description="Seen before (nothing done again), or ignored."),
            **error_responses(400, 401, 404, 409, 413),
        },
        description=(
            "GitHub's `deployment_protection_rule` webhook (a GitHub App's). Verified with X-Hub-Signature-256 "
            "before anything else (401 `github_signature_invalid`); 404 `github_not_configured` without "
            "GITHUB_WEBHOOK_SECRET. Maps the repository and deployment.sha to a submitted changelog, asks the "
            "gate and answers GitHub's callback (approved/rejected with a comment) from a worker. De-duplicated on "
            "what the signature covers (installation, deployment, SHA-256 of the body), not on X-GitHub-Delivery: "
            "the same signed body under another delivery id is refused, 409 `github_delivery_replayed`; a "
            "deployment created more than GITHUB_DELIVERY_MAX_AGE_SECONDS ago is refused, 400 "
            "`github_delivery_too_old` (400 `github_delivery_dated_in_future` when ahead of the server's clock). "
            "Refusals are audited (`github:delivery_refused`), nothing is evaluated or answered. See docs/github.md."
        ),
    )
    def post(self, request: Request) -> Response:
        body = delivery_body(request)
        github_signature_verify(body=body, signature=request.headers.get("X-Hub-Signature-256", ""))
        event = request.headers.get("X-GitHub-Event", "")
        delivery_id = request.headers.get("X-GitHub-Delivery", "")
        if event != PROTECTION_RULE_EVENT:
            return _ignored(delivery_id, f"Event {event or '(none)'} is not acted on; only {PROTECTION_RULE_EVENT}.")
        if not _DELIVERY_ID.match(delivery_id):
            raise InvalidInput(GitHubError.DELIVERY_ID_INVALID, "X-GitHub-Delivery is missing or not a delivery id.")
        payload = _json_object(body)
        if payload.get("action") != "requested":
            return _ignored(delivery_id, f"Action {payload.get('action')!s} is not acted on; only requested.")
        rule = DeploymentProtectionRuleInput(data=payload)
        rule.is_valid(raise_exception=True)
        values = rule.validated_data
        received = github_delivery_receive(
            delivery_id=delivery_id,
            body_sha256=hashlib.sha256(body).hexdigest(),
            deployment_created_at=values["deployment"]["created_at"],
            environment=values["environment"],
            event=values["event"],
            repository=values["repository"]["full_name"],
            repository_url=values["repository"]["html_url"],
            repository_id=values["repository"]["id"],
            sha=values["deployment"]["sha"].lower(),
            deployment_id=values["deployment"]["id"],
            installation_id=values["installation"]["id"],
            callback_url=values["deployment_callback_url"],
        )
        if received.refusal is not None:
            # Answered without raising: the refusal's audit event commits with the request.
            refusal = received.refusal
            return Response(error_body(refusal.code, refusal.message), status=refusal.status_code)
        assert received.delivery is not None  # noqa: S101 - evaluated and duplicate carry their delivery
        if received.outcome == "evaluated":
            return Response(_delivery_output(received.delivery, "evaluated"), status=status.HTTP_202_ACCEPTED)
        return Response(_delivery_output(received.delivery, "duplicate"), status=status.HTTP_200_OK)
