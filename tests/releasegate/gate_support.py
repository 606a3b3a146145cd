"""Building changelogs that pass the gate, for the gate's tests."""

from datetime import timedelta
from typing import Any

from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone
from rest_framework.test import APIClient

from changelogs.models import Changelog
from releasegate.freezes import freeze_create
from releasegate.models import FreezeWindow
from tests.changelogs.evidence_files import junit_with_journeys, k6_passing, sarif_clean
from tests.conftest import Cast
from tests.factories import DIGEST, JourneyFactory, changelog_make, seen_of

PASSWORD = "a-test-password-1234"


def complete_evidence(client: APIClient, changelog: Changelog, journeys: dict[str, str] | None = None) -> None:
    url = f"/api/v1/changelogs/{changelog.id}/evidence/"
    files = [
        ("sanity", "junit.xml", junit_with_journeys(journeys or {"PAY-001": "passed", "PAY-002": "passed"})),
        ("performance", "k6.json", k6_passing()),
        ("security", "semgrep.sarif", sarif_clean()),
    ]
    revision = Changelog.objects.select_related("current_revision").get(pk=changelog.pk).current_revision
    assert revision is not None
    digest = revision.artifact_digest
    for kind, name, data in files:
        body = {"kind": kind, "environment": "staging", "file": SimpleUploadedFile(name, data)}
        if kind != "security":
            body["artifact_digest"] = digest  # PR-02: the tests and measurements of this very build
        response = client.post(url, body, format="multipart")
        assert response.status_code == 201, response.json()


def approve(cast: Cast, changelog: Changelog, who: Any = None, reason: str = "Checked") -> None:
    approver = cast.session(who or cast.approver)
    response = approver.post(
        f"/api/v1/changelogs/{changelog.id}/approvals/",
        {"decision": "approved", "reason": reason, "password": PASSWORD, **seen_of(changelog)},
        format="json",
    )
    assert response.status_code == 201, response.json()


def ready_changelog(cast: Cast, *, approved: bool = True, **content: Any) -> Changelog:
    """A payments-api changelog with complete passing evidence, submitted, approved."""
    JourneyFactory(journey_id="PAY-001", domain=cast.payments, critical=True)
    JourneyFactory(journey_id="PAY-002", domain=cast.payments, critical=True)
    changelog = changelog_make(service=cast.payments_api, by=cast.pipeline.account, **content)
    client = cast.pipeline.client()
    complete_evidence(client, changelog)
    assert client.post(f"/api/v1/changelogs/{changelog.id}/submit").status_code == 200
    if approved:
        approve(cast, changelog)
    changelog.refresh_from_db()
    return changelog


def check(client: APIClient, digest: str = DIGEST, service: str = "payments-api", **extra: Any) -> Any:
    return client.post(
        "/api/v1/gate/check",
        {"service": service, "environment": "production", "artifact_digest": digest, **extra},
        format="json",
    )


def report_succeeded(client: APIClient, changelog: Changelog, key: str) -> Any:
    """The pipeline reports that it deployed the changelog's artifact just now."""
    revision = Changelog.objects.select_related("current_revision").get(pk=changelog.pk).current_revision
    assert revision is not None
    return client.post(
        "/api/v1/deployments/",
        {
            "idempotency_key": key,
            "service": changelog.service.slug,
            "environment": "production",
            "artifact_digest": revision.artifact_digest,
            "status": "succeeded",
            "started_at": timezone.now().isoformat(),
        },
        format="json",
    )


def year_end_freeze(cast: Cast) -> FreezeWindow:
    """A freeze of every domain, begun an hour ago, for a day."""
    now = timezone.now()
    return freeze_create(
        acting_user=cast.admin,
        domain=None,
        starts_at=now - timedelta(hours=1),
        ends_at=now + timedelta(days=1),
        reason="Year-end freeze",
    )
