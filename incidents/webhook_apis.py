"""The receivers PagerDuty and other tools call (incidents/receivers.py, docs/incidents.md).
They are not users of ours: no token or session; the signature over the raw body authenticates."""

import hashlib
from typing import Any

from django.conf import settings
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from core.api import DeliveryApi, InstantField, StrictInput, delivery_body, delivery_json, error_responses
from core.errors import CommonError, InvalidInput, error_body
from incidents import receivers
from incidents.apis import Text
from incidents.rules import Severity


class ReceivedOutput(serializers.Serializer[Any]):
    received = serializers.ChoiceField(
        choices=["applied", "stale", "duplicate", "unmapped", "ignored"],
        help_text="applied: the incident was opened or updated; stale: older than what the incident shows, put on "
        "its timeline only; duplicate: this event was received before, nothing done again; unmapped: no Release "
        "Gate service for the tool's service (an administrator maps it); ignored: not about an incident.",
    )
    incident = serializers.CharField(allow_null=True, help_text="The incident's reference.")


def _signed_body(request: Request, *, header: str, secrets: str, prefix: str) -> bytes:
    """The delivery's raw body, once the signature in ``header`` verifies with one of the
    secrets the setting named ``secrets`` holds."""
    body = delivery_body(request)
    receivers.signature_verify(
        body=body,
        header=request.headers.get(header, ""),
        secrets=getattr(settings, secrets),
        prefix=prefix,
        name=secrets,
    )
    return body


def _answer(received: receivers.Received) -> Response:
    if received.refusal is not None:
        # Answered without raising: the refusal's audit event commits with the request.
        return Response(
            error_body(received.refusal.code, received.refusal.message), status=received.refusal.status_code
        )
    code = status.HTTP_202_ACCEPTED if received.outcome in {"applied", "stale"} else status.HTTP_200_OK
    reference = received.incident.reference if received.incident else None
    return Response(ReceivedOutput({"received": received.outcome, "incident": reference}).data, status=code)


_RESPONSES = {
    202: OpenApiResponse(ReceivedOutput, description="Stored and applied (or put on the timeline)."),
    200: OpenApiResponse(ReceivedOutput, description="A redelivery, an unmapped service, or not about an incident."),
    **error_responses(400, 401, 404, 409, 413),
}


class PagerDutyWebhookApi(DeliveryApi):
    @extend_schema(
        operation_id="integrations_pagerduty",
        auth=[],
        request={"application/json": {"type": "object", "additionalProperties": True}},
        parameters=[
            OpenApiParameter(
                "X-PagerDuty-Signature",
                str,
                OpenApiParameter.HEADER,
                description="v1=<hex HMAC-SHA256>, comma-separated when several (secret rotation).",
            ),
        ],
        responses=_RESPONSES,
        description="PagerDuty V3 webhooks (incident.triggered, acknowledged, priority_updated, annotated, "
        "resolved, reopened…). Verified with X-PagerDuty-Signature against PAGERDUTY_WEBHOOK_SECRETS (401 "
        "`incident_webhook_signature_invalid`; 404 `incident_webhook_not_configured`). Idempotent on event.id; the "
        "same id with another body is refused (409 `incident_event_id_reused`), an event older than "
        "INCIDENT_EVENT_MAX_AGE_SECONDS too (409 `incident_event_replayed`); refusals are audited.",
    )
    def post(self, request: Request) -> Response:
        body = _signed_body(request, header="X-PagerDuty-Signature", secrets="PAGERDUTY_WEBHOOK_SECRETS", prefix="v1=")
        event = receivers.pagerduty_event(delivery_json(body))
        if event is None:
            return Response(ReceivedOutput({"received": "ignored", "incident": None}).data)
        return _answer(receivers.event_receive(event=event, body_sha256=hashlib.sha256(body).hexdigest()))


class GenericEventInput(StrictInput):
    # Strings and flags are strict (incidents.apis.Text): a tool's 0 is not "0".
    tool = serializers.RegexField(r"^[a-z][a-z0-9-]{1,31}$", help_text="opsgenie, alertmanager…")
    event_id = Text(max_length=150)
    incident_id = serializers.CharField(max_length=150, help_text="The tool's id of the incident.")
    action = serializers.ChoiceField(choices=sorted(receivers.GENERIC_ACTIONS))
    occurred_at = InstantField()
    started_at = InstantField(required=False, allow_null=True, default=None)
    title = serializers.CharField(max_length=300, required=False, allow_blank=True, default="")
    severity = serializers.ChoiceField(
        choices=[s.value for s in Severity], required=False, allow_null=True, default=None
    )
    services = serializers.ListField(child=serializers.SlugField(), required=False, default=list, max_length=50)
    summary = serializers.CharField(max_length=5000, required=False, allow_blank=True, default="")
    url = serializers.URLField(max_length=500, required=False, allow_blank=True, default="")


class GenericWebhookApi(DeliveryApi):
    @extend_schema(
        operation_id="integrations_incident_events",
        auth=[],
        request=GenericEventInput,
        parameters=[
            OpenApiParameter(
                "X-Signature-256",
                str,
                OpenApiParameter.HEADER,
                description="sha256=<hex HMAC-SHA256 of the body> with an INCIDENT_WEBHOOK_SECRETS secret.",
            ),
        ],
        responses=_RESPONSES,
        description="A signed JSON event from another tool (Opsgenie, Alertmanager through a relay): opens or "
        "updates the incident the tool's incident id names, like the PagerDuty receiver, with the same rules.",
    )
    def post(self, request: Request) -> Response:
        body = _signed_body(request, header="X-Signature-256", secrets="INCIDENT_WEBHOOK_SECRETS", prefix="sha256=")
        payload = delivery_json(body)
        if not isinstance(payload, dict):
            raise InvalidInput(CommonError.MALFORMED_REQUEST, "The delivery is not a JSON object.")
        given = GenericEventInput(data=payload)
        given.is_valid(raise_exception=True)
        event = receivers.generic_event(dict(given.validated_data))
        return _answer(receivers.event_receive(event=event, body_sha256=hashlib.sha256(body).hexdigest()))
