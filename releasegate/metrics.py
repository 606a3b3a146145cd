"""Prometheus metrics, computed from the database at scrape time.

Counting in the database rather than in process memory keeps every web worker's answer the
same and survives restarts: the service keeps no state of its own.
"""

import hmac

from django.conf import settings
from django.db.models import Count, Q, Sum
from django.http import HttpRequest, HttpResponse

from approvals.models import Retrospective, RetrospectiveStatus
from audit.models import AlarmKind, AuditAlarm, AuditEvent, Checkpoint
from releasegate.models import Deployment, GateDecision

LATENCY_BUCKETS_SECONDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def metrics_text() -> str:
    lines: list[str] = []

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
    return "\n".join(lines) + "\n"


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
