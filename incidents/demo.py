"""The demo's incidents (``manage.py seed_demo``): something on every incidents page, made
through the services. Nothing here stops the demo's changes at the gate: the one high incident
is resolved, the open one is medium (the gate stops changes from high by default)."""

from datetime import datetime, timedelta

from django.utils import timezone

from changelogs.models import Service
from core.actors import ActingUser, Actor
from incidents import dora, services
from incidents.models import Incident, PagerDutyService


def demo_incidents(
    *, actor: ActingUser | Actor, classifier: ActingUser, owner: ActingUser, now: datetime | None = None
) -> None:
    if Incident.objects.exists():
        return
    now = now or timezone.now()
    web = Service.objects.get(slug="payments-web")
    PagerDutyService.objects.get_or_create(
        pagerduty_id="PF9KMXH", defaults={"name": "Payments API", "service": Service.objects.get(slug="payments-api")}
    )
    started = now - timedelta(days=6)
    checkout = services.incident_open(
        acting_user=actor,
        title="Card checkout fails for Maestro cards",
        services=[web],
        severity="high",
        started_at=started,
        detected_at=started + timedelta(minutes=6),
        impact="10_25",
        impact_rationale="Checkout errors for 14 % of active sessions, from the web analytics funnel.",
        now=started + timedelta(minutes=6),
    )
    services.incident_status_change(
        acting_user=actor, incident=checkout, status="mitigated", at=started + timedelta(minutes=45), now=now
    )
    services.incident_status_change(
        acting_user=actor, incident=checkout, status="resolved", at=started + timedelta(hours=2), now=now
    )
    services.dora_classify(
        acting_user=classifier,
        incident=checkout,
        criteria=dora.Criteria(critical_services_affected=True, clients_percent=14, downtime_hours=2.5),
        now=started + timedelta(hours=1),
    )
    services.dora_report_sent(
        acting_user=classifier,
        incident=checkout,
        kind="initial",
        reference="NCA-2026-0117",
        sent_at=started + timedelta(hours=3),
        now=now,
    )
    postmortem = checkout.postmortem
    services.postmortem_update(
        acting_user=actor,
        postmortem=postmortem,
        changes={
            "customer_impact": "14 % of card checkouts failed for 45 minutes; no payment was taken twice.",
            "impact_determination": "Web analytics funnel and the payment provider's error report.",
            "components_impacted": "payments-web, the card tokenisation proxy",
            "root_cause": "A configuration change dropped Maestro from the accepted card schemes.",
            "tags": ["configuration", "third-party"],
            "participants": ["requester", "approver"],
        },
        complete=True,
        now=now,
    )
    services.action_add(
        acting_user=actor,
        postmortem=postmortem,
        kind="short_term",
        description="Restore Maestro in the accepted schemes",
        owner=owner,
        due_date=(started + timedelta(days=1)).date(),
        now=now,
    )
    services.action_add(
        acting_user=actor,
        postmortem=postmortem,
        kind="long_term",
        description="Contract test of accepted card schemes in the pipeline",
        owner=owner,
        due_date=(now + timedelta(days=21)).date(),
        ticket_url="https://jira.bank.example/browse/PAY-1204",
        now=now,
    )
    services.incident_open(
        acting_user=actor,
        title="Slow FX quotes",
        services=[Service.objects.get(slug="fx-quotes")],
        severity="medium",
        started_at=now - timedelta(hours=2),
        impact="under_10",
        impact_rationale="Quote latency above 2 s for international transfers only.",
        now=now,
    )
    statements = services.incident_open(
        acting_user=actor,
        title="Statement downloads delayed",
        services=[Service.objects.get(slug="statements")],
        severity="low",
        started_at=now - timedelta(days=20),
        now=now - timedelta(days=20),
    )
    services.incident_status_change(
        acting_user=actor, incident=statements, status="resolved", at=now - timedelta(days=19), now=now
    )
