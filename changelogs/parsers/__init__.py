"""Evidence parsers: bytes a pipeline uploaded -> a typed, JSON-safe summary.

Pure Python (stdlib, defusedxml, PyYAML), no Django: the gate policy and the standalone
evidence pack reuse these. Usage::

    fmt = detect_format(data, filename) or "document"
    summary = parse(fmt, data)           # raises EvidenceParseError on a bad file
    summary.verdict                      # "pass" | "fail" | "info" (a hint; policy decides)
    summary.to_dict()                    # plain JSON data, stored beside the raw bytes

``FORMATS`` maps each format to its evidence kind and parser version; ``PARSER_VERSIONS`` is
the same registry as plain strings, to be stored with every summary so that a summary can
always be traced to the code that produced it (and re-derived when a parser changes).

Every module documents its own rules; the cross-cutting ones are in ``_common.py`` (limits and
safe reading), ``journeys.py`` (journey ids) and ``summaries.py`` (the dataclasses).
"""

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

from changelogs.parsers import (
    attestation,
    ctrf,
    cyclonedx,
    document,
    intoto,
    jmeter,
    junit,
    k6,
    locust,
    pip_audit,
    playwright,
    sarif,
)
from changelogs.parsers.detect import detect_format
from changelogs.parsers.errors import EvidenceParseError, ParseErrorCode
from changelogs.parsers.journeys import JOURNEY_ID_PATTERN, journey_ids_in, journey_tags_in_title
from changelogs.parsers.summaries import (
    AuditedDependency,
    CycloneDxSummary,
    DependencyAuditSummary,
    DependencyVulnerability,
    DocumentSummary,
    DsseEnvelopeInfo,
    EvidenceKind,
    InTotoSummary,
    LatencyMs,
    Outcome,
    PerformanceSummary,
    SecurityAttestationSummary,
    SecurityResult,
    SecuritySummary,
    Severity,
    StatementSubject,
    Summary,
    TestCaseResult,
    TestRunSummary,
    Threshold,
    ToolInfo,
    Verdict,
    VexVulnerability,
)


@dataclass(frozen=True)
class FormatInfo:
    name: str
    kind: EvidenceKind
    parser_version: str
    description: str
    parser: Callable[[bytes], Summary]


def _formats(*infos: FormatInfo) -> Mapping[str, FormatInfo]:
    return MappingProxyType({info.name: info for info in infos})


FORMATS: Mapping[str, FormatInfo] = _formats(
    FormatInfo("junit", EvidenceKind.SANITY, junit.PARSER_VERSION, "JUnit XML test report", junit.parse),
    FormatInfo(
        "playwright_json",
        EvidenceKind.SANITY,
        playwright.PARSER_VERSION,
        "Playwright JSON reporter output",
        playwright.parse,
    ),
    FormatInfo("ctrf_json", EvidenceKind.SANITY, ctrf.PARSER_VERSION, "CTRF JSON test report", ctrf.parse),
    FormatInfo(
        "k6_summary",
        EvidenceKind.PERFORMANCE,
        k6.PARSER_VERSION,
        "k6 end-of-test summary (--summary-export or handleSummary JSON)",
        k6.parse,
    ),
    FormatInfo(
        "locust_csv",
        EvidenceKind.PERFORMANCE,
        locust.PARSER_VERSION,
        "Locust --csv stats file (*_stats.csv)",
        locust.parse_csv,
    ),
    FormatInfo(
        "locust_json",
        EvidenceKind.PERFORMANCE,
        locust.PARSER_VERSION,
        "Locust --json / --json-file report",
        locust.parse_json,
    ),
    FormatInfo(
        "jmeter_jtl",
        EvidenceKind.PERFORMANCE,
        jmeter.PARSER_VERSION,
        "JMeter CSV JTL results with a header row",
        jmeter.parse,
    ),
    FormatInfo("sarif", EvidenceKind.SECURITY, sarif.PARSER_VERSION, "SARIF 2.1.0 scanner log", sarif.parse),
    FormatInfo(
        "security_attestation",
        EvidenceKind.SECURITY,
        attestation.PARSER_VERSION,
        "Signed-off manual security test attestation (JSON or YAML)",
        attestation.parse,
    ),
    FormatInfo(
        "pip_audit",
        EvidenceKind.SECURITY,
        pip_audit.PARSER_VERSION,
        "pip-audit JSON report",
        pip_audit.parse,
    ),
    FormatInfo(
        "cyclonedx",
        EvidenceKind.DOCUMENT,
        cyclonedx.PARSER_VERSION,
        "CycloneDX JSON SBOM or VEX",
        cyclonedx.parse,
    ),
    FormatInfo(
        "intoto",
        EvidenceKind.DOCUMENT,
        intoto.PARSER_VERSION,
        "in-toto Statement (v0.1/v1) or DSSE envelope",
        intoto.parse,
    ),
    FormatInfo(
        "document",
        EvidenceKind.DOCUMENT,
        document.PARSER_VERSION,
        "Any file, not parsed",
        document.parse,
    ),
)

KINDS: tuple[EvidenceKind, ...] = tuple(EvidenceKind)
PARSER_VERSIONS: Mapping[str, str] = MappingProxyType({name: info.parser_version for name, info in FORMATS.items()})


def formats_of_kind(kind: EvidenceKind | str) -> tuple[str, ...]:
    return tuple(name for name, info in FORMATS.items() if info.kind == kind)


def parse(fmt: str, data: bytes) -> Summary:
    """Parse ``data`` as ``fmt``; raise EvidenceParseError when the file cannot be used."""
    info = FORMATS.get(fmt)
    if info is None:
        raise EvidenceParseError(
            ParseErrorCode.UNSUPPORTED_FORMAT,
            f"Unknown evidence format {fmt!r}; known formats: {', '.join(FORMATS)}.",
        )
    return info.parser(data)


__all__ = [
    "FORMATS",
    "JOURNEY_ID_PATTERN",
    "KINDS",
    "PARSER_VERSIONS",
    "AuditedDependency",
    "CycloneDxSummary",
    "DependencyAuditSummary",
    "DependencyVulnerability",
    "DocumentSummary",
    "DsseEnvelopeInfo",
    "EvidenceKind",
    "EvidenceParseError",
    "FormatInfo",
    "InTotoSummary",
    "LatencyMs",
    "Outcome",
    "ParseErrorCode",
    "PerformanceSummary",
    "SecurityAttestationSummary",
    "SecurityResult",
    "SecuritySummary",
    "Severity",
    "StatementSubject",
    "Summary",
    "TestCaseResult",
    "TestRunSummary",
    "Threshold",
    "ToolInfo",
    "Verdict",
    "VexVulnerability",
    "detect_format",
    "formats_of_kind",
    "journey_ids_in",
    "journey_tags_in_title",
    "parse",
]
