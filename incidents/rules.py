"""Pure rules of incidents: severity order, which open incidents stop a change at the gate, and
the delivery figures (DORA's four keys). No Django: the selectors gather the facts.
"""

import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum


class Severity(StrEnum):
    CRITICAL = "critical"
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"


RANK = {Severity.CRITICAL: 4, Severity.HIGH: 3, Severity.MEDIUM: 2, Severity.LOW: 1}
DEFAULT_GATE_SEVERITY = Severity.HIGH
# Open and mitigated incidents are not yet resolved: they still stop changes.
UNRESOLVED = frozenset({"open", "mitigated"})
# Severities that owe a postmortem.
POSTMORTEM_SEVERITIES = frozenset({Severity.CRITICAL, Severity.HIGH, Severity.MEDIUM})


def at_least(severity: str, threshold: str) -> bool:
    return RANK[Severity(severity)] >= RANK[Severity(threshold)]


def reference_key(reference: str) -> str:
    """How incident references compare: a hotfix's free text ``inc-0007 `` names INC-0007."""
    return reference.strip().upper()


@dataclass(frozen=True)
class BlockingIncident:
    reference: str
    severity: str
    answered: bool  # the change is a hotfix referencing this incident


def blocking_incidents(
    *,
    incidents: Iterable[tuple[str, str]],
    min_severity: str | None,
    changelog_kind: str,
    incident_reference: str,
) -> tuple[BlockingIncident, ...]:
    """The unresolved incidents of the domain (reference, severity) at or above the domain's
    threshold (None: the domain's gate rule is off), each marked answered when the change is a
    hotfix whose incident reference names it."""
    if min_severity is None:
        return ()
    named = reference_key(incident_reference) if changelog_kind == "hotfix" and incident_reference else ""
    return tuple(
        BlockingIncident(reference, severity, answered=bool(named) and reference_key(reference) == named)
        for reference, severity in sorted(incidents)
        if at_least(severity, min_severity)
    )


# --- Delivery figures -------------------------------------------------------------------------


@dataclass(frozen=True)
class DeploymentFact:
    finished_at: datetime
    submitted_at: datetime | None  # the changelog's first submission
    committed_at: datetime | None  # the source commit, when known
    failed_change: bool  # confirmed as a cause of an incident


@dataclass(frozen=True)
class DeliveryFigures:
    deployments: int
    days: float
    deployment_frequency_per_day: float
    lead_time_hours_median: float | None  # submission to production
    commit_lead_time_hours_median: float | None  # source commit to production, when known
    failed_changes: int
    change_failure_rate: float | None  # failed changes / deployments
    incidents_restored: int
    time_to_restore_hours_median: float | None


def _hours(delta: timedelta) -> float:
    return delta.total_seconds() / 3600


def _median(values: Sequence[float]) -> float | None:
    return round(statistics.median(values), 2) if values else None


def delivery_figures(
    *, deployments: Sequence[DeploymentFact], restore_times: Sequence[timedelta], start: datetime, end: datetime
) -> DeliveryFigures:
    days = max(_hours(end - start) / 24, 1 / 24)
    failed = sum(1 for d in deployments if d.failed_change)
    return DeliveryFigures(
        deployments=len(deployments),
        days=round(days, 2),
        deployment_frequency_per_day=round(len(deployments) / days, 3),
        lead_time_hours_median=_median([_hours(d.finished_at - d.submitted_at) for d in deployments if d.submitted_at]),
        commit_lead_time_hours_median=_median(
            [_hours(d.finished_at - d.committed_at) for d in deployments if d.committed_at]
        ),
        failed_changes=failed,
        change_failure_rate=round(failed / len(deployments), 4) if deployments else None,
        incidents_restored=len(restore_times),
        time_to_restore_hours_median=_median([_hours(t) for t in restore_times]),
    )
