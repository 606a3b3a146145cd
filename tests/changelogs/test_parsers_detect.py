"""Format detection: by content first, the file name only as a fallback."""

import json

import pytest

from changelogs.parsers import FORMATS, PARSER_VERSIONS, EvidenceKind, detect_format, formats_of_kind, parse
from tests.shared_data import SAMPLES_DIR

# Every real evidence sample and the format its content says it is.
SAMPLE_FORMATS = {
    "tests/junit-pytest-xunit2.xml": "junit",
    "tests/junit-pytest-xunit1.xml": "junit",
    "tests/junit-pytest-collection-error.xml": "junit",
    "tests/junit-node-test.xml": "junit",
    "tests/playwright-junit.xml": "junit",
    "tests/playwright-report.json": "playwright_json",
    "tests/playwright-ctrf.json": "ctrf_json",
    "perf/k6-summary-export.json": "k6_summary",
    "perf/k6-handlesummary.json": "k6_summary",
    "perf/locust_stats.csv": "locust_csv",
    "perf/locust-stats.json": "locust_json",
    "security/bandit.sarif": "sarif",
    "security/ruff.sarif": "sarif",
    "security/semgrep.sarif": "sarif",
    "security/pip-audit-unaudited.json": "pip_audit",
    "sbom/cyclonedx-sbom.cdx.json": "cyclonedx",
    "sbom/cyclonedx-vex.cdx.json": "cyclonedx",
    "identity/intoto-slsa-provenance-v1.json": "intoto",
    "identity/intoto-slsa-provenance-v1.dsse.json": "intoto",
    "identity/intoto-slsa-vsa-v1.json": "intoto",
    "identity/intoto-test-result-v0.1.json": "intoto",
}

# Real files that are not evidence of any format we parse.
# Locust's side files are not evidence either, but they are recognised as Locust's, so that
# the parser's refusal can say which file to upload instead (test_parsers_agree.py).
LOCUST_SIDE_FILES = ["perf/locust_stats_history.csv", "perf/locust_failures.csv", "perf/locust_exceptions.csv"]
NOT_EVIDENCE = [
    "identity/dsse-ed25519-public-key.json",
    "identity/cdevents-artifact-published-0.3.0.json",
    "identity/cdevents-service-deployed-0.3.0.json",
    "identity/cdevents-testsuiterun-finished-0.3.0.json",
]


@pytest.mark.parametrize(("path", "fmt"), SAMPLE_FORMATS.items())
def test_it_recognises_every_real_sample_by_its_content(path: str, fmt: str) -> None:
    data = (SAMPLES_DIR / path).read_bytes()

    assert detect_format(data, "upload.bin") == fmt
    assert detect_format(data, path.rsplit("/", 1)[-1]) == fmt


@pytest.mark.parametrize(("path", "fmt"), SAMPLE_FORMATS.items())
def test_every_real_sample_parses_as_the_format_detected(path: str, fmt: str) -> None:
    summary = parse(fmt, (SAMPLES_DIR / path).read_bytes())

    assert summary.format == fmt
    assert summary.kind == FORMATS[fmt].kind
    assert summary.to_dict()["parser_version"] == PARSER_VERSIONS[fmt]


@pytest.mark.parametrize(
    "path",
    NOT_EVIDENCE
    + sorted(
        str(p.relative_to(SAMPLES_DIR)) for p in (SAMPLES_DIR / "identity" / "cdevents-spec-conformance").glob("*.json")
    ),
)
def test_it_recognises_nothing_in_files_that_are_not_evidence(path: str) -> None:
    assert detect_format((SAMPLES_DIR / path).read_bytes(), path.rsplit("/", 1)[-1]) is None


@pytest.mark.parametrize("path", LOCUST_SIDE_FILES)
def test_locust_side_files_are_recognised_as_locust_to_be_refused_by_its_parser(path: str) -> None:
    data = (SAMPLES_DIR / path).read_bytes()

    assert detect_format(data, "upload.bin") == detect_format(data, path.rsplit("/", 1)[-1]) == "locust_csv"


def test_the_content_wins_over_the_file_name() -> None:
    sarif = (SAMPLES_DIR / "security" / "bandit.sarif").read_bytes()

    assert detect_format(sarif, "junit-report.xml") == "sarif"


@pytest.mark.parametrize(
    ("filename", "fmt"),
    [
        ("scan.sarif", "sarif"),
        ("results/bandit.sarif.json", "sarif"),
        ("bom.json", "cyclonedx"),
        ("app.cdx.json", "cyclonedx"),
        ("provenance.intoto.jsonl", "intoto"),
        ("run_stats.csv", "locust_csv"),
        ("results.jtl", "jmeter_jtl"),
        ("TEST-com.bank.PaymentsTest.xml", "junit"),
        ("ctrf-report.json", "ctrf_json"),
        ("k6-summary.json", "k6_summary"),
        ("pentest-attestation.yaml", "security_attestation"),
        ("C:\\ci\\out\\junit.xml", "junit"),
        ("report.json", None),
        ("", None),
    ],
)
def test_the_file_name_is_only_a_fallback_for_unrecognisable_content(filename: str, fmt: str | None) -> None:
    truncated = b'{"runs": [{"tool": '

    assert detect_format(truncated, filename) == fmt


def test_it_finds_the_junit_root_behind_a_prolog_without_expanding_anything() -> None:
    data = (
        b'<?xml version="1.0"?>\n<!-- generated -->\n'
        b'<!DOCTYPE testsuites [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>\n'
        b"<testsuites><testsuite name='&xxe;'/></testsuites>"
    )

    assert detect_format(data, "x") == "junit"


@pytest.mark.parametrize(
    ("data", "fmt"),
    [
        (b"<testsuite name='s'/>", "junit"),
        (b'<?xml version="1.0"?><testResults version="1.2"/>', "jmeter_jtl"),
        (b'<bom xmlns="http://cyclonedx.org/schema/bom/1.6"/>', "cyclonedx"),
        (b"<html><body>login</body></html>", None),
        (b"timeStamp,elapsed,label,responseCode,success\n1,5,a,200,true\n", "jmeter_jtl"),
        (b"schema: release-gate/security-attestation/v1\ntester_name: x\n", "security_attestation"),
        (b'{"schema": "release-gate/security-attestation/v1"}', "security_attestation"),
        (b'{"payloadType": "application/vnd.in-toto+json", "payload": "", "signatures": []}', "intoto"),
        (b'{"mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json", "dsseEnvelope": {}}', "intoto"),
        (b'{"reportFormat": "CTRF", "results": {}}', "ctrf_json"),
        (b'{"metrics": {"http_req_duration{name:x}": {}}}', "k6_summary"),
        (b'{"metrics": {"cpu": 1}}', None),
        (b"\xef\xbb\xbf" + json.dumps({"version": "2.1.0", "runs": []}).encode(), "sarif"),
        (b"[]", None),
        (b"name,value\na,1\n", None),
        (b"   \n\t", None),
        (b"", None),
    ],
)
def test_it_sniffs_crafted_content(data: bytes, fmt: str | None) -> None:
    assert detect_format(data, "upload") == fmt


def test_bytes_that_are_not_utf8_fall_back_to_the_file_name() -> None:
    data = "<testsuites name='café'/>".encode("utf-16")

    assert detect_format(data, "junit.xml") == "junit"
    assert detect_format(data, "upload") is None


def test_every_format_belongs_to_one_kind_and_has_a_parser_version() -> None:
    assert {kind: formats_of_kind(kind) for kind in EvidenceKind} == {
        EvidenceKind.SANITY: ("junit", "playwright_json", "ctrf_json"),
        EvidenceKind.PERFORMANCE: ("k6_summary", "locust_csv", "locust_json", "jmeter_jtl"),
        EvidenceKind.SECURITY: ("sarif", "security_attestation", "pip_audit"),
        EvidenceKind.DOCUMENT: ("cyclonedx", "intoto", "document"),
    }
    assert dict(PARSER_VERSIONS) == {
        "junit": "junit/2",
        "playwright_json": "playwright/1",
        "ctrf_json": "ctrf/1",
        "k6_summary": "k6/1",
        "locust_csv": "locust/1",
        "locust_json": "locust/1",
        "jmeter_jtl": "jmeter/1",
        "sarif": "sarif/2",
        "security_attestation": "attestation/1",
        "pip_audit": "pip_audit/1",
        "cyclonedx": "cyclonedx/1",
        "intoto": "intoto/1",
        "document": "document/1",
    }
