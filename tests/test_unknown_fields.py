"""Every write endpoint refuses fields it does not know (400 ``invalid_input``, naming each
one), at every level of the body, and records nothing. A pipeline that sends ``content_hash``
to an endpoint that would silently drop it believes something was checked that was not."""

from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from audit.models import AuditEvent
from core.api import StrictInput
from tests.changelogs.evidence_files import junit_with_journeys
from tests.conftest import Cast
from tests.factories import DIGEST, changelog_content, changelog_make


def _refused(response: Any, *names: str) -> None:
    assert response.status_code == 400, response.content
    body = response.json()
    assert body["code"] == "invalid_input"
    for name in names:
        assert body["fields"][name] == [{"code": "unknown_field", "message": "This field is not known."}]


@pytest.mark.parametrize(
    ("url", "body", "unknown"),
    [
        ("/api/v1/gate/check", {"service": "payments-api", "artifact_digest": DIGEST, "approved": True}, "approved"),
        (
            "/api/v1/deployments/",
            {
                "idempotency_key": "run-1",
                "service": "payments-api",
                "environment": "production",
                "artifact_digest": DIGEST,
                "status": "succeeded",
                "started_at": "2026-12-01T09:00:00Z",
                "authorised": True,
            },
            "authorised",
        ),
        ("/api/v1/changelogs/", {"service": "payments-api", "kind": "train", **changelog_content(), "x": 1}, "x"),
        (
            "/api/v1/changelogs/",
            {
                "service": "payments-api",
                "kind": "train",
                **changelog_content(artifact={**changelog_content()["artifact"], "signed": True}),
            },
            "artifact.signed",
        ),
        (
            "/api/v1/changelogs/",
            {
                "service": "payments-api",
                "kind": "train",
                **changelog_content(deploy_steps=[{"description": "Roll out", "approved_by": "cto"}]),
            },
            "deploy_steps.0.approved_by",
        ),
    ],
)
def test_a_pipeline_write_with_an_unknown_field_is_refused_and_records_nothing(
    cast: Cast, url: str, body: dict[str, Any], unknown: str
) -> None:
    events = AuditEvent.objects.count()

    _refused(cast.pipeline.client().post(url, body, format="json"), unknown)

    assert AuditEvent.objects.count() == events


def test_an_evidence_upload_with_an_unknown_field_is_refused_and_stores_nothing(cast: Cast) -> None:
    changelog = changelog_make(service=cast.payments_api, by=cast.pipeline.account)
    upload = {
        "kind": "sanity",
        "environment": "staging",
        "file": SimpleUploadedFile("junit.xml", junit_with_journeys({"PAY-001": "passed"})),
        "verdict": "pass",
    }

    response = cast.pipeline.client().post(f"/api/v1/changelogs/{changelog.id}/evidence/", upload, format="multipart")

    _refused(response, "verdict")
    assert not changelog.evidence.exists()


def test_an_approval_with_an_unknown_field_is_refused(cast: Cast) -> None:
    changelog = changelog_make(service=cast.payments_api, by=cast.pipeline.account)
    response = cast.session(cast.approver).post(
        f"/api/v1/changelogs/{changelog.id}/approvals/",
        {"decision": "approved", "password": "a-test-password-1234", "on_behalf_of": "cto"},
        format="json",
    )
    _refused(response, "on_behalf_of")


def test_a_pack_request_with_an_unknown_field_is_refused(cast: Cast) -> None:
    response = cast.session(cast.auditor).post(
        "/api/v1/packs/", {"kind": "population", "start": "2026-11-01T00:00:00Z", "signed": False}, format="json"
    )
    _refused(response, "signed")


def test_the_schema_says_strict_inputs_take_no_other_properties(cast: Cast) -> None:
    schema = cast.session(cast.admin).get("/api/schema/?format=json").json()["components"]["schemas"]
    for name in ("GateCheckInputRequest", "DeploymentReportInputRequest", "DecideInputRequest", "ArtifactRequest"):
        assert schema[name]["additionalProperties"] is False, name


def test_a_strict_input_names_every_unknown_field() -> None:
    class Example(StrictInput):
        pass

    serializer = Example(data={"a": 1, "b": 2})
    assert not serializer.is_valid()
    assert sorted(serializer.errors) == ["a", "b"]
