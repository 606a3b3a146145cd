"""/metrics in Prometheus text format, counted from the database."""

from typing import Any

from django.test import Client

from tests.conftest import Cast
from tests.factories import OTHER_DIGEST
from tests.releasegate.gate_support import check, ready_changelog


def scrape(client: Client, **headers: Any) -> str:
    response = client.get("/metrics", **headers)
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain; version=0.0.4")
    return response.content.decode()


def test_metrics_count_decisions_unauthorised_deployments_and_latency(cast: Cast, settings: Any) -> None:
    settings.METRICS_PUBLIC = True
    ready_changelog(cast)
    pipeline = cast.pipeline.client()
    check(pipeline)
    check(pipeline, OTHER_DIGEST)
    check(pipeline, OTHER_DIGEST)
    pipeline.post(
        "/api/v1/deployments/",
        {
            "idempotency_key": "k1",
            "service": "payments-api",
            "environment": "production",
            "artifact_digest": OTHER_DIGEST,
            "status": "succeeded",
            "started_at": "2026-11-27T10:00:00Z",
        },
        format="json",
    )

    text = scrape(Client())

    assert 'releasegate_gate_decisions_total{outcome="allow",domain="payments"} 1' in text
    assert 'releasegate_gate_decisions_total{outcome="deny",domain="payments"} 2' in text
    assert 'releasegate_gate_decision_duration_seconds_bucket{le="+Inf"} 3' in text
    assert "releasegate_gate_decision_duration_seconds_count 3" in text
    assert "releasegate_unauthorised_deployments_total 1" in text
    assert "releasegate_retrospectives_overdue 0" in text


def test_metrics_ask_for_the_scrape_token_when_one_is_set(db: None, settings: Any) -> None:
    settings.METRICS_TOKEN = "scrape-secret"

    assert Client().get("/metrics").status_code == 401
    assert "releasegate_audit_log_size" in scrape(Client(), HTTP_AUTHORIZATION="Bearer scrape-secret")


def test_metrics_without_a_token_are_closed_unless_declared_public(db: None, settings: Any) -> None:
    """Seen: with DEBUG=0, /metrics was open to anyone unless a token was set."""
    settings.METRICS_TOKEN = ""
    settings.METRICS_PUBLIC = False

    refused = Client().get("/metrics")

    assert refused.status_code == 401
    assert b"METRICS_TOKEN" in refused.content
    assert "releasegate_" not in refused.content.decode()
    settings.METRICS_PUBLIC = True
    assert "releasegate_audit_log_size" in scrape(Client())
