"""Documents and attestations: the security attestation form, CycloneDX SBOM/VEX, in-toto
statements and DSSE envelopes, and plain documents."""

import base64
import hashlib
import json
from typing import Any

import pytest

from changelogs.parsers import (
    CycloneDxSummary,
    DocumentSummary,
    EvidenceParseError,
    InTotoSummary,
    SecurityAttestationSummary,
    parse,
)
from tests.shared_data import SAMPLES_DIR

IDENTITY_DIR = SAMPLES_DIR / "identity"
SBOM_DIR = SAMPLES_DIR / "sbom"
IMAGE_DIGEST = "fffa157f53cbee48e73e53d78e20d593a9339174a4cb4427327fd7387bf7f3a3"

# --- security attestation ---------------------------------------------------------------------

ATTESTATION_YAML = """\
# Pentest of payments-api 1.4.2, signed off by the head of application security.
schema: release-gate/security-attestation/v1
tester_name: Jane Doe
tester_firm: Example Security Ltd
test_start: 2026-11-16
test_end: 2026-11-20
scope:
  - payments-api 1.4.2 public REST API
  - payments admin UI
findings:
  critical: 0
  high: 0
  medium: 2
  low: 3
  info: 1
report_sha256: 9F86D081884C7D659A2FEAA0C55AD015A3BF4F1B2B0B822CD15D6C15B0F00A08
signed_off_by: John Smith
signed_off_at: 2026-11-21T09:30:00Z
"""

ATTESTATION_JSON: dict[str, Any] = {
    "schema": "release-gate/security-attestation/v1",
    "tester_name": "Jane Doe",
    "tester_firm": "Example Security Ltd",
    "test_start": "2026-11-16",
    "test_end": "2026-11-20",
    "scope": "payments-api 1.4.2",
    "findings": {"critical": 0, "high": 1, "medium": 0, "low": 0, "info": 0},
    "signed_off_by": "John Smith",
    "signed_off_at": "2026-11-20T18:00:00-05:00",
}


def _attestation(data: bytes) -> SecurityAttestationSummary:
    summary = parse("security_attestation", data)
    assert isinstance(summary, SecurityAttestationSummary)
    return summary


def test_it_reads_the_yaml_attestation_form() -> None:
    summary = _attestation(ATTESTATION_YAML.encode())

    assert summary.to_dict() == {
        "kind": "security",
        "format": "security_attestation",
        "parser_version": "attestation/1",
        "verdict": "info",
        "schema": "release-gate/security-attestation/v1",
        "tester_name": "Jane Doe",
        "tester_firm": "Example Security Ltd",
        "test_start": "2026-11-16",
        "test_end": "2026-11-20",
        "scope": ["payments-api 1.4.2 public REST API", "payments admin UI"],
        "findings": {"critical": 0, "high": 0, "medium": 2, "low": 3, "info": 1},
        "report_sha256": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
        "signed_off_by": "John Smith",
        "signed_off_at": "2026-11-21T09:30:00Z",
    }


def test_it_reads_the_json_attestation_form_and_normalises_the_sign_off_time_to_utc() -> None:
    summary = _attestation(json.dumps(ATTESTATION_JSON).encode())

    assert summary.scope == ("payments-api 1.4.2",)
    assert summary.signed_off_at == "2026-11-20T23:00:00Z"
    assert summary.report_sha256 is None
    assert summary.findings["high"] == 1


def _with(**changes: Any) -> bytes:
    document = dict(ATTESTATION_JSON)
    for key, value in changes.items():
        if value is None:
            document.pop(key)
        else:
            document[key] = value
    return json.dumps(document).encode()


@pytest.mark.parametrize(
    ("data", "location"),
    [
        (_with(tester_firm=None), "$.tester_firm"),
        (_with(tester_name="   "), "$.tester_name"),
        (_with(tester_name="x" * 201), "$.tester_name"),
        (_with(signed_off_by="John\x07Smith"), "$.signed_off_by"),
        (_with(notes="looks fine"), "$.notes"),
        (_with(scope=[]), "$.scope"),
        (_with(scope=["api", 7]), "$.scope[1]"),
        (_with(findings={"critical": 0, "high": 0, "medium": 0, "low": 0}), "$.findings.info"),
        (_with(findings={"critical": 0, "high": -1, "medium": 0, "low": 0, "info": 0}), "$.findings.high"),
        (_with(findings={"critical": True, "high": 0, "medium": 0, "low": 0, "info": 0}), "$.findings.critical"),
        (
            _with(findings={"critical": 0, "high": 0, "medium": 0, "low": 0, "info": 0, "severe": 1}),
            "$.findings.severe",
        ),
        (_with(findings=[0, 0, 0, 0, 0]), "$.findings"),
        (_with(test_start="16/11/2026"), "$.test_start"),
        (_with(test_start="2026-02-30"), "$.test_start"),
        (_with(test_end="2026-11-15"), "$.test_end"),
        (_with(signed_off_at="2026-11-21T09:30:00"), "$.signed_off_at"),
        (_with(signed_off_at="2026-11-21"), "$.signed_off_at"),
        (_with(signed_off_at="2026-11-19T09:30:00Z"), "$.signed_off_at"),
        (_with(report_sha256="abc123"), "$.report_sha256"),
    ],
)
def test_it_refuses_an_attestation_that_is_not_exactly_right(data: bytes, location: str) -> None:
    with pytest.raises(EvidenceParseError) as caught:
        parse("security_attestation", data)

    assert (caught.value.code, caught.value.location) == ("invalid_attestation", location)


def test_a_yaml_attestation_with_a_naive_sign_off_time_is_refused() -> None:
    data = ATTESTATION_YAML.replace("2026-11-21T09:30:00Z", "2026-11-21 09:30:00").encode()

    with pytest.raises(EvidenceParseError) as caught:
        parse("security_attestation", data)

    assert caught.value.location == "$.signed_off_at"


def test_a_yaml_attestation_with_a_repeated_key_is_refused_where_it_repeats() -> None:
    data = (ATTESTATION_YAML + "tester_name: Mallory\n").encode()

    with pytest.raises(EvidenceParseError) as caught:
        parse("security_attestation", data)

    assert (caught.value.code, caught.value.location) == ("malformed_yaml", "line 19, column 1")


def test_yaml_anchors_and_aliases_are_refused() -> None:
    data = ATTESTATION_YAML.replace("signed_off_by: John Smith", "signed_off_by: &who John Smith\nalias: *who")

    with pytest.raises(EvidenceParseError) as caught:
        parse("security_attestation", data.encode())

    assert caught.value.code == "forbidden_yaml_construct"


def test_yaml_python_tags_are_refused_not_executed() -> None:
    data = ATTESTATION_YAML.replace("tester_name: Jane Doe", 'tester_name: !!python/object/apply:os.system ["true"]')

    with pytest.raises(EvidenceParseError) as caught:
        parse("security_attestation", data.encode())

    assert caught.value.code == "malformed_yaml"
    assert caught.value.location == "line 3, column 14"


def test_another_schema_version_or_another_yaml_file_is_not_an_attestation() -> None:
    with pytest.raises(EvidenceParseError) as newer:
        parse("security_attestation", _with(schema="release-gate/security-attestation/v2"))
    with pytest.raises(EvidenceParseError) as other:
        parse("security_attestation", b"name: payments\nreplicas: 3\n")

    assert (newer.value.code, newer.value.location) == ("unsupported_version", "$.schema")
    assert (other.value.code, other.value.location) == ("wrong_format", "$.schema")


# --- CycloneDX --------------------------------------------------------------------------------


def _cyclonedx(data: bytes) -> CycloneDxSummary:
    summary = parse("cyclonedx", data)
    assert isinstance(summary, CycloneDxSummary)
    return summary


def test_it_summarises_the_real_sbom() -> None:
    summary = _cyclonedx((SBOM_DIR / "cyclonedx-sbom.cdx.json").read_bytes())

    assert summary.spec_version == "1.6"
    assert summary.serial_number == "urn:uuid:71e2c986-be8a-4d14-be1f-962a20205127"
    assert summary.bom_version == 1
    # Jinja2, MarkupSafe, certifi, chardet, idna, pip, requests, setuptools, urllib3.
    assert summary.component_count == 9
    assert (summary.metadata_component_name, summary.metadata_component_version) == ("payments-api", "1.4.2")
    assert summary.vulnerabilities == ()
    assert summary.verdict == "info"


def test_it_summarises_the_real_vex() -> None:
    summary = _cyclonedx((SBOM_DIR / "cyclonedx-vex.cdx.json").read_bytes())

    assert summary.serial_number == "urn:uuid:62efe9b3-cc1c-47a4-85a0-591eb2c489af"
    assert summary.component_count == 0
    assert (summary.metadata_component_name, summary.metadata_component_version) == (None, None)
    assert [(v.id, v.severity, v.state) for v in summary.vulnerabilities] == [
        ("CVE-2021-33503", "high", "in_triage"),
        ("CVE-2023-32681", "medium", "not_affected"),
        ("CVE-2024-22195", "medium", "exploitable"),
    ]
    data = summary.to_dict()
    assert data["vulnerabilities"] == 3
    assert data["vulnerabilities_by_severity"] == {
        "critical": 0,
        "high": 1,
        "medium": 2,
        "low": 0,
        "info": 0,
        "none": 0,
        "unknown": 0,
    }
    assert data["open_vulnerabilities_by_severity"]["medium"] == 1  # CVE-2023-32681 is not_affected
    assert data["vulnerabilities_by_state"] == {"exploitable": 1, "in_triage": 1, "not_affected": 1}
    # The VEX points into the SBOM by BOM-Link: urn:cdx:<SBOM serial>/<version>#<bom-ref>.
    assert summary.vulnerabilities[0].affects == ("urn:cdx:71e2c986-be8a-4d14-be1f-962a20205127/1#urllib3==1.26.4",)


def test_nested_components_count_and_a_score_without_severity_is_banded() -> None:
    bom = {
        "bomFormat": "CycloneDX",
        "specVersion": "1.5",
        "components": [{"name": "a", "components": [{"name": "b"}, {"name": "c", "components": [{"name": "d"}]}]}],
        "vulnerabilities": [
            {"id": "CVE-1", "ratings": [{"score": 9.8, "method": "CVSSv31"}]},
            {"id": "CVE-2", "ratings": [{"severity": "low"}, {"severity": "high"}]},
            {"id": "CVE-3"},
        ],
    }

    summary = _cyclonedx(json.dumps(bom).encode())

    assert summary.component_count == 4
    assert [v.severity for v in summary.vulnerabilities] == ["critical", "high", "unknown"]


@pytest.mark.parametrize(
    ("data", "code", "location"),
    [
        (b'<?xml version="1.0"?><bom xmlns="http://cyclonedx.org/schema/bom/1.6"/>', "unsupported_format", None),
        (b'{"bomFormat": "CycloneDX", "specVersion": "1.1"}', "unsupported_version", "$.specVersion"),
        (b'{"bomFormat": "SPDX"}', "wrong_format", "$.bomFormat"),
        (
            b'{"bomFormat": "CycloneDX", "specVersion": "1.6", "vulnerabilities": [{"analysis": {"state": "fine"}}]}',
            "invalid_structure",
            "$.vulnerabilities[0].analysis.state",
        ),
        (
            b'{"bomFormat": "CycloneDX", "specVersion": "1.6", "components": [{"name": "a"}, "b"]}',
            "invalid_structure",
            "$.components[1]",
        ),
    ],
)
def test_it_refuses_cyclonedx_it_cannot_read(data: bytes, code: str, location: str | None) -> None:
    with pytest.raises(EvidenceParseError) as caught:
        parse("cyclonedx", data)

    assert (caught.value.code, caught.value.location) == (code, location)


# --- in-toto and DSSE -------------------------------------------------------------------------


def _intoto(data: bytes) -> InTotoSummary:
    summary = parse("intoto", data)
    assert isinstance(summary, InTotoSummary)
    return summary


def _image_digest_from_oci_index() -> str:
    index = json.loads((IDENTITY_DIR / "oci-layout" / "index.json").read_text(encoding="utf-8"))
    digest: str = index["manifests"][0]["digest"]
    return digest.removeprefix("sha256:")


def test_it_summarises_the_slsa_provenance_statement() -> None:
    summary = _intoto((IDENTITY_DIR / "intoto-slsa-provenance-v1.json").read_bytes())

    assert summary.statement_type == "https://in-toto.io/Statement/v1"
    assert summary.predicate_type == "https://slsa.dev/provenance/v1"
    assert [(s.name, s.sha256) for s in summary.subjects] == [("registry.example.com/bank/payments-api", IMAGE_DIGEST)]
    assert _image_digest_from_oci_index() == IMAGE_DIGEST
    assert summary.envelope is None
    assert dict(summary.predicate_facts) == {
        "builder_id": "https://ci.example.com/runners/linux-amd64@v1",
        "build_type": "https://example.com/buildtypes/umoci-demo/v1",
        "invocation_id": "https://ci.example.com/pipelines/4711/jobs/2",
    }
    assert summary.verdict == "info"


def test_it_summarises_the_verification_summary_and_the_test_result_statements() -> None:
    vsa = _intoto((IDENTITY_DIR / "intoto-slsa-vsa-v1.json").read_bytes())
    tests = _intoto((IDENTITY_DIR / "intoto-test-result-v0.1.json").read_bytes())

    assert vsa.predicate_type == "https://slsa.dev/verification_summary/v1"
    assert vsa.predicate_facts["verification_result"] == "FAILED"
    assert vsa.predicate_facts["verified_levels"] == ("SLSA_BUILD_LEVEL_1",)
    # A v0.1 predicate inside a v1 statement.
    assert tests.statement_type == "https://in-toto.io/Statement/v1"
    assert tests.predicate_type == "https://in-toto.io/attestation/test-result/v0.1"
    assert dict(tests.predicate_facts) == {
        "result": "FAILED",
        "passed_tests": 3,
        "failed_tests": 2,
        "url": "https://ci.example.com/pipelines/4711/jobs/3",
    }
    assert {s.sha256 for s in vsa.subjects + tests.subjects} == {IMAGE_DIGEST}


def test_it_opens_the_dsse_envelope_without_claiming_to_verify_it() -> None:
    envelope = _intoto((IDENTITY_DIR / "intoto-slsa-provenance-v1.dsse.json").read_bytes())
    statement = _intoto((IDENTITY_DIR / "intoto-slsa-provenance-v1.json").read_bytes())

    assert envelope.envelope is not None
    assert envelope.envelope.to_dict() == {
        "payload_type": "application/vnd.in-toto+json",
        "signatures": 1,
        "keyids": ["3c180eb10cf2b728e9c8802eeb4942cef92a02abffa4b4f68cc50e26dccaacc3"],
    }
    data = envelope.to_dict()
    assert data["signatures_verified"] is False
    # The payload is the provenance statement byte for byte, so the rest of the summary agrees.
    assert {key: value for key, value in data.items() if key != "envelope"} == {
        key: value for key, value in statement.to_dict().items() if key != "envelope"
    }


def _envelope(statement: Any, **changes: Any) -> bytes:
    payload = statement if isinstance(statement, bytes) else json.dumps(statement).encode()
    envelope = {
        "payloadType": "application/vnd.in-toto+json",
        "payload": base64.b64encode(payload).decode(),
        "signatures": [{"keyid": "k1", "sig": "c2ln"}],
        **changes,
    }
    return json.dumps(envelope).encode()


STATEMENT_V01 = {
    "_type": "https://in-toto.io/Statement/v0.1",
    "subject": [{"name": "app.tar", "digest": {"sha256": IMAGE_DIGEST.upper(), "sha512": "ab" * 64}}],
    "predicateType": "https://slsa.dev/provenance/v0.2",
    "predicate": {"builder": {"id": "https://ci.example.com"}, "buildType": "make"},
}


def test_it_reads_a_v0_1_statement_in_a_url_safe_envelope_and_a_sigstore_bundle() -> None:
    payload = json.dumps(STATEMENT_V01).encode()
    url_safe = json.dumps(
        {
            "payloadType": "application/vnd.in-toto+json",
            "payload": base64.urlsafe_b64encode(payload).decode().rstrip("="),
            "signatures": [{"sig": "c2ln"}],
        }
    ).encode()
    bundle = json.dumps(
        {
            "mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
            "dsseEnvelope": json.loads(_envelope(STATEMENT_V01)),
        }
    ).encode()

    for data in (url_safe, bundle):
        summary = _intoto(data)
        assert summary.statement_type == "https://in-toto.io/Statement/v0.1"
        assert summary.subjects[0].sha256 == IMAGE_DIGEST  # normalised to lower case
        assert summary.predicate_facts["builder_id"] == "https://ci.example.com"


@pytest.mark.parametrize(
    ("data", "code", "location"),
    [
        (_envelope(STATEMENT_V01, payloadType="application/json"), "unsupported_format", "$.payloadType"),
        (_envelope(STATEMENT_V01, payload="not base64!"), "invalid_structure", "$.payload"),
        (
            _envelope(b'{"_type": "https://in-toto.io/Statement/v1", "subj'),
            "malformed_json",
            "$.payload<decoded> line 1, column 46",
        ),
        (_envelope(b"\xff\xfe{}"), "not_utf8", "$.payload"),
        (_envelope(STATEMENT_V01, signatures=[{"keyid": "k1", "sig": ""}]), "invalid_structure", "$.signatures[0].sig"),
        (
            _envelope({**STATEMENT_V01, "subject": [{"name": "a", "digest": {"sha256": "abc"}}]}),
            "invalid_structure",
            "$.payload<decoded>.subject[0].digest.sha256",
        ),
        (
            json.dumps({**STATEMENT_V01, "_type": "https://in-toto.io/Statement/v2"}).encode(),
            "unsupported_version",
            "$._type",
        ),
        (json.dumps({**STATEMENT_V01, "subject": []}).encode(), "invalid_structure", "$.subject"),
        (
            json.dumps({**STATEMENT_V01, "subject": [{"name": "a", "digest": {}}]}).encode(),
            "invalid_structure",
            "$.subject[0].digest",
        ),
        (b'{"keyid": "k", "keytype": "ed25519"}', "wrong_format", "$"),
    ],
)
def test_it_refuses_statements_and_envelopes_it_cannot_trust(data: bytes, code: str, location: str) -> None:
    with pytest.raises(EvidenceParseError) as caught:
        parse("intoto", data)

    assert (caught.value.code, caught.value.location) == (code, location)


# --- plain documents --------------------------------------------------------------------------


def test_any_non_empty_file_is_a_document_with_its_size_and_hash() -> None:
    data = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj<<>>endobj\n%%EOF\n"

    summary = parse("document", data)

    assert isinstance(summary, DocumentSummary)
    assert summary.to_dict() == {
        "kind": "document",
        "format": "document",
        "parser_version": "document/1",
        "verdict": "info",
        "size_bytes": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
    }
