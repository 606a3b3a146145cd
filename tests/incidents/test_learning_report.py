"""The learning report: a signed PDF with the API's figures and charts that render; the same
charts as SVG on the admin's figures page."""

import subprocess
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.utils import timezone
from PIL import Image

from audit.models import AuditEvent
from incidents.services import incident_open, incident_status_change, postmortem_update, suspect_decide
from releasegate.deployments import deployment_report
from tests.conftest import Cast
from tests.factories import DIGEST, FACTORY_ACTOR
from tests.packs.support import poppler


@pytest.fixture
def history(cast: Cast) -> Cast:
    now = timezone.now()
    deployments = [
        deployment_report(
            acting_user=cast.pipeline.account,
            idempotency_key=f"d{n}",
            service=cast.payments_api,
            environment="production",
            digest=DIGEST,
            status="succeeded",
            started_at=now - timedelta(hours=hours),
        )[0]
        for n, hours in enumerate((50, 30, 4))
    ]
    incident = incident_open(
        acting_user=FACTORY_ACTOR,
        title="Card payments time out",
        services=[cast.payments_api],
        severity="high",
        started_at=now - timedelta(hours=3),
    )
    suspect_decide(
        acting_user=cast.requester, incident=incident, deployment_id=deployments[2].pk, verdict="caused_by", reason="x"
    )
    incident_status_change(acting_user=FACTORY_ACTOR, incident=incident, status="resolved", at=now - timedelta(hours=1))
    postmortem_update(acting_user=cast.requester, postmortem=incident.postmortem, changes={"tags": ["database"]})
    incident_open(
        acting_user=FACTORY_ACTOR, title="Slow", services=[cast.transfers_api], severity="low", started_at=now
    )
    return cast


def test_the_learning_report_is_signed_shows_the_figures_and_its_charts_render(history: Cast, tmp_path: Path) -> None:
    pdfsig, pdftotext, pdftoppm = poppler("pdfsig"), poppler("pdftotext"), poppler("pdftoppm")
    client = history.session(history.auditor)
    period = {"start": (timezone.now() - timedelta(days=7)).isoformat(), "end": timezone.now().isoformat()}
    figures = client.get("/api/v1/incidents/figures", period).json()

    response = client.get("/api/v1/incidents/report", period)

    assert response.status_code == 200, response.content[:300]
    assert response["Content-Type"] == "application/pdf"
    pdf = tmp_path / "report.pdf"
    pdf.write_bytes(response.content)
    assert (
        "Signature Validation: Signature is Valid."
        in subprocess.run([pdfsig, str(pdf)], capture_output=True, text=True, check=False).stdout
    )
    text = subprocess.run([pdftotext, "-layout", str(pdf), "-"], capture_output=True, text=True, check=True).stdout
    assert (figures["deployments"], figures["failed_changes"]) == (3, 1)
    for key in (
        "deployments",
        "deployment_frequency_per_day",
        "failed_changes",
        "change_failure_rate",
        "incidents_restored",
        "time_to_restore_hours_median",
    ):
        assert str(figures[key]) in text, (key, figures[key])
    assert "Incidents by root-cause tag" in text
    assert "database" in text
    subprocess.run([pdftoppm, "-png", "-r", "40", str(pdf), str(tmp_path / "page")], check=True)
    pages = sorted(tmp_path.glob("page*.png"))
    assert pages
    for page in pages:
        image = Image.open(page).convert("L")
        dark = sum(image.histogram()[:128])
        assert dark > 500, (page.name, dark)  # text and bars, not a blank page
    assert AuditEvent.objects.filter(action="incident:learning_report").count() == 1


def test_pipelines_and_people_without_the_role_get_no_report(history: Cast) -> None:
    assert history.pipeline.client().get("/api/v1/incidents/report").status_code == 403
    assert history.session(history.requester).get("/api/v1/incidents/report").status_code == 403


def test_the_admin_figures_page_shows_the_same_charts_as_svg(history: Cast) -> None:
    response = history.session(history.admin).get("/admin/incidents/incident/figures/")

    assert response.status_code == 200
    page = response.content.decode()
    assert page.count('<div class="chart"><svg') == 4
    assert "Incidents by severity" in page
    assert "Change failure rate" in page


def test_metrics_carry_the_same_figures_as_the_api(history: Cast, settings: Any) -> None:
    from rest_framework.test import APIClient

    settings.METRICS_PUBLIC = True
    figures = history.session(history.auditor).get("/api/v1/incidents/figures", {"domain": "payments"}).json()

    text = APIClient().get("/metrics").content.decode()

    assert f'releasegate_change_failure_rate{{domain="payments"}} {figures["change_failure_rate"]}' in text
    assert (
        f'releasegate_deployment_frequency_per_day{{domain="payments"}} {figures["deployment_frequency_per_day"]}'
        in text
    )
    assert 'releasegate_incidents_unresolved{severity="low"} 1' in text
