"""Incidents from PagerDuty V3 webhooks and from a generic signed JSON webhook.

Both receivers verify an HMAC-SHA256 signature over the raw body before anything reads it,
turn the event into one ``SourceEvent`` and hand it to ``event_receive``, which in one
transaction stores the event (unique per source and event id), opens or updates the incident
through incidents.services, puts the event on the incident's timeline and audits it.

- **Signatures.** PagerDuty signs the body with each of the subscription's secrets and sends
  ``X-PagerDuty-Signature: v1=<hex>[,v1=<hex>…]``: several while a secret is rotated. We accept
  the body when any signature matches any of PAGERDUTY_WEBHOOK_SECRETS (ours may hold the old
  and the new secret while we rotate). The generic receiver takes ``X-Signature-256:
  sha256=<hex>`` with INCIDENT_WEBHOOK_SECRETS, the same way.
- **Idempotent.** The same event id with the same body again is a redelivery: acknowledged,
  nothing done again. The same id with another body is refused (409).
- **Replays.** An event that occurred longer ago than INCIDENT_EVENT_MAX_AGE_SECONDS (or ahead
  of our clock) is refused and audited, not applied: a captured delivery cannot be played later.
- **Out of order.** Deliveries can overtake each other. The incident keeps the source time of
  its status and severity; an older event goes on the timeline and changes neither, so a late
  ``incident.acknowledged`` does not reopen an incident already resolved.
"""

import hashlib
import hmac
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime

import audit
from changelogs.models import Service
from core.actors import Actor
from core.errors import ApplicationError, Conflict, InvalidInput, NotFound
from incidents import services
from incidents.audit_actions import IncidentAction
from incidents.errors import IncidentError
from incidents.models import InboundEvent, Incident, IncidentSource, IncidentStatus, PagerDutyService
from incidents.rules import Severity

PAGERDUTY = Actor("integration:pagerduty")
CLOCK_SKEW = timedelta(minutes=5)


class SignatureInvalid(ApplicationError):
    status_code = 401


def hmac_hex(secret: str, body: bytes) -> str:
    return hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def signature_verify(*, body: bytes, header: str, secrets: Sequence[str], prefix: str, name: str) -> None:
    """Raise unless one of the header's ``prefix``-signatures is the HMAC-SHA256 of the body
    under one of ``secrets``; signatures of other versions are ignored."""
    if not secrets:
        raise NotFound(IncidentError.NOT_CONFIGURED, f"This receiver is not configured ({name}).")
    given = [part.strip()[len(prefix) :] for part in header.split(",") if part.strip().startswith(prefix)]
    expected = [hmac_hex(secret, body).encode("ascii") for secret in secrets]
    # compare_digest over bytes: a header with non-ASCII characters is a mismatch, not an error.
    if not any(hmac.compare_digest(e, g.encode("utf-8", "replace")) for e in expected for g in given):
        raise SignatureInvalid(IncidentError.SIGNATURE_INVALID, "The signature is missing or does not match.")


@dataclass(frozen=True)
class SourceEvent:
    """One event from a tool, in the receivers' common shape."""

    source: str
    event_id: str
    event_type: str
    occurred_at: datetime
    external_id: str  # the tool's incident id
    summary: str
    actor: str = ""
    title: str = ""
    url: str = ""
    created_at: datetime | None = None
    severity: str | None = None  # set: the event says what the severity is
    status: str | None = None  # set: the event moves the incident to this status
    services: list[Service] = field(default_factory=list)  # set: the incident may be opened


@dataclass(frozen=True)
class Received:
    outcome: str  # applied, stale, duplicate, unmapped, refused
    incident: Incident | None
    refusal: ApplicationError | None = None


def _time(value: Any, name: str) -> datetime:
    parsed = parse_datetime(value) if isinstance(value, str) else None
    if parsed is None or parsed.tzinfo is None:
        raise InvalidInput(IncidentError.EVENT_INVALID, f"{name} is not a date-time with a time zone.")
    return parsed


# --- PagerDuty ----------------------------------------------------------------------------------

_PRIORITY_SEVERITY = {
    "P1": Severity.CRITICAL,
    "P2": Severity.HIGH,
    "P3": Severity.MEDIUM,
    "P4": Severity.LOW,
    "P5": Severity.LOW,
}
_STATUS_OF_EVENT = {"incident.resolved": IncidentStatus.RESOLVED, "incident.reopened": IncidentStatus.OPEN}


def _obj(value: Any) -> dict[str, Any]:
    """A nested object of the payload, or empty when it is missing or of another type: what
    PagerDuty sends is signed, not necessarily well-formed."""
    return value if isinstance(value, dict) else {}


def _text(value: Any, limit: int) -> str:
    return value[:limit] if isinstance(value, str) else ""


def _pd_severity(data: dict[str, Any]) -> str:
    priority = _text(_obj(data.get("priority")).get("summary"), 16)
    if priority in _PRIORITY_SEVERITY:
        return _PRIORITY_SEVERITY[priority].value
    return Severity.HIGH.value if data.get("urgency") == "high" else Severity.LOW.value


def pagerduty_event(payload: Any) -> SourceEvent | None:
    """A PagerDuty V3 webhook payload as a SourceEvent; None for events not about incidents."""
    event = payload.get("event") if isinstance(payload, dict) else None
    if not isinstance(event, dict) or not isinstance(event.get("id"), str) or not isinstance(event.get("data"), dict):
        raise InvalidInput(IncidentError.EVENT_INVALID, "Not a PagerDuty V3 webhook payload (event.id, event.data).")
    event_type = _text(event.get("event_type"), 64)
    if not event_type.startswith("incident."):
        return None
    data: dict[str, Any] = event["data"]
    occurred_at = _time(event.get("occurred_at"), "event.occurred_at")
    agent = _text(_obj(event.get("agent")).get("summary"), 200)
    priority = _text(_obj(data.get("priority")).get("summary"), 16)
    if data.get("type") == "incident":
        mapped = [
            m.service
            for m in PagerDutyService.objects.filter(
                pagerduty_id=_text(_obj(data.get("service")).get("id"), 32)
            ).select_related("service")
        ]
        summary = {
            "incident.triggered": f"Triggered in PagerDuty: {_text(data.get('title'), 300)}",
            "incident.acknowledged": "Acknowledged in PagerDuty.",
            "incident.resolved": "Resolved in PagerDuty."
            + (f" {_text(data.get('resolve_reason'), 1000)}" if data.get("resolve_reason") else ""),
            "incident.priority_updated": f"Priority set to {priority or 'none'} in PagerDuty.",
        }.get(event_type, f"{event_type} in PagerDuty.")
        return SourceEvent(
            source=IncidentSource.PAGERDUTY,
            event_id=event["id"],
            event_type=event_type,
            occurred_at=occurred_at,
            external_id=_text(data.get("id"), 200),
            summary=summary,
            actor=agent,
            title=_text(data.get("title"), 300),
            url=_text(data.get("html_url"), 500) if _text(data.get("html_url"), 500).startswith("https://") else "",
            created_at=_time(data["created_at"], "event.data.created_at") if data.get("created_at") else None,
            # Every incident event carries the incident's priority at that moment.
            severity=_pd_severity(data),
            status=_STATUS_OF_EVENT.get(event_type),
            services=mapped,
        )
    incident = _obj(data.get("incident"))
    text = _text(data.get("content"), 4000) or _text(data.get("message"), 4000)
    return SourceEvent(
        source=IncidentSource.PAGERDUTY,
        event_id=event["id"],
        event_type=event_type,
        occurred_at=occurred_at,
        external_id=_text(incident.get("id"), 200),
        summary=f"{event_type}: {text}".strip(),
        actor=agent,
    )


# --- The generic receiver -----------------------------------------------------------------------

GENERIC_ACTIONS = {
    "open": None,
    "update": None,
    "note": None,
    "mitigate": IncidentStatus.MITIGATED,
    "resolve": IncidentStatus.RESOLVED,
    "reopen": IncidentStatus.OPEN,
}


def generic_event(values: dict[str, Any]) -> SourceEvent:
    """The generic receiver's validated input (incidents.apis.GenericEventInput) as a SourceEvent."""
    slugs = values.get("services") or []
    found = list(Service.objects.filter(slug__in=slugs))
    if len(found) != len(set(slugs)):
        unknown = sorted(set(slugs) - {s.slug for s in found})
        raise InvalidInput(IncidentError.EVENT_INVALID, f"Unknown service(s): {', '.join(unknown)}.")
    return SourceEvent(
        source=IncidentSource.WEBHOOK,
        event_id=f"{values['tool']}:{values['event_id']}",
        event_type=f"{values['tool']}.{values['action']}",
        occurred_at=values["occurred_at"],
        external_id=f"{values['tool']}:{values['incident_id']}",
        summary=values.get("summary") or f"{values['action']} from {values['tool']}",
        actor=values["tool"],
        title=values.get("title", ""),
        url=values.get("url", ""),
        created_at=values.get("started_at"),
        severity=values.get("severity"),
        status=GENERIC_ACTIONS[values["action"]],
        services=found,
    )


# --- Applying an event --------------------------------------------------------------------------


def _refused(event: SourceEvent, error: ApplicationError, body_sha256: str) -> Received:
    audit.record(
        actor=Actor(f"integration:{event.source}"),
        action=IncidentAction.INCIDENT_EVENT_REFUSED,
        target=("incidents.inboundevent", f"{event.source}:{event.event_id}"),
        data={
            "event_type": event.event_type,
            "occurred_at": event.occurred_at,
            "code": error.code,
            "body_sha256": body_sha256,
        },
    )
    return Received("refused", None, error)


def _seen_before(event: SourceEvent, seen: InboundEvent, body_sha256: str) -> Received:
    if seen.body_sha256 == body_sha256:
        return Received("duplicate", seen.incident)
    return _refused(
        event, Conflict(IncidentError.EVENT_ID_REUSED, "This event id came before with another body."), body_sha256
    )


@transaction.atomic
def event_receive(*, event: SourceEvent, body_sha256: str, now: datetime | None = None) -> Received:
    now = now or timezone.now()
    actor = Actor(f"integration:{event.source}")
    seen = InboundEvent.objects.filter(source=event.source, event_id=event.event_id).first()
    if seen is not None:
        return _seen_before(event, seen, body_sha256)
    max_age = timedelta(seconds=settings.INCIDENT_EVENT_MAX_AGE_SECONDS)
    if event.occurred_at < now - max_age or event.occurred_at > now + CLOCK_SKEW:
        return _refused(
            event,
            Conflict(
                IncidentError.EVENT_REPLAYED,
                f"The event occurred at {event.occurred_at:%Y-%m-%dT%H:%M:%SZ}: "
                "outside the time a delivery is accepted (a replay).",
            ),
            body_sha256,
        )
    try:
        with transaction.atomic():
            claim = InboundEvent.objects.create(
                source=event.source,
                event_id=event.event_id,
                event_type=event.event_type,
                body_sha256=body_sha256,
                occurred_at=event.occurred_at,
                outcome="pending",
                received_at=now,
            )
    except IntegrityError:  # the same event delivered twice at once: the other delivery committed it
        return _seen_before(event, InboundEvent.objects.get(source=event.source, event_id=event.event_id), body_sha256)
    incident = (
        Incident.objects.select_for_update(no_key=True)
        .filter(source=event.source, external_id=event.external_id)
        .first()
        if event.external_id
        else None
    )
    outcome = "applied"
    if incident is None:
        if not event.services or not event.title:
            claim.outcome = "unmapped"
            claim.save(update_fields=["outcome"])
            audit.record(
                actor=actor,
                action=IncidentAction.INCIDENT_EVENT_RECEIVED,
                target=("incidents.inboundevent", f"{event.source}:{event.event_id}"),
                data={"event_type": event.event_type, "outcome": "unmapped", "external_id": event.external_id},
            )
            return Received("unmapped", None)
        started = event.created_at or event.occurred_at
        incident = services.incident_open(
            acting_user=actor,
            title=event.title,
            services=event.services,
            severity=event.severity or Severity.HIGH.value,
            started_at=started,
            detected_at=started,
            source=event.source,
            external_id=event.external_id,
            external_url=event.url,
            source_at=event.occurred_at,
            now=now,
        )
    elif event.severity and (incident.source_severity_at is None or event.occurred_at >= incident.source_severity_at):
        if event.severity != incident.severity:
            services.incident_update(
                acting_user=actor, incident=incident, changes={"severity": event.severity}, now=now
            )
        incident.source_severity_at = event.occurred_at
        incident.save(update_fields=["source_severity_at"])
    elif event.severity:
        outcome = "stale"
    if event.status:
        newer = incident.source_status_at is None or event.occurred_at >= incident.source_status_at
        if newer and event.status in services.FOLLOWS[incident.status]:
            services.incident_status_change(
                acting_user=actor,
                incident=incident,
                status=event.status,
                at=event.occurred_at,
                source=event.source,
                now=now,
            )
            incident.source_status_at = event.occurred_at
            incident.save(update_fields=["source_status_at"])
        elif not newer:
            outcome = "stale"
    services.timeline_add(
        incident=incident,
        at=event.occurred_at,
        kind=event.event_type,
        summary=event.summary
        + (" (arrived after newer events: did not change the incident)" if outcome == "stale" else ""),
        source=event.source,
        actor=event.actor,
        now=now,
    )
    claim.incident = incident
    claim.outcome = outcome
    claim.save(update_fields=["incident", "outcome"])
    audit.record(
        actor=actor,
        action=IncidentAction.INCIDENT_EVENT_RECEIVED,
        target=incident,
        data={
            "reference": incident.reference,
            "event_id": event.event_id,
            "event_type": event.event_type,
            "occurred_at": event.occurred_at,
            "outcome": outcome,
        },
    )
    return Received(outcome, incident)
