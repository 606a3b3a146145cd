"""Evidence through the API: real tool outputs in, exact bytes back, bad files refused with
nothing left behind, and readiness from the policy."""

import hashlib
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.test import APIClient

from audit.models import AuditEvent
from changelogs.models import Changelog, Evidence
from changelogs.services import policy_create
from tests.changelogs.evidence_files import REAL_SAMPLES, junit_with_journeys, k6_passing, sample, sarif_clean
from tests.conftest import Cast
from tests.factories import DIGEST, JourneyFactory, changelog_make


def evidence_url(changelog: Changelog) -> str:
    return f"/api/v1/changelogs/{changelog.id}/evidence/"


def upload(client: APIClient, changelog: Changelog, name: str, data: bytes, kind: str, **extra: str) -> Any:
    """Sanity and performance results come from staging and name the factory's artifact unless
    the test says otherwise (the default policy counts them from nowhere else, refuses them
    without an environment, and counts them only when they name the digest they ran against)."""
    if kind in {"sanity", "performance"}:
        extra.setdefault("environment", "staging")
        extra.setdefault("artifact_digest", DIGEST)
    if "/" in name or "\\" in name:
        return raw_upload(client, changelog, name, data, kind)
    body = {"kind": kind, "file": SimpleUploadedFile(name, data), **extra}
    return client.post(evidence_url(changelog), body, format="multipart")


def raw_upload(client: APIClient, changelog: Changelog, name: str, data: bytes, kind: str) -> Any:
    """A multipart body written by hand, because the test client strips folders from file
    names and a hostile client would not."""
    boundary = "----releasegate-test-boundary"
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="kind"\r\n\r\n{kind}\r\n'
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        + data
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return client.generic(
        "POST", evidence_url(changelog), body, content_type=f"multipart/form-data; boundary={boundary}"
    )


def stored_files() -> set[Path]:
    root = Path(settings.EVIDENCE_STORAGE_DIR)
    return {path for path in root.rglob("*") if path.is_file()} if root.exists() else set()


@pytest.fixture
def draft(cast: Cast) -> Changelog:
    JourneyFactory(journey_id="PAY-001", domain=cast.payments, critical=True)
    JourneyFactory(journey_id="PAY-002", domain=cast.payments, critical=True)
    JourneyFactory(journey_id="PAY-003", domain=cast.payments, critical=False)
    return changelog_make(service=cast.payments_api)


@pytest.mark.parametrize(("path", "kind", "fmt"), REAL_SAMPLES, ids=[path for path, _, _ in REAL_SAMPLES])
def test_every_real_sample_is_accepted_and_comes_back_byte_for_byte(
    cast: Cast, draft: Changelog, path: str, kind: str, fmt: str
) -> None:
    data = sample(path)
    client = cast.pipeline.client()

    response = upload(client, draft, Path(path).name, data, kind, environment="staging", tool="ci")

    assert response.status_code == 201, response.json()
    evidence = response.json()
    assert evidence["format"] == fmt
    assert evidence["sha256"] == hashlib.sha256(data).hexdigest()
    assert evidence["size"] == len(data)
    assert evidence["summary"]["format"] == fmt
    assert evidence["uploaded_by"] == "svc-payments-ci"
    download = client.get(f"{evidence_url(draft)}{evidence['id']}/download")
    assert download.status_code == 200
    assert download.content == data
    assert hashlib.sha256(download.content).hexdigest() == evidence["sha256"]
    assert download["Content-Disposition"] == f'attachment; filename="{Path(path).name}"'


def test_a_summary_carries_the_numbers_of_the_file(cast: Cast, draft: Changelog) -> None:
    client = cast.pipeline.client()

    junit = upload(client, draft, "junit.xml", sample("tests/junit-pytest-xunit2.xml"), "sanity").json()
    k6 = upload(client, draft, "k6.json", sample("perf/k6-summary-export.json"), "performance").json()
    bandit = upload(client, draft, "bandit.sarif", sample("security/bandit.sarif"), "security").json()

    assert (junit["summary"]["tests"], junit["summary"]["failed"], junit["summary"]["errors"]) == (7, 1, 1)
    assert junit["verdict"] == "fail"
    assert k6["summary"]["latency_ms"]["p95"] == 3.187
    assert k6["summary"]["requests"] == 720
    assert bandit["summary"]["findings_by_severity"] == {"critical": 0, "high": 2, "medium": 3, "low": 3, "note": 0}
    assert bandit["parser_version"] == "sarif/2"


def test_an_upload_is_audited_with_its_hash(cast: Cast, draft: Changelog) -> None:
    data = sample("security/ruff.sarif")

    upload(cast.pipeline.client(), draft, "ruff.sarif", data, "security")

    event = AuditEvent.objects.get(action="evidence:added")
    assert event.target_id == str(draft.id)
    assert f'"sha256":"{hashlib.sha256(data).hexdigest()}"' in event.data
    assert event.actor == "service_account:svc-payments-ci"


XXE = b"""<?xml version="1.0"?>
<!DOCTYPE testsuites [<!ENTITY secret SYSTEM "file:///etc/passwd">]>
<testsuites><testsuite name="x" tests="1"><testcase name="&secret;"/></testsuite></testsuites>"""

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>
<testsuites><testsuite name="&lol3;" tests="0"/></testsuites>"""

EXTERNAL_DTD = b"""<?xml version="1.0"?>
<!DOCTYPE testsuites SYSTEM "http://attacker.example/junit.dtd">
<testsuites><testsuite name="x" tests="0"/></testsuites>"""

ADVERSARIAL: list[tuple[str, str, bytes, str, dict[str, str], str]] = [
    ("empty file", "junit.xml", b"", "sanity", {}, "empty_file"),
    (
        "SARIF declared as sanity",
        "scan.sarif",
        sample("security/semgrep.sarif"),
        "sanity",
        {},
        "evidence_kind_mismatch",
    ),
    (
        "JUnit declared as performance",
        "junit.xml",
        sample("tests/junit-node-test.xml"),
        "performance",
        {},
        "evidence_kind_mismatch",
    ),
    (
        "JSON named as JUnit",
        "junit.xml",
        sample("perf/k6-handlesummary.json"),
        "sanity",
        {"format": "junit"},
        "wrong_format",
    ),
    (
        "truncated XML",
        "junit.xml",
        sample("tests/junit-pytest-xunit2.xml")[:400],
        "sanity",
        {"format": "junit"},
        "malformed_xml",
    ),
    (
        "truncated JSON",
        "k6.json",
        sample("perf/k6-summary-export.json")[:300],
        "performance",
        {"format": "k6_summary"},
        "malformed_json",
    ),
    ("XXE with an external entity", "junit.xml", XXE, "sanity", {"format": "junit"}, "forbidden_xml_construct"),
    ("billion laughs", "junit.xml", BILLION_LAUGHS, "sanity", {"format": "junit"}, "forbidden_xml_construct"),
    ("external DTD", "junit.xml", EXTERNAL_DTD, "sanity", {"format": "junit"}, "forbidden_xml_construct"),
    (
        "path traversal in the name",
        "../../etc/cron.d/evil",
        sample("tests/junit-node-test.xml"),
        "sanity",
        {},
        "invalid_file_name",
    ),
    (
        "a Windows path in the name",
        "..\\..\\evil.xml",
        sample("tests/junit-node-test.xml"),
        "sanity",
        {},
        "invalid_file_name",
    ),
    ("an unknown format", "x.bin", b"\x00\x01", "sanity", {"format": "pdf"}, "invalid_input"),
    ("an undetectable sanity file", "notes.txt", b"all good, trust me", "sanity", {}, "evidence_format_not_detected"),
]


@pytest.mark.parametrize(
    ("case", "name", "data", "kind", "extra", "code"), ADVERSARIAL, ids=[case[0] for case in ADVERSARIAL]
)
def test_a_bad_file_is_refused_with_a_clear_code_and_nothing_is_stored(
    cast: Cast, draft: Changelog, case: str, name: str, data: bytes, kind: str, extra: dict[str, str], code: str
) -> None:
    files_before, events_before = stored_files(), AuditEvent.objects.count()

    response = upload(cast.pipeline.client(), draft, name, data, kind, **extra)

    assert response.status_code == 400, response.json()
    assert response.json()["code"] == code
    assert response.json()["message"]
    assert Evidence.objects.count() == 0
    assert stored_files() == files_before
    assert AuditEvent.objects.count() == events_before


def test_a_parse_error_says_where_the_file_broke(cast: Cast, draft: Changelog) -> None:
    response = upload(
        cast.pipeline.client(),
        draft,
        "k6.json",
        b'{"metrics": {"http_reqs": [1, 2,',
        "performance",
        format="k6_summary",
    )

    assert response.status_code == 400
    assert "line 1" in response.json()["message"]


def test_a_file_over_the_limit_is_refused_with_413_and_not_stored(cast: Cast, draft: Changelog, settings: Any) -> None:
    settings.EVIDENCE_MAX_UPLOAD_BYTES = 1000
    files_before = stored_files()

    small_enough = upload(
        cast.pipeline.client(), draft, "node.xml", sample("tests/junit-node-test.xml")[:0] + b"<x/>" * 10, "document"
    )
    too_large = upload(cast.pipeline.client(), draft, "big.xml", b"<a>" + b"x" * 5000 + b"</a>", "document")
    far_too_large = upload(cast.pipeline.client(), draft, "huge.bin", b"x" * 200_000, "document")

    assert small_enough.status_code == 201
    assert too_large.status_code == 413
    assert too_large.json()["code"] == "evidence_too_large"
    assert far_too_large.status_code == 413
    assert Evidence.objects.count() == 1
    assert len(stored_files() - files_before) == 1


def test_evidence_is_added_to_drafts_only(cast: Cast) -> None:
    submitted = changelog_make(service=cast.payments_api, submitted=True)

    response = upload(cast.pipeline.client(), submitted, "junit.xml", sample("tests/junit-node-test.xml"), "sanity")

    assert response.status_code == 409
    assert response.json()["code"] == "changelog_not_draft"


@pytest.mark.parametrize(
    ("who", "upload_status", "read_status"),
    [
        ("pipeline", 201, 200),
        ("requester", 201, 200),
        ("admin", 201, 200),
        ("auditor", 403, 200),
        ("other_pipeline", 404, 404),
        ("anonymous", 401, 401),
    ],
)
def test_each_caller_may_upload_and_read_as_expected(
    cast: Cast, draft: Changelog, who: str, upload_status: int, read_status: int
) -> None:
    existing = upload(cast.pipeline.client(), draft, "node.xml", sample("tests/junit-node-test.xml"), "sanity").json()
    client = {
        "pipeline": cast.pipeline.client(),
        "other_pipeline": cast.other_pipeline.client(),
        "anonymous": APIClient(),
    }.get(who) or cast.session(getattr(cast, who))

    assert upload(client, draft, "ruff.sarif", sample("security/ruff.sarif"), "security").status_code == upload_status
    assert client.get(evidence_url(draft)).status_code == read_status
    assert client.get(f"{evidence_url(draft)}{existing['id']}/").status_code == read_status
    assert client.get(f"{evidence_url(draft)}{existing['id']}/download").status_code == read_status


@pytest.mark.requirement("PR-03")
def test_evidence_is_part_of_the_submitted_hash_and_carried_to_the_next_revision(cast: Cast, draft: Changelog) -> None:
    client = cast.pipeline.client()
    base = f"/api/v1/changelogs/{draft.id}/"
    upload(client, draft, "node.xml", sample("tests/junit-node-test.xml"), "sanity")
    first = client.post(f"{base}submit").json()["revision"]["content_hash"]

    client.patch(base, {"reason": "Same change, new words."}, format="json")
    carried = client.get(evidence_url(draft)).json()
    client.patch(base, {"reason": "Fixes rounding of card fees."}, format="json")  # back to the original text
    upload(client, draft, "ruff.sarif", sample("security/ruff.sarif"), "security")
    second = client.post(f"{base}submit").json()["revision"]["content_hash"]

    assert [item["file_name"] for item in carried] == ["node.xml"]
    assert second != first  # same text, one more evidence file
    assert len(client.get(f"{evidence_url(draft)}?revision=1").json()) == 1
    assert len(client.get(evidence_url(draft)).json()) == 2


def test_a_draft_file_can_be_taken_off_and_stays_in_history(cast: Cast, draft: Changelog) -> None:
    client = cast.pipeline.client()
    wrong = upload(client, draft, "node.xml", sample("tests/junit-node-test.xml"), "sanity").json()

    response = client.delete(f"{evidence_url(draft)}{wrong['id']}/")

    assert response.status_code == 204
    assert client.get(evidence_url(draft)).json() == []
    assert client.get(f"{evidence_url(draft)}{wrong['id']}/download").status_code == 200
    assert AuditEvent.objects.filter(action="evidence:detached").count() == 1


def test_a_stored_file_changed_outside_release_gate_is_never_served(cast: Cast, draft: Changelog) -> None:
    client = cast.pipeline.client()
    evidence = upload(client, draft, "node.xml", sample("tests/junit-node-test.xml"), "sanity").json()
    stored = Path(settings.EVIDENCE_STORAGE_DIR) / Evidence.objects.get(pk=evidence["id"]).storage_key
    original = stored.read_bytes()
    stored.write_bytes(original + b"<!-- one more line -->")
    try:
        response = client.get(f"{evidence_url(draft)}{evidence['id']}/download")
    finally:
        stored.write_bytes(original)

    assert response.status_code == 500
    assert response.json()["code"] == "evidence_corrupted"


def readiness(client: APIClient, changelog: Changelog) -> dict[str, Any]:
    response = client.get(f"/api/v1/changelogs/{changelog.id}/readiness")
    assert response.status_code == 200
    return response.json()


def test_a_changelog_with_complete_passing_evidence_is_ready(cast: Cast, draft: Changelog) -> None:
    client = cast.pipeline.client()
    upload(client, draft, "junit.xml", junit_with_journeys({"PAY-001": "passed", "PAY-002": "passed"}), "sanity")
    upload(client, draft, "k6.json", k6_passing(), "performance")
    upload(client, draft, "semgrep.sarif", sarif_clean(), "security")

    assert readiness(client, draft) == {"revision": 1, "policy": "default@v0", "ready": True, "findings": []}


def test_readiness_lists_what_the_real_samples_lack(cast: Cast, draft: Changelog) -> None:
    client = cast.pipeline.client()
    junit = upload(
        client, draft, "junit.xml", sample("tests/junit-pytest-xunit2.xml"), "sanity", environment="staging"
    ).json()
    k6 = upload(
        client, draft, "k6.json", sample("perf/k6-summary-export.json"), "performance", environment="staging"
    ).json()
    semgrep = upload(client, draft, "semgrep.sarif", sample("security/semgrep.sarif"), "security").json()

    findings = {(f["code"], f["evidence"], f["journey"]) for f in readiness(client, draft)["findings"]}

    assert findings == {
        ("evidence_failed", junit["id"], None),
        ("journey_not_covered", None, "PAY-001"),  # the sample tags "login", which is no journey id
        ("journey_not_covered", None, "PAY-002"),
        ("evidence_failed", k6["id"], None),
        ("threshold_exceeded", k6["id"], None),  # error rate 33 %
        ("security_findings_exceeded", semgrep["id"], None),  # one critical
    }


def test_a_failed_test_of_a_journey_makes_it_failed_not_covered(cast: Cast, draft: Changelog) -> None:
    client = cast.pipeline.client()
    upload(client, draft, "junit.xml", junit_with_journeys({"PAY-001": "passed", "PAY-002": "failed"}), "sanity")

    codes = {(f["code"], f["journey"]) for f in readiness(client, draft)["findings"]}

    assert ("journey_failed", "PAY-002") in codes
    assert ("journey_not_covered", "PAY-002") not in codes
    assert ("journey_not_covered", "PAY-001") not in codes


@pytest.mark.requirement("PR-05")
def test_the_domain_policy_and_a_service_override_apply_by_version(cast: Cast, draft: Changelog) -> None:
    client = cast.pipeline.client()
    upload(client, draft, "junit.xml", junit_with_journeys({"PAY-001": "passed", "PAY-002": "passed"}), "sanity")
    upload(client, draft, "semgrep.sarif", sarif_clean(), "security")

    policy_create(
        acting_user=cast.admin,
        domain=cast.payments,
        rules={"required_evidence": {"train": ["sanity", "security"], "hotfix": ["sanity"]}},
        reason="No load tests for payments yet",
    )
    assert readiness(client, draft) == {"revision": 1, "policy": "domain:payments@v1", "ready": True, "findings": []}

    policy_create(
        acting_user=cast.admin,
        domain=cast.payments,
        service=cast.payments_api,
        rules={},
        reason="payments-api needs load tests",
    )
    after = readiness(client, draft)
    assert after["policy"] == "service:payments-api@v1"
    assert [f["code"] for f in after["findings"]] == ["evidence_missing"]
    assert AuditEvent.objects.filter(action="policy:created").count() == 2


def test_readiness_at_submission_is_kept_with_the_revision(cast: Cast, draft: Changelog) -> None:
    client = cast.pipeline.client()

    client.post(f"/api/v1/changelogs/{draft.id}/submit")

    draft.refresh_from_db()
    kept = draft.current_revision.readiness_at_submit  # type: ignore[union-attr]
    assert kept["policy"] == "default@v0"
    assert {f["code"] for f in kept["findings"]} == {"evidence_missing", "journey_not_covered"}


@pytest.mark.parametrize("environment", [None, "", "production"], ids=["left out", "empty", "not accepted"])
@pytest.mark.parametrize(
    ("kind", "name", "data"),
    [("sanity", "junit.xml", junit_with_journeys({"PAY-001": "passed"})), ("performance", "k6.json", k6_passing())],
    ids=["sanity", "performance"],
)
def test_evidence_without_the_environment_the_policy_counts_is_refused_with_nothing_stored(
    cast: Cast, environment: str | None, kind: str, name: str, data: bytes
) -> None:
    """Seen: a file uploaded without `environment` was accepted (201) and could never count."""
    draft = changelog_make(service=cast.payments_api, by=cast.pipeline.account)
    events = AuditEvent.objects.count()
    body: dict[str, Any] = {"kind": kind, "file": SimpleUploadedFile(name, data)}
    if environment is not None:
        body["environment"] = environment

    response = cast.pipeline.client().post(evidence_url(draft), body, format="multipart")

    assert response.status_code == 400
    assert response.json()["code"] == "evidence_environment_required"
    assert response.json()["fields"]["environment"][0]["code"] == "evidence_environment_required"
    assert "staging" in response.json()["message"]
    assert not Evidence.objects.exists()
    assert AuditEvent.objects.count() == events


def test_the_environments_accepted_are_the_policys(cast: Cast) -> None:
    policy_create(acting_user=cast.admin, domain=cast.payments, rules={"sanity_environments": ["qa"]}, reason="QA")
    draft = changelog_make(service=cast.payments_api, by=cast.pipeline.account)
    client = cast.pipeline.client()
    junit = junit_with_journeys({"PAY-001": "passed"})

    staging = upload(client, draft, "junit.xml", junit, "sanity", environment="staging")
    qa = upload(client, draft, "junit.xml", junit, "sanity", environment="qa")
    scan = upload(client, draft, "semgrep.sarif", sarif_clean(), "security")  # security: from anywhere

    assert staging.status_code == 400
    assert "domain:payments@v1 counts sanity evidence only from qa" in staging.json()["message"]
    assert qa.status_code == 201
    assert scan.status_code == 201
