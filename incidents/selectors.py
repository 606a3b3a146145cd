"""Reads for incidents: who sees what, suspects, the gate's facts, overdue work and figures."""

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from django.apps import apps
from django.conf import settings
from django.db.models import Q, QuerySet

from changelogs.models import Changelog, Domain, Service
from changelogs.selectors import domain_list_with_authority, service_list_managed
from core.actors import ActingUser
from core.errors import NotFound
from incidents import dora
from incidents.models import (
    ActionKind,
    ActionStatus,
    DoraReport,
    DoraThresholdVersion,
    Incident,
    IncidentGatePolicy,
    Postmortem,
    PostmortemAction,
    PostmortemStatus,
    SuspectVerdict,
    Verdict,
)
from incidents.rules import (
    DEFAULT_GATE_SEVERITY,
    UNRESOLVED,
    DeliveryFigures,
    DeploymentFact,
    delivery_figures,
    reference_key,
)

VIEW_INCIDENT = "incidents.view_incident"


def deployment_model() -> Any:
    """The gate's deployments (releasegate.Deployment). The gate sits above this app (it asks it
    about open incidents), so this app names the model rather than importing the gate's module."""
    return apps.get_model("releasegate", "Deployment")


def incident_list_visible(*, user: ActingUser) -> QuerySet[Incident]:
    """Everything for auditors, admins and those who classify incidents under DORA; otherwise
    the incidents of services the user manages and of domains where the user holds a signing
    authority."""
    incidents = Incident.objects.all()
    if user.is_superuser or user.has_perm(VIEW_INCIDENT) or user.has_perm("incidents.classify_incident"):
        return incidents
    return incidents.filter(
        Q(services__in=service_list_managed(user=user)) | Q(services__domain__in=domain_list_with_authority(user=user))
    ).distinct()


def incident_get(*, user: ActingUser, incident_id: UUID | str) -> Incident:
    found = incident_list_visible(user=user).filter(pk=incident_id).values_list("pk", flat=True).first()
    if found is None:
        raise NotFound("not_found", "No such incident.")
    return Incident.objects.get(pk=found)


def incident_lock_in_place(*, incident: Incident) -> Incident:
    """Lock the incident's row for the rest of the transaction and bring the caller's copy up to
    date under the lock. Every service that decides on an incident, its suspects, DORA reports
    or postmortem starts here itself, whoever called it (the API does not lock for it)."""
    Incident.objects.select_for_update(no_key=True, of=("self",)).filter(pk=incident.pk).values_list("pk").get()
    incident.refresh_from_db()
    return incident


def incident_for_reference(*, reference: str) -> Incident | None:
    """The incident a hotfix's free-text ``incident_reference`` names, when it exists."""
    key = reference_key(reference)
    return Incident.objects.filter(reference=key).first() if key else None


def domains_of(incident: Incident) -> list[Domain]:
    return list(Domain.objects.filter(services__incidents=incident).distinct().order_by("slug"))


# --- Suspects ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Suspect:
    deployment: Any
    changelog: Changelog | None
    same_service: bool  # a service of the incident (else of its domains)
    verdict: SuspectVerdict | None


def suspect_deployments(incident: Incident) -> QuerySet[Any]:
    """Production deployments of the incident's services and of the other services of their
    domains that went out (succeeded or failed) in the window before the incident started."""
    window = timedelta(hours=settings.INCIDENT_SUSPECT_WINDOW_HOURS)
    domains = Domain.objects.filter(services__incidents=incident)
    deployment = deployment_model()
    found: QuerySet[Any] = (
        deployment.objects.filter(
            service__domain__in=domains,
            environment__in=settings.GATE_ENVIRONMENTS,
            status__in=("succeeded", "failed"),
            started_at__gte=incident.started_at - window,
            started_at__lte=incident.started_at,
        )
        .select_related("service", "changelog")
        .order_by("-started_at", "id")
    )
    return found


def suspect_list(*, incident: Incident) -> list[Suspect]:
    own = set(incident.services.values_list("pk", flat=True))
    verdicts = {
        v.deployment_id: v for v in SuspectVerdict.objects.filter(incident=incident).select_related("decided_by")
    }
    return [
        Suspect(
            deployment=d,
            changelog=d.changelog,
            same_service=d.service_id in own,
            verdict=verdicts.get(d.pk),
        )
        for d in suspect_deployments(incident)
    ]


def incidents_of_changelog(*, changelog: Changelog) -> dict[str, list[Incident]]:
    """The incidents a change is linked to: confirmed as caused by it, and answered by it (a
    hotfix naming an existing incident)."""
    caused = Incident.objects.filter(verdicts__changelog=changelog, verdicts__verdict=Verdict.CAUSED_BY).distinct()
    answered: list[Incident] = []
    revision = changelog.current_revision
    hotfix = (revision.content or {}).get("hotfix") if revision else None
    if hotfix:
        found = incident_for_reference(reference=hotfix.get("incident_reference", ""))
        if found:
            answered.append(found)
    return {"caused": list(caused), "answered": answered}


# --- The gate ------------------------------------------------------------------------------------


def gate_min_severity(*, domain_id: int) -> str | None:
    """From which severity an unresolved incident stops the domain's changes; None: off."""
    policy = IncidentGatePolicy.objects.filter(domain_id=domain_id).first()
    if policy is None:
        return DEFAULT_GATE_SEVERITY.value
    return policy.min_severity if policy.enabled else None


def unresolved_incidents_of_domain(*, domain_id: int) -> list[tuple[str, str]]:
    return sorted(
        set(
            Incident.objects.filter(status__in=UNRESOLVED, services__domain_id=domain_id).values_list(
                "reference", "severity"
            )
        )
    )


# --- DORA ----------------------------------------------------------------------------------------


def thresholds_in_force() -> dora.Thresholds:
    latest = DoraThresholdVersion.objects.order_by("-created_at", "-id").first()
    if latest is None:
        return dora.DEFAULT_THRESHOLDS
    return dora.Thresholds.from_json({**latest.thresholds, "version": latest.version})


def recurring_root_causes(*, now: datetime) -> dict[str, list[str]]:
    """Root-cause tags found in postmortems of at least two incidents started within six months
    of each other (looking back a year), with those incidents' references: for the monthly check
    of Art. 8(2)."""
    since = now - 2 * dora.RECURRENCE_WINDOW
    rows = list(
        Postmortem.objects.filter(incident__started_at__gte=since)
        .values_list("tags__slug", "incident__started_at", "incident__reference")
        .exclude(tags__slug=None)
    )
    flagged = dora.recurring_tags((tag, started) for tag, started, _ in rows)
    return {tag: sorted({ref for t, _, ref in rows if t == tag}) for tag in sorted(flagged)}


# --- Overdue work and the weekly review ----------------------------------------------------------


def postmortems_overdue(*, now: datetime) -> QuerySet[Postmortem]:
    return Postmortem.objects.filter(status=PostmortemStatus.DRAFT, due_at__lt=now).select_related("incident")


def actions_overdue(*, now: datetime) -> QuerySet[PostmortemAction]:
    return PostmortemAction.objects.filter(
        kind=ActionKind.LONG_TERM, status=ActionStatus.OPEN, due_date__lt=now.date()
    ).select_related("postmortem__incident", "owner")


def dora_reports_overdue(*, now: datetime) -> QuerySet[DoraReport]:
    return DoraReport.objects.filter(sent_at__isnull=True, due_at__lt=now).select_related("incident")


def weekly_review(*, week_start: datetime) -> list[dict[str, Any]]:
    """Incidents resolved in the week from ``week_start``, with their postmortem's state."""
    resolved = Incident.objects.filter(
        resolved_at__gte=week_start, resolved_at__lt=week_start + timedelta(days=7)
    ).order_by("resolved_at")
    rows = []
    for incident in resolved.select_related("postmortem"):
        postmortem = getattr(incident, "postmortem", None)
        rows.append(
            {
                "incident": incident,
                "postmortem_status": postmortem.status if postmortem else None,
                "postmortem_due_at": postmortem.due_at if postmortem else None,
            }
        )
    return rows


# --- Delivery figures ----------------------------------------------------------------------------


def figures_for(
    *, start: datetime, end: datetime, service: Service | None = None, domain: Domain | None = None
) -> DeliveryFigures:
    """Deployment frequency, lead time, change failure rate and time to restore of production,
    for a service, a domain or everything, over [start, end)."""
    deployment = deployment_model()
    deployed = deployment.objects.filter(
        environment__in=settings.GATE_ENVIRONMENTS, status="succeeded", started_at__gte=start, started_at__lt=end
    )
    incidents = Incident.objects.filter(resolved_at__gte=start, resolved_at__lt=end)
    if service is not None:
        deployed = deployed.filter(service=service)
        incidents = incidents.filter(services=service)
    if domain is not None:
        deployed = deployed.filter(service__domain=domain)
        incidents = incidents.filter(services__domain=domain)
    failed = set(
        SuspectVerdict.objects.filter(verdict=Verdict.CAUSED_BY, deployment__in=deployed).values_list(
            "deployment_id", flat=True
        )
    )
    submitted: dict[Any, datetime | None] = {}
    changelog_ids = {d.changelog_id for d in deployed if d.changelog_id}
    if changelog_ids:
        from changelogs.models import ChangelogRevision

        for changelog_id, at in (
            ChangelogRevision.objects.filter(changelog_id__in=changelog_ids, submitted_at__isnull=False)
            .order_by("submitted_at")
            .values_list("changelog_id", "submitted_at")
        ):
            submitted.setdefault(changelog_id, at)
    facts = [
        DeploymentFact(
            finished_at=d.finished_at or d.started_at,
            submitted_at=submitted.get(d.changelog_id),
            committed_at=None,
            failed_change=d.pk in failed,
        )
        for d in deployed
    ]
    restore = []
    for incident in incidents.distinct():
        ends = [t for t in (incident.mitigated_at, incident.resolved_at) if t]
        restore.append(min(ends) - incident.started_at)
    return delivery_figures(deployments=facts, restore_times=restore, start=start, end=end)


def incident_counts(*, start: datetime, end: datetime) -> dict[str, dict[str, int]]:
    """Incidents started in [start, end): by severity, by root-cause tag, by domain, by month."""
    started = Incident.objects.filter(started_at__gte=start, started_at__lt=end)
    by_severity: dict[str, int] = {}
    by_month: dict[str, int] = {}
    for severity, at in started.values_list("severity", "started_at"):
        by_severity[severity] = by_severity.get(severity, 0) + 1
        by_month[f"{at:%Y-%m}"] = by_month.get(f"{at:%Y-%m}", 0) + 1
    by_domain: dict[str, int] = {}
    for slug in (
        started.values_list("services__domain__slug", "pk").distinct().values_list("services__domain__slug", flat=True)
    ):
        by_domain[slug] = by_domain.get(slug, 0) + 1
    by_tag: dict[str, int] = {}
    for slug in Postmortem.objects.filter(incident__in=started).values_list("tags__slug", flat=True):
        if slug:
            by_tag[slug] = by_tag.get(slug, 0) + 1
    return {
        "by_severity": dict(sorted(by_severity.items())),
        "by_tag": dict(sorted(by_tag.items())),
        "by_domain": dict(sorted(by_domain.items())),
        "by_month": dict(sorted(by_month.items())),
    }
