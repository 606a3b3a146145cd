"""Evidence packs as auditors get them: requested through the API, built in the background,
signed, verifiable with the standalone verifier and Poppler, and complete."""

import csv
import hashlib
import io
import json
import subprocess
import sys
import zipfile
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from django.db.models import F
from django.utils import timezone

from approvals.models import Retrospective
from approvals.services import retrospectives_mark_overdue
from audit.models import AuditEvent
from changelogs.models import Changelog, Evidence
from packs.models import PackJob
from tests.audit.support import sequence_all
from tests.conftest import Cast
from tests.factories import OTHER_DIGEST, seen_of
from tests.packs.support import poppler
from tests.releasegate.gate_support import check, ready_changelog, report_succeeded

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("eager_celery")]


@pytest.fixture
def deployed(cast: Cast) -> Changelog:
    changelog = ready_changelog(cast)
    pipeline = cast.pipeline.client()
    check(pipeline)
    pipeline.post(
        "/api/v1/deployments/",
        {
            "idempotency_key": "run-1",
            "service": "payments-api",
            "environment": "production",
            "artifact_digest": changelog.current_revision.artifact_digest,
            "status": "succeeded",  # type: ignore[union-attr]
            "started_at": timezone.now().isoformat(),
        },
        format="json",
    )
    changelog.refresh_from_db()
    return changelog


def first_day() -> datetime:
    """Midnight (UTC) of the day of the first audit event: the earliest start of a period."""
    first = AuditEvent.objects.order_by("id").values_list("created_at", flat=True).first() or timezone.now()
    return first.replace(hour=0, minute=0, second=0, microsecond=0)


def request_pack(cast: Cast, body: dict[str, Any]) -> dict[str, Any]:
    response = cast.session(cast.auditor).post("/api/v1/packs/", body, format="json")
    assert response.status_code in (200, 202), response.json()
    job = cast.session(cast.auditor).get(f"/api/v1/packs/{response.json()['id']}").json()
    assert job["status"] == "done", job  # eager Celery: built before the request returned
    return job


def download(cast: Cast, job: dict[str, Any], name: str) -> bytes:
    [entry] = [f for f in job["files"] if f["name"] == name]
    response = cast.session(cast.auditor).get(entry["url"])
    assert response.status_code == 200
    assert hashlib.sha256(response.content).hexdigest() == entry["sha256"]
    return response.content


@pytest.mark.requirement("PR-18")
def test_a_changelog_pack_shows_every_field_hash_approval_and_event(
    cast: Cast, deployed: Changelog, tmp_path: Path
) -> None:
    pdftotext = poppler("pdftotext")
    job = request_pack(cast, {"kind": "changelog", "changelog": str(deployed.pk)})
    pdf = tmp_path / "pack.pdf"
    pdf.write_bytes(download(cast, job, "pack.pdf"))

    text = subprocess.run([pdftotext, "-layout", str(pdf), "-"], capture_output=True, text=True, check=True).stdout

    content = deployed.current_revision.content  # type: ignore[union-attr]
    for value in (
        str(deployed.pk),
        "payments-api",
        content["artifact"]["version"],
        content["artifact"]["digest"],
        content["artifact"]["source_revision"],
        content["rollback_plan"],
        content["reason"],
        content["expected_outcome"],
        deployed.current_revision.content_hash,  # type: ignore[union-attr]
        *(step["description"] for step in content["deploy_steps"]),
    ):
        assert value in text, value
    for evidence in Evidence.objects.filter(changelog=deployed):
        assert evidence.sha256 in text
    assert "approver" in text
    events = AuditEvent.objects.filter(target_id=str(deployed.pk)).exclude(leaf__isnull=True)
    assert events.count() >= 5
    for event in events:
        assert event.action in text


@pytest.mark.requirement("PR-18")
def test_a_changelog_pack_is_signed_and_one_changed_byte_breaks_the_signature(
    cast: Cast, deployed: Changelog, tmp_path: Path
) -> None:
    pdfsig = poppler("pdfsig")
    job = request_pack(cast, {"kind": "changelog", "changelog": str(deployed.pk)})
    signed = download(cast, job, "pack.pdf")
    good = tmp_path / "good.pdf"
    good.write_bytes(signed)
    tampered = bytearray(signed)
    offset = signed.index(b"/Title")  # inside the signed range, well before the signature
    tampered[offset + 8] ^= 0x01
    bad = tmp_path / "bad.pdf"
    bad.write_bytes(bytes(tampered))

    valid = subprocess.run([pdfsig, str(good)], capture_output=True, text=True, check=False).stdout
    invalid = subprocess.run([pdfsig, str(bad)], capture_output=True, text=True, check=False).stdout

    assert "Signature Validation: Signature is Valid." in valid
    assert "Signature is Valid." not in invalid


@pytest.mark.requirement("PR-18")
def test_the_zip_manifest_matches_and_its_proofs_verify_offline(
    cast: Cast, deployed: Changelog, tmp_path: Path
) -> None:
    job = request_pack(cast, {"kind": "changelog", "changelog": str(deployed.pk)})
    folder = tmp_path / "pack"
    with zipfile.ZipFile(io.BytesIO(download(cast, job, "pack.zip"))) as archive:
        archive.extractall(folder)

    manifest = json.loads((folder / "manifest.json").read_text())
    for name, digest in manifest["files"].items():
        assert hashlib.sha256((folder / name).read_bytes()).hexdigest() == digest, name
    for evidence in Evidence.objects.filter(changelog=deployed):
        assert evidence.sha256 in manifest["files"].values()
    proofs = sorted((folder / "proofs").glob("*.json"))
    assert len(proofs) == AuditEvent.objects.filter(target_id=str(deployed.pk)).exclude(leaf__isnull=True).count() + 2
    for proof in proofs:
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "tlog.verifier",
                "inclusion",
                "--key",
                str(folder / "public-key.txt"),
                "--checkpoint",
                str(folder / "checkpoint.txt"),
                str(proof),
            ],
            cwd=folder / "verifier",
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode == 0, (proof.name, result.stderr)
    built = AuditEvent.objects.get(action="pack:built")
    assert json.loads(built.data)["files"]["pack.zip"] == job["files"][1]["sha256"]
    # The whole pack, with the repository's verifier: the manifest is signed by the pack key,
    # and the PDF prints its hash.
    whole = subprocess.run(
        [sys.executable, "-m", "tlog.verifier", "pack", str(folder)],
        cwd=Path(__file__).resolve().parents[2],
        capture_output=True,
        text=True,
        check=False,
    )
    assert whole.returncode == 0, whole.stderr


@pytest.mark.requirement("PR-18")
def test_a_hotfix_pack_carries_its_post_implementation_review(cast: Cast, tmp_path: Path) -> None:
    pdftotext = poppler("pdftotext")
    hotfix = ready_changelog(cast, kind="hotfix", risk_tier="medium")
    check(cast.pipeline.client())
    assert report_succeeded(cast.pipeline.client(), hotfix, "hotfix-run-1").status_code == 201
    summary = "The hotfix restored the old rounding of Maestro card fees; payments recovered at 14:05."
    reviewed = cast.session(cast.requester).post(
        f"/api/v1/changelogs/{hotfix.pk}/retrospective/review", {"summary": summary}, format="json"
    )
    assert reviewed.status_code == 201, reviewed.json()
    sequence_all()  # on PostgreSQL the sequencer waits for the server-wide transaction horizon

    job = request_pack(cast, {"kind": "changelog", "changelog": str(hotfix.pk)})
    pdf = tmp_path / "pack.pdf"
    pdf.write_bytes(download(cast, job, "pack.pdf"))
    with zipfile.ZipFile(io.BytesIO(download(cast, job, "pack.zip"))) as archive:
        events = [json.loads(line) for line in archive.read("events.jsonl").splitlines()]

    text = subprocess.run([pdftotext, "-layout", str(pdf), "-"], capture_output=True, text=True, check=True).stdout
    assert "retrospective:reviewed" in text
    [review] = [event for event in events if event["action"] == "retrospective:reviewed"]
    assert review["data"]["summary"] == summary


@pytest.mark.requirement("PR-16")
def test_a_population_pack_counts_what_the_database_holds_and_lists_the_exceptions(
    cast: Cast, deployed: Changelog, tmp_path: Path
) -> None:
    pdftotext = poppler("pdftotext")
    pipeline = cast.pipeline.client()
    unauthorised = pipeline.post(
        "/api/v1/deployments/",
        {
            "idempotency_key": "run-2",
            "service": "payments-api",
            "environment": "production",
            "artifact_digest": OTHER_DIGEST,
            "status": "succeeded",
            "started_at": "2026-11-27T11:00:00Z",
        },
        format="json",
    ).json()
    hotfix = ready_changelog(
        cast,
        kind="hotfix",
        risk_tier="high",
        artifact={
            **deployed.current_revision.content["artifact"],
            "digest": "sha256:" + "ef" * 32,  # type: ignore[union-attr]
        },
    )
    # Its deadline passed (deadlines are the database's clock: the record is moved, not the clock).
    Retrospective.objects.filter(changelog=hotfix).update(due_at=F("due_at") - timedelta(hours=25))
    retrospectives_mark_overdue()
    start = first_day().isoformat()  # a period starts no earlier than the audit trail
    end = (timezone.now() + timedelta(days=2)).isoformat()

    job = request_pack(cast, {"kind": "population", "start": start, "end": end, "sample_size": 1, "seed": 4242})
    table = download(cast, job, "population.csv")
    rows = list(csv.DictReader(io.StringIO(table.decode())))
    pdf = tmp_path / "population.pdf"
    pdf.write_bytes(download(cast, job, "population.pdf"))
    text = subprocess.run([pdftotext, "-layout", str(pdf), "-"], capture_output=True, text=True, check=True).stdout

    changes = [row for row in rows if row["record"] == "change"]
    deployments = [row for row in rows if row["record"] == "deployment"]
    assert {row["changelog_id"] for row in changes} == {str(deployed.pk), str(hotfix.pk)}
    assert len(deployments) == 2
    assert unauthorised["id"] in text
    assert str(hotfix.pk) in text
    assert "4242" in text  # the seed is printed
    assert hashlib.sha256(table).hexdigest() in text  # the signed PDF binds the CSV
    assert "retrospective" in text.lower()


def test_a_deployment_after_a_deny_is_an_unauthorised_deployment_of_that_change_in_both_packs(
    cast: Cast, tmp_path: Path
) -> None:
    pdftotext = poppler("pdftotext")
    changelog = ready_changelog(cast, approved=False)
    pipeline = cast.pipeline.client()
    assert check(pipeline).json()["decision"] == "deny"
    deployment = report_succeeded(pipeline, changelog, "run-denied").json()

    change_job = request_pack(cast, {"kind": "changelog", "changelog": str(changelog.pk)})
    change_pdf = tmp_path / "change.pdf"
    change_pdf.write_bytes(download(cast, change_job, "pack.pdf"))
    change_text = subprocess.run(
        [pdftotext, "-layout", str(change_pdf), "-"], capture_output=True, text=True, check=True
    ).stdout
    start = first_day().isoformat()
    end = (timezone.now() + timedelta(days=1)).isoformat()
    population_job = request_pack(cast, {"kind": "population", "start": start, "end": end, "sample_size": 1, "seed": 7})
    rows = list(csv.DictReader(io.StringIO(download(cast, population_job, "population.csv").decode())))

    assert "No deployments." not in change_text
    assert deployment["id"] in change_text
    assert "UNAUTHORISED" in change_text
    [change] = [row for row in rows if row["record"] == "change"]
    assert change["changelog_id"] == str(changelog.pk)
    assert change["deployments"] == "1"
    assert change["first_deployed_at"] != ""
    assert change["approval_before_deploy"] == "false"
    [reported] = [row for row in rows if row["record"] == "deployment"]
    assert reported["changelog_id"] == str(changelog.pk)
    assert reported["unauthorised"] == "true"


def test_asking_twice_for_the_same_pack_returns_the_same_job(cast: Cast, deployed: Changelog) -> None:
    body = {"kind": "changelog", "changelog": str(deployed.pk)}
    auditor = cast.session(cast.auditor)

    first = auditor.post("/api/v1/packs/", body, format="json")
    second = auditor.post("/api/v1/packs/", body, format="json")

    assert first.status_code == 202
    assert second.status_code == 200
    assert second.json()["id"] == first.json()["id"]
    assert PackJob.objects.count() == 1


@pytest.mark.parametrize(("who", "status"), [("requester", 403), ("approver", 403), ("pipeline", 403), ("admin", 202)])
def test_packs_are_for_auditors_and_administrators(cast: Cast, deployed: Changelog, who: str, status: int) -> None:
    client = cast.pipeline.client() if who == "pipeline" else cast.session(getattr(cast, who))

    response = client.post("/api/v1/packs/", {"kind": "changelog", "changelog": str(deployed.pk)}, format="json")

    assert response.status_code == status


def test_an_auditor_cannot_change_anything(cast: Cast, deployed: Changelog) -> None:
    auditor = cast.session(cast.auditor)
    url = f"/api/v1/changelogs/{deployed.pk}/"

    assert auditor.get(url).status_code == 200
    assert auditor.patch(url, {"reason": "audit edit"}, format="json").status_code == 403
    assert auditor.post(f"{url}submit").status_code == 403
    assert (
        auditor.post(
            f"{url}approvals/",
            {"decision": "approved", "reason": "x", "password": "a-test-password-1234", **seen_of(deployed)},
            format="json",
        ).status_code
        == 403
    )
    assert (
        auditor.post(
            "/api/v1/gate/check", {"service": "payments-api", "artifact_digest": OTHER_DIGEST}, format="json"
        ).status_code
        == 400
    )
    assert auditor.get("/admin/changelogs/changelog/").status_code == 200
    assert (
        auditor.post("/admin/changelogs/domain/add/", {"slug": "x", "name": "x", "owning_squad": "x"}).status_code
        == 403
    )


def test_a_pack_whose_message_was_lost_is_handed_over_again(cast: Cast, deployed: Changelog) -> None:
    from packs.models import PackStatus
    from packs.services import pack_request
    from packs.tasks import packs_resume

    job, _ = pack_request(acting_user=cast.auditor, kind="changelog", params={"changelog": str(deployed.pk)})
    PackJob.objects.filter(pk=job.pk).update(
        status=PackStatus.QUEUED, created_at=timezone.now() - timedelta(minutes=10)
    )

    handed_over = packs_resume()

    assert handed_over == 1
    assert PackJob.objects.get(pk=job.pk).status == "done"


@pytest.mark.parametrize(
    ("start", "end", "code"),
    [
        ("0001-01-01T00:00:00Z", "0001-12-31T00:00:00Z", "invalid_input"),  # out_of_range on the field
        ("1971-01-01T00:00:00Z", "1971-12-31T00:00:00Z", "period_before_records"),
    ],
)
def test_a_population_pack_from_before_the_records_is_refused_and_nothing_is_queued(
    cast: Cast, start: str, end: str, code: str
) -> None:
    """Seen: a population pack asked for from year 1 was accepted and then retried forever."""
    events = AuditEvent.objects.count()

    response = cast.session(cast.auditor).post(
        "/api/v1/packs/", {"kind": "population", "start": start, "end": end}, format="json"
    )

    assert response.status_code == 400
    assert response.json()["code"] == code
    if code == "period_before_records":
        assert f"cannot start before {first_day():%Y-%m-%dT%H:%M:%SZ}" in response.json()["message"]
    else:
        assert [error["code"] for error in response.json()["fields"]["start"]] == ["out_of_range"]
    assert not PackJob.objects.exists()
    assert AuditEvent.objects.count() == events


def test_a_population_pack_longer_than_the_maximum_span_is_refused(cast: Cast, settings: Any) -> None:
    settings.PACK_MAX_PERIOD_DAYS = 31
    start = first_day()
    auditor = cast.session(cast.auditor)

    too_long = auditor.post(
        "/api/v1/packs/",
        {"kind": "population", "start": start.isoformat(), "end": (start + timedelta(days=31, seconds=1)).isoformat()},
        format="json",
    )
    longest = auditor.post(
        "/api/v1/packs/",
        {"kind": "population", "start": start.isoformat(), "end": (start + timedelta(days=31)).isoformat()},
        format="json",
    )

    assert too_long.status_code == 400
    assert too_long.json()["code"] == "period_too_long"
    assert longest.status_code == 202
