"""Writes for incidents: opening and updating them, their status, the verdict on a suspect,
the DORA classification and reports, postmortems and their actions, and the overdue sweep.
Each runs in one transaction with its audit event (``audit.record``)."""

from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import QuerySet
from django.utils import timezone

import audit
from approvals.notifications import notification_enqueue
from approvals.selectors import authority_holders
from audit.services import SYSTEM
from changelogs.models import Journey, Service
from changelogs.selectors import domain_list_with_authority, service_may_manage
from core.actors import ActingUser, Actor
from core.errors import Conflict, InvalidInput, PermissionDenied, field_error
from incidents import dora, selectors
from incidents.audit_actions import IncidentAction
from incidents.errors import IncidentError
from incidents.models import (
    ActionStatus,
    DoraClassification,
    DoraReport,
    Incident,
    IncidentSource,
    IncidentStatus,
    Postmortem,
    PostmortemAction,
    PostmortemStatus,
    RootCauseTag,
    SuspectVerdict,
    TimelineEvent,
    Verdict,
)
from incidents.rules import POSTMORTEM_SEVERITIES, Severity

# Which status may follow which. Reopening (PagerDuty's incident.reopened) goes back to open.
FOLLOWS: dict[str, frozenset[str]] = {
    IncidentStatus.OPEN: frozenset({IncidentStatus.MITIGATED, IncidentStatus.RESOLVED}),
    IncidentStatus.MITIGATED: frozenset({IncidentStatus.OPEN, IncidentStatus.RESOLVED}),
    IncidentStatus.RESOLVED: frozenset({IncidentStatus.OPEN, IncidentStatus.CLOSED}),
    IncidentStatus.CLOSED: frozenset(),
}
_TIME_OF = {
    IncidentStatus.MITIGATED: "mitigated_at",
    IncidentStatus.RESOLVED: "resolved_at",
    IncidentStatus.CLOSED: "closed_at",
}


def _actor_name(actor: ActingUser | Actor) -> str:
    return actor.name if isinstance(actor, Actor) else actor.audit_actor


def _is_person(actor: ActingUser | Actor) -> bool:
    return not isinstance(actor, Actor) and bool(actor.pk) and not actor.is_service_account


def _user_or_none(actor: ActingUser | Actor) -> ActingUser | None:
    return None if isinstance(actor, Actor) or not actor.pk else actor


def _require_services(acting_user: ActingUser | Actor, services: Iterable[Service]) -> None:
    if isinstance(acting_user, Actor) or not acting_user.pk:
        return  # an integration, mapped by an administrator
    for service in services:
        if not (acting_user.is_superuser or service_may_manage(user=acting_user, service=service)):
            raise PermissionDenied(
                IncidentError.SERVICE_NOT_YOURS, f"You may not record incidents of service {service.slug}."
            )


def _require_may_act(acting_user: ActingUser | Actor, incident: Incident) -> None:
    """Who changes an incident: an administrator, someone managing one of its services, or a
    signing authority of one of its domains. Auditors read; integrations act through their
    administrator's mapping."""
    if isinstance(acting_user, Actor) or not acting_user.pk or acting_user.is_superuser:
        return
    services = list(incident.services.all())
    if any(service_may_manage(user=acting_user, service=service) for service in services):
        return
    domains = {service.domain_id for service in services}
    if domain_list_with_authority(user=acting_user).filter(pk__in=domains).exists():
        return
    raise PermissionDenied(IncidentError.READ_ONLY, "You may read this incident but not change it.")


def _next_reference() -> str:
    numbers = [
        int(ref.removeprefix("INC-"))
        for ref in Incident.objects.filter(reference__startswith="INC-").values_list("reference", flat=True)
        if ref.removeprefix("INC-").isdigit()
    ]
    return f"INC-{max(numbers, default=0) + 1:05d}"


def _refuse_times(incident: Incident) -> None:
    if incident.detected_at < incident.started_at:
        message = "detected_at is before started_at."
        raise InvalidInput(
            IncidentError.TIMES_INCONSISTENT, message, fields={"detected_at": [field_error("invalid", message)]}
        )
    for name in ("mitigated_at", "resolved_at", "closed_at"):
        value = getattr(incident, name)
        if value is not None and value < incident.started_at:
            message = f"{name} is before started_at."
            raise InvalidInput(
                IncidentError.TIMES_INCONSISTENT, message, fields={name: [field_error("invalid", message)]}
            )


def timeline_add(
    *, incident: Incident, at: datetime, kind: str, summary: str, source: str, actor: str = "", now: datetime
) -> TimelineEvent:
    return TimelineEvent.objects.create(
        incident=incident, at=at, kind=kind, summary=summary[:5000], source=source, actor=actor, recorded_at=now
    )


def _data(incident: Incident) -> dict[str, Any]:
    return {
        "reference": incident.reference,
        "title": incident.title,
        "services": sorted(incident.services.values_list("slug", flat=True)),
        "severity": incident.severity,
        "status": incident.status,
        "source": incident.source,
        "external_id": incident.external_id,
    }


@transaction.atomic
def incident_open(
    *,
    acting_user: ActingUser | Actor,
    title: str,
    services: list[Service],
    severity: str,
    started_at: datetime,
    detected_at: datetime | None = None,
    journeys: Iterable[Journey] = (),
    description: str = "",
    planned: bool = False,
    security: bool = False,
    impact: str = "",
    impact_rationale: str = "",
    source: str = IncidentSource.MANUAL,
    external_id: str = "",
    external_url: str = "",
    source_at: datetime | None = None,
    now: datetime | None = None,
) -> Incident:
    now = now or timezone.now()
    if not services:
        raise InvalidInput("invalid_input", "An incident belongs to at least one service.")
    _require_services(acting_user, services)
    Severity(severity)
    incident = Incident(
        title=title,
        description=description,
        planned=planned,
        security=security,
        severity=severity,
        impact=impact,
        impact_rationale=impact_rationale,
        started_at=started_at,
        detected_at=detected_at or started_at,
        source=source,
        external_id=external_id,
        external_url=external_url,
        source_status_at=source_at,
        source_severity_at=source_at,
        created_by=_user_or_none(acting_user),
        created_at=now,
        updated_at=now,
    )
    _refuse_times(incident)
    for _attempt in range(5):
        incident.reference = _next_reference()
        try:
            with transaction.atomic():
                incident.save(force_insert=True)
            break
        except IntegrityError:  # a concurrent incident took the number, or the external id exists
            if external_id and Incident.objects.filter(source=source, external_id=external_id).exists():
                raise Conflict(
                    IncidentError.INCIDENT_EXISTS, f"An incident for {source} {external_id} exists."
                ) from None
            incident.pk = Incident._meta.pk.get_default()
    else:
        raise Conflict(IncidentError.REFERENCE_BUSY, "Could not number the incident; try again.")
    incident.services.set(services)
    incident.journeys.set(list(journeys))
    timeline_add(
        incident=incident,
        at=incident.detected_at,
        kind="opened",
        summary=f"Incident opened: {title} ({severity}).",
        source=source,
        actor=_actor_name(acting_user),
        now=now,
    )
    audit.record(actor=acting_user, action=IncidentAction.INCIDENT_OPENED, target=incident, data=_data(incident))
    return incident


_EDITABLE = (
    "title",
    "description",
    "planned",
    "security",
    "severity",
    "impact",
    "impact_rationale",
    "detected_at",
    "started_at",
)


@transaction.atomic
def incident_update(
    *,
    acting_user: ActingUser | Actor,
    incident: Incident,
    changes: Mapping[str, Any],
    now: datetime | None = None,
) -> Incident:
    now = now or timezone.now()
    selectors.incident_lock_in_place(incident=incident)
    _require_may_act(acting_user, incident)
    changed: dict[str, Any] = {}
    for name in _EDITABLE:
        if name in changes and changes[name] != getattr(incident, name):
            changed[name] = {"from": getattr(incident, name), "to": changes[name]}
            setattr(incident, name, changes[name])
    if "services" in changes:
        _require_services(acting_user, changes["services"])
        before = sorted(incident.services.values_list("slug", flat=True))
        after = sorted(s.slug for s in changes["services"])
        if before != after:
            if not changes["services"]:
                raise InvalidInput("invalid_input", "An incident belongs to at least one service.")
            incident.services.set(changes["services"])
            changed["services"] = {"from": before, "to": after}
    if "journeys" in changes:
        incident.journeys.set(changes["journeys"])
        changed["journeys"] = sorted(j.journey_id for j in changes["journeys"])
    if not changed:
        return incident
    _refuse_times(incident)
    incident.updated_at = now
    incident.save()
    if "severity" in changed:
        timeline_add(
            incident=incident,
            at=now,
            kind="severity",
            summary=f"Severity {changed['severity']['from']} → {changed['severity']['to']}.",
            source=IncidentSource.MANUAL,
            actor=_actor_name(acting_user),
            now=now,
        )
    audit.record(
        actor=acting_user,
        action=IncidentAction.INCIDENT_UPDATED,
        target=incident,
        data={"reference": incident.reference, "changed": changed},
    )
    return incident


@transaction.atomic
def incident_status_change(
    *,
    acting_user: ActingUser | Actor,
    incident: Incident,
    status: str,
    at: datetime | None = None,
    source: str = IncidentSource.MANUAL,
    note: str = "",
    now: datetime | None = None,
) -> Incident:
    """Move the incident on (open → mitigated → resolved → closed; reopen to open). The time of
    the step is kept; resolving a medium-or-worse incident opens its postmortem, due in
    POSTMORTEM_DUE_DAYS."""
    now = now or timezone.now()
    selectors.incident_lock_in_place(incident=incident)
    _require_may_act(acting_user, incident)
    at = at or now
    old = incident.status
    if status == old:
        return incident
    if status not in FOLLOWS[old]:
        raise Conflict(IncidentError.STATUS_TRANSITION, f"An incident that is {old} cannot become {status}.")
    incident.status = status
    if status == IncidentStatus.OPEN:
        incident.mitigated_at = incident.resolved_at = None
    elif (field := _TIME_OF.get(IncidentStatus(status))) is not None:
        setattr(incident, field, at)
        if status == IncidentStatus.RESOLVED and incident.mitigated_at is None:
            incident.mitigated_at = at
    _refuse_times(incident)
    incident.updated_at = now
    incident.save()
    timeline_add(
        incident=incident,
        at=at,
        kind="status",
        summary=f"Status {old} → {status}." + (f" {note}" if note else ""),
        source=source,
        actor=_actor_name(acting_user),
        now=now,
    )
    audit.record(
        actor=acting_user,
        action=IncidentAction.INCIDENT_STATUS_CHANGED,
        target=incident,
        data={"reference": incident.reference, "status": {"from": old, "to": status}, "at": at},
    )
    if status == IncidentStatus.RESOLVED and incident.severity in POSTMORTEM_SEVERITIES:
        _postmortem_due(acting_user=acting_user, incident=incident, now=now)
    return incident


# --- Suspects -------------------------------------------------------------------------------------


@transaction.atomic
def suspect_decide(
    *,
    acting_user: ActingUser,
    incident: Incident,
    deployment_id: Any,
    verdict: str,
    reason: str,
    now: datetime | None = None,
) -> SuspectVerdict:
    """A person says whether a suspect deployment caused the incident. A confirmed cause is a
    failed change (incidents.selectors.figures_for)."""
    now = now or timezone.now()
    selectors.incident_lock_in_place(incident=incident)
    if not _is_person(acting_user):
        raise PermissionDenied(IncidentError.PERSON_REQUIRED, "A person decides what caused an incident.")
    _require_may_act(acting_user, incident)
    if not reason.strip():
        raise InvalidInput(
            IncidentError.REASON_REQUIRED, "Say why.", fields={"reason": [field_error("required", "Say why.")]}
        )
    Verdict(verdict)
    deployment = selectors.suspect_deployments(incident).filter(pk=deployment_id).first()
    if deployment is None:
        raise InvalidInput(IncidentError.NOT_A_SUSPECT, "That deployment is not a suspect of this incident.")
    existing = (
        SuspectVerdict.objects.select_for_update(no_key=True).filter(incident=incident, deployment=deployment).first()
    )
    before = existing.verdict if existing else None
    row = existing or SuspectVerdict(incident=incident, deployment=deployment)
    row.changelog_id = deployment.changelog_id
    row.verdict = verdict
    row.reason = reason
    row.decided_by = acting_user
    row.decided_at = now
    row.save()
    timeline_add(
        incident=incident,
        at=now,
        kind="suspect",
        summary=f"Deployment of {deployment.service.slug} at {deployment.started_at:%Y-%m-%d %H:%M}: "
        f"{verdict}. {reason}",
        source=IncidentSource.MANUAL,
        actor=_actor_name(acting_user),
        now=now,
    )
    audit.record(
        actor=acting_user,
        action=IncidentAction.SUSPECT_DECIDED,
        target=incident,
        data={
            "reference": incident.reference,
            "deployment": str(deployment.pk),
            "changelog": str(deployment.changelog_id) if deployment.changelog_id else None,
            "verdict": {"from": before, "to": verdict},
            "reason": reason,
        },
    )
    return row


# --- DORA -----------------------------------------------------------------------------------------


def _require_classifier(user: ActingUser | Actor) -> None:
    if isinstance(user, Actor) or not (_is_person(user) and user.has_perm("incidents.classify_incident")):
        raise PermissionDenied(
            IncidentError.NOT_CLASSIFIER, "Only people who classify incidents under DORA may do this."
        )


@transaction.atomic
def dora_classify(
    *, acting_user: ActingUser, incident: Incident, criteria: dora.Criteria, now: datetime | None = None
) -> DoraClassification:
    """Record the criteria, compute the result with the thresholds in force and, for a major
    incident, start the reporting clock (the reports not yet sent are due again from now)."""
    now = now or timezone.now()
    selectors.incident_lock_in_place(incident=incident)
    _require_classifier(acting_user)
    thresholds = selectors.thresholds_in_force()
    result = dora.classify(criteria, thresholds)
    row = DoraClassification.objects.filter(incident=incident).first() or DoraClassification(incident=incident)
    first_classified = row.classified_at or now
    row.criteria = criteria.to_json()
    row.met = [str(c) for c in result.met]
    row.major = result.major
    row.why = result.why
    row.thresholds_version = result.thresholds_version
    row.classified_by = acting_user
    row.classified_at = first_classified
    row.save()
    if result.major:
        _reports_schedule(incident=incident, classified_at=first_classified)
    audit.record(
        actor=acting_user,
        action=IncidentAction.DORA_CLASSIFIED,
        target=incident,
        data={
            "reference": incident.reference,
            "criteria": row.criteria,
            "met": row.met,
            "major": row.major,
            "thresholds_version": row.thresholds_version,
        },
    )
    return row


def _reports_schedule(*, incident: Incident, classified_at: datetime) -> None:
    reports = {r.kind: r for r in DoraReport.objects.filter(incident=incident)}
    sent = {dora.ReportKind(k): r.sent_at for k, r in reports.items() if r.sent_at}
    for kind in dora.ReportKind:
        due = dora.report_due(kind, classified_at=classified_at, detected_at=incident.detected_at, sent=sent)
        report = reports.get(kind.value)
        if report is None:
            DoraReport.objects.create(incident=incident, kind=kind.value, due_at=due)
        elif report.sent_at is None and report.due_at != due:
            report.due_at = due
            report.save(update_fields=["due_at"])


@transaction.atomic
def dora_report_sent(
    *,
    acting_user: ActingUser,
    incident: Incident,
    kind: str,
    reference: str,
    sent_at: datetime | None = None,
    now: datetime | None = None,
) -> DoraReport:
    now = now or timezone.now()
    selectors.incident_lock_in_place(incident=incident)
    _require_classifier(acting_user)
    report = DoraReport.objects.select_for_update(no_key=True).filter(incident=incident, kind=kind).first()
    if report is None:
        raise Conflict(IncidentError.NOT_MAJOR, "No such report is owed: the incident is not classified major.")
    if report.sent_at is not None:
        raise Conflict(IncidentError.REPORT_ALREADY_SENT, f"The {kind} report was marked sent already.")
    if not reference.strip():
        raise InvalidInput(IncidentError.REASON_REQUIRED, "Give the report's reference.")
    report.sent_at = sent_at or now
    report.reference = reference
    report.sent_by = acting_user
    report.save()
    classification = DoraClassification.objects.get(incident=incident)
    _reports_schedule(incident=incident, classified_at=classification.classified_at)
    audit.record(
        actor=acting_user,
        action=IncidentAction.DORA_REPORT_SENT,
        target=incident,
        data={
            "reference": incident.reference,
            "kind": kind,
            "report_reference": reference,
            "due_at": report.due_at,
            "sent_at": report.sent_at,
        },
    )
    return report


# --- Postmortems ---------------------------------------------------------------------------------


def _chronology(incident: Incident) -> list[dict[str, str]]:
    return [
        {"at": event.at.isoformat(), "text": event.summary, "source": event.source}
        for event in incident.timeline.order_by("at", "id")
    ]


def _postmortem_due(*, acting_user: ActingUser | Actor, incident: Incident, now: datetime) -> Postmortem:
    existing = Postmortem.objects.filter(incident=incident).first()
    due = (incident.resolved_at or now) + timedelta(days=settings.POSTMORTEM_DUE_DAYS)
    if existing is not None:
        if existing.status == PostmortemStatus.DRAFT and existing.due_at != due:
            existing.due_at = due
            existing.overdue_notified_at = None
            existing.save(update_fields=["due_at", "overdue_notified_at"])
        return existing
    return _postmortem_open(acting_user=acting_user, incident=incident, due_at=due, now=now)


def _postmortem_open(
    *, acting_user: ActingUser | Actor, incident: Incident, due_at: datetime | None, now: datetime
) -> Postmortem:
    """The incident's postmortem, drafted from its timeline, and its audit event."""
    postmortem = Postmortem.objects.create(
        incident=incident,
        due_at=due_at,
        chronology=_chronology(incident),
        created_by=_user_or_none(acting_user),
        created_at=now,
    )
    audit.record(
        actor=acting_user,
        action=IncidentAction.POSTMORTEM_OPENED,
        target=postmortem,
        data={"incident": incident.reference, "due_at": due_at},
    )
    return postmortem


@transaction.atomic
def postmortem_start(*, acting_user: ActingUser, incident: Incident, now: datetime | None = None) -> Postmortem:
    """Open the postmortem of an incident before it is resolved, or of a low one."""
    now = now or timezone.now()
    selectors.incident_lock_in_place(incident=incident)
    _require_may_act(acting_user, incident)
    if Postmortem.objects.filter(incident=incident).exists():
        raise Conflict(IncidentError.POSTMORTEM_EXISTS, "The incident has a postmortem.")
    due_at = (incident.resolved_at + timedelta(days=settings.POSTMORTEM_DUE_DAYS)) if incident.resolved_at else None
    return _postmortem_open(acting_user=acting_user, incident=incident, due_at=due_at, now=now)


_POSTMORTEM_FIELDS = (
    "customer_impact",
    "impact_determination",
    "components_impacted",
    "root_cause",
    "chronology",
    "participants",
)


@transaction.atomic
def postmortem_update(
    *,
    acting_user: ActingUser | Actor,
    postmortem: Postmortem,
    changes: Mapping[str, Any],
    complete: bool = False,
    now: datetime | None = None,
) -> Postmortem:
    now = now or timezone.now()
    selectors.incident_lock_in_place(incident=postmortem.incident)
    postmortem.refresh_from_db()
    _require_may_act(acting_user, postmortem.incident)
    if postmortem.status == PostmortemStatus.COMPLETED:
        raise Conflict(IncidentError.POSTMORTEM_COMPLETED, "The postmortem is completed; it is no longer edited.")
    changed: dict[str, Any] = {}
    for name in _POSTMORTEM_FIELDS:
        if name in changes and changes[name] != getattr(postmortem, name):
            changed[name] = changes[name]
            setattr(postmortem, name, changes[name])
    if "tags" in changes:
        slugs = sorted(set(changes["tags"]))
        tags = list(RootCauseTag.objects.filter(slug__in=slugs, active=True))
        unknown = sorted(set(slugs) - {t.slug for t in tags})
        if unknown:
            raise InvalidInput(IncidentError.UNKNOWN_TAG, f"Unknown root-cause tag(s): {', '.join(unknown)}.")
        postmortem.tags.set(tags)
        changed["tags"] = slugs
    action = IncidentAction.POSTMORTEM_UPDATED
    if complete:
        if not (postmortem.root_cause.strip() and postmortem.customer_impact.strip() and postmortem.tags.exists()):
            raise InvalidInput(
                IncidentError.POSTMORTEM_INCOMPLETE,
                "A completed postmortem states the customer impact, the root cause and its tags.",
            )
        postmortem.status = PostmortemStatus.COMPLETED
        postmortem.completed_at = now
        action = IncidentAction.POSTMORTEM_COMPLETED
    postmortem.save()
    audit.record(
        actor=acting_user,
        action=action,
        target=postmortem,
        data={"incident": postmortem.incident.reference, "changed": changed, "status": postmortem.status},
    )
    return postmortem


@transaction.atomic
def action_add(
    *,
    acting_user: ActingUser | Actor,
    postmortem: Postmortem,
    kind: str,
    description: str,
    owner: Any,
    due_date: Any,
    ticket_url: str = "",
    now: datetime | None = None,
) -> PostmortemAction:
    now = now or timezone.now()
    selectors.incident_lock_in_place(incident=postmortem.incident)
    postmortem.refresh_from_db()
    _require_may_act(acting_user, postmortem.incident)
    action = PostmortemAction.objects.create(
        postmortem=postmortem,
        kind=kind,
        description=description,
        owner=owner,
        due_date=due_date,
        ticket_url=ticket_url,
        created_at=now,
    )
    audit.record(
        actor=acting_user,
        action=IncidentAction.ACTION_ADDED,
        target=postmortem,
        data={
            "action": action.pk,
            "kind": kind,
            "owner": owner.username,
            "due_date": due_date,
            "ticket_url": ticket_url,
        },
    )
    return action


@transaction.atomic
def action_status_change(*, acting_user: ActingUser, action: PostmortemAction, status: str) -> PostmortemAction:
    selectors.incident_lock_in_place(incident=action.postmortem.incident)
    action.refresh_from_db()
    _require_may_act(acting_user, action.postmortem.incident)
    old = action.status
    ActionStatus(status)
    if old == status:
        return action
    action.status = status
    action.save(update_fields=["status"])
    audit.record(
        actor=acting_user,
        action=IncidentAction.ACTION_UPDATED,
        target=action.postmortem,
        data={"action": action.pk, "status": {"from": old, "to": status}},
    )
    return action


# --- The overdue sweep (beat) --------------------------------------------------------------------


def _domain_people(incident: Incident) -> list[str]:
    emails: set[str] = set()
    for domain in selectors.domains_of(incident):
        emails |= {user.email for user in authority_holders(domain=domain) if user.email}
    return sorted(emails)


def _each_overdue_once(overdue: QuerySet[Any], *, now: datetime, notify: Callable[[Any], None]) -> int:
    """Claim the overdue rows not yet notified one at a time (skip locked, so that two beats at
    once take different rows), mark each notified and hand it to ``notify``, each in its own
    transaction. Returns how many were notified."""
    notified = 0
    while True:
        with transaction.atomic():
            row = overdue.filter(overdue_notified_at=None).select_for_update(skip_locked=True, of=("self",)).first()
            if row is None:
                return notified
            row.overdue_notified_at = now
            row.save(update_fields=["overdue_notified_at"])
            notify(row)
            notified += 1


def overdue_notify(*, now: datetime | None = None) -> dict[str, int]:
    """Notify, once each, the postmortems, long-term actions and DORA reports past their due
    time. Each is marked, audited and notified in its own transaction."""
    now = now or timezone.now()

    def postmortem_overdue(postmortem: Postmortem) -> None:
        incident = postmortem.incident
        audit.record(
            actor=SYSTEM,
            action=IncidentAction.POSTMORTEM_OVERDUE,
            target=postmortem,
            data={"incident": incident.reference, "due_at": postmortem.due_at},
        )
        notification_enqueue(
            event="postmortem.overdue",
            subject=f"[Release Gate] OVERDUE: postmortem of {incident.reference} {incident.title}",
            payload={"incident": incident.reference, "due_at": postmortem.due_at},
            emails=_domain_people(incident),
            now=now,
        )

    def action_overdue(action: PostmortemAction) -> None:
        incident = action.postmortem.incident
        audit.record(
            actor=SYSTEM,
            action=IncidentAction.ACTION_OVERDUE,
            target=action.postmortem,
            data={"incident": incident.reference, "action": action.pk, "due_date": action.due_date},
        )
        notification_enqueue(
            event="postmortem_action.overdue",
            subject=f"[Release Gate] OVERDUE: long-term fix of {incident.reference}: {action.description[:80]}",
            payload={
                "incident": incident.reference,
                "action": action.pk,
                "due_date": action.due_date,
                "ticket_url": action.ticket_url,
                "owner": action.owner.username,
            },
            emails=sorted({action.owner.email, *_domain_people(incident)} - {""}),
            now=now,
        )

    def report_overdue(report: DoraReport) -> None:
        incident = report.incident
        audit.record(
            actor=SYSTEM,
            action=IncidentAction.DORA_REPORT_OVERDUE,
            target=incident,
            data={"reference": incident.reference, "kind": report.kind, "due_at": report.due_at},
        )
        notification_enqueue(
            event="dora_report.overdue",
            subject=f"[Release Gate] OVERDUE: DORA {report.kind} report of major incident {incident.reference}",
            payload={"incident": incident.reference, "kind": report.kind, "due_at": report.due_at},
            emails=_domain_people(incident),
            now=now,
        )

    return {
        "postmortems": _each_overdue_once(selectors.postmortems_overdue(now=now), now=now, notify=postmortem_overdue),
        "actions": _each_overdue_once(selectors.actions_overdue(now=now), now=now, notify=action_overdue),
        "dora_reports": _each_overdue_once(selectors.dora_reports_overdue(now=now), now=now, notify=report_overdue),
    }
