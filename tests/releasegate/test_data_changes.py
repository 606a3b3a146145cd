"""PR-23: a data change (migration or data fix) names its script's digest, the staging dry run's
result and the backup (or rollback) evidence, attached to the change; whoever executes it at
deployment is not one of its approvers."""

import hashlib
from datetime import UTC, datetime
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from changelogs.models import Changelog
from releasegate.models import Deployment
from tests.changelogs.evidence_files import junit_with_journeys, k6_passing, sarif_clean
from tests.conftest import Cast
from tests.factories import (
    DIGEST,
    OTHER_DIGEST,
    JourneyFactory,
    UserFactory,
    authority_give,
    changelog_content,
    changelog_make,
)
from tests.releasegate.gate_support import approve, check

DRY_RUN = b"V42__add_index: dry run on staging\n1204331 rows scanned, index built in 41 s, no lock waits\n"
BACKUP = b"pg_dump payments --table=payments: 1.2 GB, restore tested on staging at 2026-12-01T08:10Z\n"


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def data_change(**overrides: Any) -> dict[str, Any]:
    return {
        "description": "Index payments by creation time",
        "version": "V42__add_index",
        "digest": OTHER_DIGEST,
        "rollback": "DROP INDEX CONCURRENTLY payments_created_at_idx",
        "dry_run_evidence": _sha(DRY_RUN),
        "backup_evidence": _sha(BACKUP),
        **overrides,
    }


def _upload(client: Any, changelog: Changelog, kind: str, name: str, data: bytes, environment: str = "staging") -> None:
    body = {"kind": kind, "environment": environment, "file": SimpleUploadedFile(name, data)}
    if kind in {"sanity", "performance"}:
        body["artifact_digest"] = DIGEST  # the build they ran against (PR-02)
    response = client.post(f"/api/v1/changelogs/{changelog.id}/evidence/", body, format="multipart")
    assert response.status_code == 201, response.json()


def _data_change_changelog(
    cast: Cast, *, attach: tuple[str, ...] = ("dry_run", "backup"), dry_run_environment: str = "staging"
) -> Changelog:
    """A submitted payments-api change with one data change, complete evidence, approved by the
    approver (sign-off) and a data steward (data sign-off)."""
    JourneyFactory(journey_id="PAY-001", domain=cast.payments, critical=True)
    changelog = changelog_make(
        service=cast.payments_api, by=cast.pipeline.account, data_changes=[data_change()], no_data_changes=False
    )
    client = cast.pipeline.client()
    _upload(client, changelog, "sanity", "junit.xml", junit_with_journeys({"PAY-001": "passed"}))
    _upload(client, changelog, "performance", "k6.json", k6_passing())
    _upload(client, changelog, "security", "semgrep.sarif", sarif_clean())
    if "dry_run" in attach:
        _upload(client, changelog, "document", "dry-run.txt", DRY_RUN, environment=dry_run_environment)
    if "backup" in attach:
        _upload(client, changelog, "document", "backup.txt", BACKUP, environment="")
    assert client.post(f"/api/v1/changelogs/{changelog.id}/submit").status_code == 200
    steward = UserFactory(username="data-steward", email="steward@bank.example")
    authority_give(domain=cast.payments, authority="data_sign_off", user=steward)
    approve(cast, changelog)
    approve(cast, changelog, steward)
    return changelog


def codes(response: Any) -> list[str]:
    assert response.status_code == 200, response.json()
    return [reason["code"] for reason in response.json()["reasons"]]


@pytest.mark.requirement("PR-23")
@pytest.mark.parametrize("field", ["digest", "dry_run_evidence", "backup_evidence"])
def test_a_data_change_without_its_script_digest_dry_run_or_backup_evidence_is_refused(cast: Cast, field: str) -> None:
    change = data_change()
    del change[field]
    body = {
        "service": "payments-api",
        "kind": "train",
        **changelog_content(data_changes=[change], no_data_changes=False),
    }

    response = cast.pipeline.client().post("/api/v1/changelogs/", body, format="json")

    assert response.status_code == 400
    assert [problem["code"] for problem in response.json()["fields"][f"data_changes.0.{field}"]] == ["required"]


@pytest.mark.requirement("PR-23")
def test_a_data_change_with_its_staging_dry_run_and_backup_attached_is_allowed(cast: Cast) -> None:
    _data_change_changelog(cast)

    assert codes(check(cast.pipeline.client())) == ["allowed"]


@pytest.mark.requirement("PR-23")
def test_a_data_change_whose_dry_run_or_backup_is_not_attached_is_denied(cast: Cast) -> None:
    _data_change_changelog(cast, attach=("backup",))

    found = codes(check(cast.pipeline.client()))

    assert found == ["data_change_evidence_missing"]


@pytest.mark.requirement("PR-23")
def test_a_dry_run_that_did_not_run_on_staging_does_not_count(cast: Cast) -> None:
    _data_change_changelog(cast, dry_run_environment="development")

    assert codes(check(cast.pipeline.client())) == ["data_change_evidence_missing"]


def _report(cast: Cast, executor: str | None, key: str = "deploy-1") -> Deployment:
    body: dict[str, Any] = {
        "idempotency_key": key,
        "service": "payments-api",
        "environment": "production",
        "artifact_digest": DIGEST,
        "status": "succeeded",
        "started_at": datetime.now(UTC).isoformat(),
    }
    if executor is not None:
        body["data_change_executor"] = executor
    response = cast.pipeline.client().post("/api/v1/deployments/", body, format="json")
    assert response.status_code == 201, response.json()
    return Deployment.objects.get(pk=response.json()["id"])


@pytest.mark.requirement("PR-23")
def test_a_data_change_executed_by_someone_independent_of_its_approvals_is_covered(cast: Cast) -> None:
    changelog = _data_change_changelog(cast)
    assert codes(check(cast.pipeline.client())) == ["allowed"]

    deployment = _report(cast, "dba-on-call@bank.example")

    assert not deployment.unauthorised
    assert deployment.data_change_executor == "dba-on-call@bank.example"
    changelog.refresh_from_db()
    assert changelog.status == "deployed"


@pytest.mark.requirement("PR-23", "PR-04")
@pytest.mark.parametrize("executor", ["approver", "STEWARD@bank.example"])
def test_a_data_change_executed_by_one_of_its_approvers_is_unauthorised(cast: Cast, executor: str) -> None:
    _data_change_changelog(cast)
    assert codes(check(cast.pipeline.client())) == ["allowed"]

    deployment = _report(cast, executor)

    assert deployment.unauthorised
    assert deployment.not_covered_because == "data_change_executor_approved"


@pytest.mark.requirement("PR-23")
def test_a_data_change_deployed_without_naming_its_executor_is_unauthorised(cast: Cast) -> None:
    _data_change_changelog(cast)
    assert codes(check(cast.pipeline.client())) == ["allowed"]

    deployment = _report(cast, None)

    assert deployment.unauthorised
    assert deployment.not_covered_because == "data_change_executor_unnamed"
