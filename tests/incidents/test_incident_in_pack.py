"""A change's evidence pack names the incidents it caused."""

import subprocess
from pathlib import Path

import pytest
from django.utils import timezone

from changelogs.models import Changelog
from incidents.services import incident_open, suspect_decide
from releasegate.models import Deployment
from tests.conftest import Cast
from tests.packs.support import poppler
from tests.packs.test_packs import deployed, download, request_pack  # noqa: F401 - the fixture

# Packs are built after commit (eager Celery here), as in tests/packs/test_packs.py.
pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("eager_celery")]


def test_the_pack_of_a_change_confirmed_as_a_cause_names_the_incident(
    cast: Cast,
    deployed: Changelog,  # noqa: F811 - the fixture imported above
    tmp_path: Path,
) -> None:
    pdftotext = poppler("pdftotext")
    incident = incident_open(
        acting_user=cast.requester,
        title="Card payments time out",
        services=[cast.payments_api],
        severity="high",
        started_at=timezone.now(),
    )
    deployment = Deployment.objects.get(changelog=deployed)
    suspect_decide(
        acting_user=cast.requester,
        incident=incident,
        deployment_id=deployment.pk,
        verdict="caused_by",
        reason="Errors began with this release.",
    )

    job = request_pack(cast, {"kind": "changelog", "changelog": str(deployed.pk)})
    pdf = tmp_path / "pack.pdf"
    pdf.write_bytes(download(cast, job, "pack.pdf"))
    text = subprocess.run([pdftotext, str(pdf), "-"], capture_output=True, text=True, check=True).stdout

    assert f"{incident.reference} (high): Card payments time out" in " ".join(text.split())
