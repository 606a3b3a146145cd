"""Prometheus metrics, computed from the database at scrape time.

Counting in the database rather than in process memory keeps every web worker's answer the
same and survives restarts: the service keeps no state of its own.
"""

import hmac
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import DatabaseError, connection, transaction
from django.db.models import Count, Q, Sum
from django.http import HttpRequest, HttpResponse
from django.utils import timezone

from approvals.models import Retrospective, RetrospectiveStatus
from audit.models import AlarmKind, AuditAlarm, AuditEvent, Checkpoint
from changelogs.models import Domain
from outbox.services import outbox_waiting
from releasegate.health import clock_offset_seconds
from releasegate.models import Deployment, GateDecision

LATENCY_BUCKETS_SECONDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def metrics_text() -> str:
    """The figures; with the database down, the figures that need it are left out and
    ``releasegate_database_up`` says 0 (a scrape is never an HTML error page)."""
    lines: list[str] = []
    try:
        with transaction.atomic():  # one snapshot of every figure
            _database_figures(lines)
    except DatabaseError:
        connection.close()
        lines.clear()
        up = 0
    else:
        up = 1
    lines += [
        "# HELP releasegate_database_up Whether the database answered this scrape.",
        "# TYPE releasegate_database_up gauge",
        f"releasegate_database_up {up}",
    ]
    return "\n".join(lines) + "\n"


def _database_figures(lines: list[str]) -> None:
    def metric(name: str, kind: str, help_text: str) -> None:
        lines.append(f"# HELP {name} {help_text}")
        lines.append(f"# TYPE {name} {kind}")

    metric("releasegate_gate_decisions_total", "counter", "Gate decisions by outcome and domain.")
    by_outcome = GateDecision.objects.values("outcome", "service__domain__slug").annotate(n=Count("id")).order_by()
    for row in by_outcome:
        labels = f'outcome="{row["outcome"]}",domain="{_escape(row["service__domain__slug"])}"'
        lines.append(f"releasegate_gate_decisions_total{{{labels}}} {row['n']}")

    metric("releasegate_gate_decision_duration_seconds", "histogram", "Time the gate took to decide.")
    buckets = GateDecision.objects.aggregate(
        **{
            f"le_{index}": Count("id", filter=Q(duration_ms__lte=bound * 1000))
            for index, bound in enumerate(LATENCY_BUCKETS_SECONDS)
        },
        total=Count("id"),
        seconds=Sum("duration_ms"),
    )
    for index, bound in enumerate(LATENCY_BUCKETS_SECONDS):
        lines.append(f'releasegate_gate_decision_duration_seconds_bucket{{le="{bound}"}} {buckets[f"le_{index}"]}')
    lines.append(f'releasegate_gate_decision_duration_seconds_bucket{{le="+Inf"}} {buckets["total"]}')
    lines.append(f"releasegate_gate_decision_duration_seconds_sum {(buckets['seconds'] or 0) / 1000:.6f}")
    lines.append(f"releasegate_gate_decision_duration_seconds_count {buckets['total']}")

    metric("releasegate_unauthorised_deployments_total", "counter", "Deployments no allow decision covered.")
    lines.append(f"releasegate_unauthorised_deployments_total {Deployment.objects.filter(unauthorised=True).count()}")

    metric("releasegate_retrospectives_overdue", "gauge", "Hotfix retrospectives past their deadline, not completed.")
    overdue = Retrospective.objects.filter(status=RetrospectiveStatus.OVERDUE).count()
    lines.append(f"releasegate_retrospectives_overdue {overdue}")

    metric("releasegate_audit_log_size", "gauge", "Leaves in the Merkle log at the latest checkpoint.")
    latest = Checkpoint.objects.order_by("-tree_size").values_list("tree_size", flat=True).first() or 0
    lines.append(f"releasegate_audit_log_size {latest}")
    metric("releasegate_audit_events_unsequenced", "gauge", "Committed audit events not yet in the Merkle log.")
    lines.append(f"releasegate_audit_events_unsequenced {AuditEvent.objects.filter(leaf__isnull=True).count()}")

    metric("releasegate_clock_offset_seconds", "gauge", "This process's clock minus the database's.")
    lines.append(f"releasegate_clock_offset_seconds {clock_offset_seconds():.3f}")
    waiting, oldest = outbox_waiting()
    metric("releasegate_outbox_waiting", "gauge", "Tasks written to the outbox and not yet published.")
    lines.append(f"releasegate_outbox_waiting {waiting}")
    metric("releasegate_outbox_oldest_seconds", "gauge", "Age of the oldest task waiting in the outbox.")
    lines.append(f"releasegate_outbox_oldest_seconds {oldest or 0:.3f}")

    metric(
        "releasegate_audit_alarms_open",
        "gauge",
        "Open audit alarms by kind: the stored log does not extend what was signed (docs/audit.md).",
    )
    open_alarms = dict(
        AuditAlarm.objects.filter(resolved_at__isnull=True).values_list("kind").annotate(n=Count("id")).order_by()
    )
    for kind in AlarmKind:
        lines.append(f'releasegate_audit_alarms_open{{kind="{kind.value}"}} {open_alarms.get(kind.value, 0)}')

    _incident_metrics(metric, lines)


# The delivery figures' window: what GET /api/v1/incidents/figures answers by default.
FIGURES_WINDOW = timedelta(days=30)


def _incident_metrics(metric: Any, lines: list[str]) -> None:
    """Unresolved incidents, and per domain the delivery figures of the last 30 days
    (incidents.selectors.figures_for, the same as the API's)."""
    from incidents.models import Incident
    from incidents.rules import UNRESOLVED
    from incidents.selectors import figures_for

    metric("releasegate_incidents_unresolved", "gauge", "Open and mitigated incidents by severity.")
    for row in Incident.objects.filter(status__in=UNRESOLVED).values("severity").annotate(n=Count("id")).order_by():
        lines.append(f'releasegate_incidents_unresolved{{severity="{_escape(row["severity"])}"}} {row["n"]}')
    end = timezone.now()
    names = {
        "deployment_frequency_per_day": "Production deployments per day over the last 30 days.",
        "lead_time_hours_median": "Median hours from submission to production over the last 30 days.",
        "change_failure_rate": "Deployments confirmed as a cause of an incident / deployments, last 30 days.",
        "time_to_restore_hours_median": "Median hours from an incident's start to its restoration, last 30 days.",
    }
    per_domain = {
        domain.slug: figures_for(start=end - FIGURES_WINDOW, end=end, domain=domain)
        for domain in Domain.objects.order_by("slug")
    }
    for name, help_text in names.items():
        metric(f"releasegate_{name}", "gauge", help_text)
        for slug, figures in per_domain.items():
            value = getattr(figures, name)
            if value is not None:
                lines.append(f'releasegate_{name}{{domain="{_escape(slug)}"}} {value}')


@transaction.non_atomic_requests  # answers with the database down (releasegate/health.py)
def metrics_view(request: HttpRequest) -> HttpResponse:
    """The figures, for whoever holds METRICS_TOKEN; for anyone only with METRICS_PUBLIC=1.
    With neither, nobody: the figures say how often the gate denies, and to whom."""
    expected = settings.METRICS_TOKEN
    if expected:
        supplied = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        if not hmac.compare_digest(supplied.encode(), expected.encode()):
            return _refused("metrics need the scrape token")
    elif not settings.METRICS_PUBLIC:
        return _refused("metrics need a scrape token: set METRICS_TOKEN (or METRICS_PUBLIC=1 to open them)")
    return HttpResponse(metrics_text(), content_type=CONTENT_TYPE)


def _refused(message: str) -> HttpResponse:
    response = HttpResponse(message + "\n", status=401, content_type="text/plain")
    response["WWW-Authenticate"] = 'Bearer realm="metrics"'
    return response
