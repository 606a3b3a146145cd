"""Suspects, confirmed causes and the change failure rate a hand count gives."""

from datetime import timedelta
from typing import Any

from django.utils import timezone

from audit.models import AuditEvent
from changelogs.models import ChangelogKind
from incidents.services import incident_open, incident_status_change
from releasegate.deployments import deployment_report
from tests.conftest import Cast
from tests.factories import DIGEST, FACTORY_ACTOR, OTHER_DIGEST, ServiceFactory, changelog_make


def _deploy(cast: Cast, service: Any, ago: timedelta, key: str, environment: str = "production") -> Any:
    deployment, _ = deployment_report(
        acting_user=cast.pipeline.account,
        idempotency_key=key,
        service=service,
        environment=environment,
        digest=DIGEST,
        status="succeeded",
        started_at=timezone.now() - ago,
        finished_at=timezone.now() - ago + timedelta(minutes=5),
    )
    return deployment


def test_deployments_before_the_incident_are_suspects_and_a_confirmed_cause_is_a_failed_change(cast: Cast) -> None:
    changelog = changelog_make(service=cast.payments_api, submitted=True)
    web = ServiceFactory(slug="payments-web", domain=cast.payments)
    hours = timedelta(hours=1)
    a = _deploy(cast, cast.payments_api, 30 * hours, "a")  # before the window
    b = _deploy(cast, cast.payments_api, 20 * hours, "b")
    c = _deploy(cast, cast.payments_api, 2 * hours, "c")
    w = _deploy(cast, web, 5 * hours, "w")  # the same domain
    _deploy(cast, cast.transfers_api, 3 * hours, "t")  # another domain
    _deploy(cast, cast.payments_api, 2 * hours, "s", environment="staging")
    incident = incident_open(
        acting_user=FACTORY_ACTOR,
        title="Card payments time out",
        services=[cast.payments_api],
        severity="high",
        started_at=timezone.now() - hours,
    )
    client = cast.session(cast.requester)
    url = f"/api/v1/incidents/{incident.id}/suspects/"

    suspects = client.get(url).json()
    caused = client.post(
        f"{url}{c.id}", {"verdict": "caused_by", "reason": "Timeouts began with 1.4.2."}, format="json"
    )
    unrelated = client.post(f"{url}{b.id}", {"verdict": "not_related", "reason": "Docs only."}, format="json")
    outside = client.post(f"{url}{a.id}", {"verdict": "caused_by", "reason": "?"}, format="json")
    by_pipeline = cast.pipeline.client().post(f"{url}{w.id}", {"verdict": "not_related", "reason": "x"}, format="json")

    assert [(s["deployment"], s["same_service"]) for s in suspects] == [
        (str(c.id), True),
        (str(w.id), False),
        (str(b.id), True),
    ]
    assert caused.status_code == 200, caused.content
    assert unrelated.status_code == 200
    assert {s["deployment"]: s["verdict"] for s in unrelated.json()}[str(c.id)] == "caused_by"
    assert outside.status_code == 400
    assert outside.json()["code"] == "incident_not_a_suspect"
    assert by_pipeline.status_code == 403
    assert AuditEvent.objects.filter(action="incident:suspect_decided").count() == 2

    week = {"start": (timezone.now() - timedelta(days=7)).isoformat(), "end": timezone.now().isoformat()}
    service_figures = client.get("/api/v1/incidents/figures", {**week, "service": "payments-api"}).json()
    domain_figures = client.get("/api/v1/incidents/figures", {**week, "domain": "payments"}).json()

    # By hand: payments-api deployed a, b, c to production (s was staging): 3, one of them (c) a
    # confirmed cause. The payments domain adds payments-web's w: 4, still one failed change.
    assert (service_figures["deployments"], service_figures["failed_changes"]) == (3, 1)
    assert service_figures["change_failure_rate"] == round(1 / 3, 4)
    assert (domain_figures["deployments"], domain_figures["failed_changes"]) == (4, 1)
    assert domain_figures["change_failure_rate"] == 0.25
    assert service_figures["deployment_frequency_per_day"] == round(3 / 7, 3)
    linked = client.get(f"/api/v1/changelogs/{changelog.id}/incidents").json()
    assert linked["caused"] == [incident.reference]


def test_time_to_restore_and_a_hotfix_reference_becomes_a_link(cast: Cast) -> None:
    start = timezone.now() - timedelta(hours=5)
    incident = incident_open(
        acting_user=FACTORY_ACTOR, title="Slow", services=[cast.payments_api], severity="medium", started_at=start
    )
    incident_status_change(
        acting_user=FACTORY_ACTOR, incident=incident, status="mitigated", at=start + timedelta(hours=2)
    )
    incident_status_change(
        acting_user=FACTORY_ACTOR, incident=incident, status="resolved", at=start + timedelta(hours=3)
    )
    hotfix = changelog_make(
        service=cast.payments_api,
        kind=ChangelogKind.HOTFIX,
        artifact={
            "name": "payments-api",
            "version": "1.4.3",
            "digest": OTHER_DIGEST,
            "source_revision": "0123456789abcdef0123456789abcdef01234567",
            "links": [],
        },
        hotfix={
            "incident_reference": incident.reference.lower(),
            "emergency_category": "service_outage",
            "emergency_reason": "Slow payments.",
        },
    )
    other = changelog_make(service=cast.payments_api, kind=ChangelogKind.HOTFIX)  # names INC-4711: no such incident
    client = cast.session(cast.requester)

    figures = client.get("/api/v1/incidents/figures", {"service": "payments-api"}).json()

    assert figures["incidents_restored"] == 1
    assert figures["time_to_restore_hours_median"] == 2.0  # restored when mitigated
    assert client.get(f"/api/v1/changelogs/{hotfix.id}/incidents").json()["answered"] == [incident.reference]
    assert client.get(f"/api/v1/changelogs/{other.id}/incidents").json()["answered"] == []
