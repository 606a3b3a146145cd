"""The typed summaries parsers produce: one frozen dataclass per evidence kind.

Counts are derived from the parsed items (test cases, scanner results, dependencies), never
copied from totals the file declares about itself, so a summary cannot disagree with its own
detail. ``to_dict()`` returns plain JSON data (str, int, float, bool, None, lists, dicts) that
canonical JSON can hash; floats are rounded where the tools' precision ends (durations to the
microsecond, latencies to the microsecond in milliseconds, rates to six places).

``verdict`` is the parser's hint: ``"fail"`` when the file itself says something failed,
``"pass"`` otherwise, ``"info"`` for documents that carry facts but no outcome. The gate policy
applies its own limits on top and has the last word.
"""

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import Any, ClassVar, Literal

from changelogs.parsers._common import bounded_label

Verdict = Literal["pass", "fail", "info"]
Outcome = Literal["passed", "failed", "error", "skipped", "flaky"]
# A test declared to fail (Playwright's test.fail(), pytest's xfail) that failed: it proves
# nothing, so it is skipped, and covers no journey, whichever report format carried it.
EXPECTED_FAILURE_MESSAGE = "expected to fail (test.fail() or xfail): covers nothing"
Severity = Literal["critical", "high", "medium", "low", "note"]
SarifLevel = Literal["error", "warning", "note", "none"]

SEVERITIES: tuple[Severity, ...] = ("critical", "high", "medium", "low", "note")
OUTCOMES: tuple[Outcome, ...] = ("passed", "failed", "error", "skipped", "flaky")


class EvidenceKind(StrEnum):
    SANITY = "sanity"
    PERFORMANCE = "performance"
    SECURITY = "security"
    DOCUMENT = "document"


def _frozen(mapping: Mapping[str, Any] | None) -> Mapping[str, Any]:
    return MappingProxyType(dict(mapping or {}))


def _label(value: str | None) -> str | None:
    return None if value is None else bounded_label(value)


def _round(value: float | None, places: int) -> float | None:
    return None if value is None else round(value, places)


# --- sanity -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class TestCaseResult:
    __test__: ClassVar[bool] = False  # not a pytest test class, despite the name

    name: str
    suite: str | None
    classname: str | None
    outcome: Outcome
    duration_s: float | None
    journeys: tuple[str, ...] = ()
    properties: Mapping[str, str] = field(default_factory=lambda: _frozen(None))
    message: str | None = None

    def __post_init__(self) -> None:
        # Names come straight from the file: bound them here, whichever parser built the case.
        object.__setattr__(self, "name", bounded_label(self.name))
        object.__setattr__(self, "suite", _label(self.suite))
        object.__setattr__(self, "classname", _label(self.classname))
        object.__setattr__(
            self,
            "properties",
            _frozen({bounded_label(key): bounded_label(value) for key, value in self.properties.items()}),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "suite": self.suite,
            "classname": self.classname,
            "outcome": self.outcome,
            "duration_s": _round(self.duration_s, 6),
            "journeys": list(self.journeys),
            "properties": dict(self.properties),
            "message": self.message,
        }


def _journey_outcome(outcomes: set[Outcome]) -> Outcome:
    # A journey is only as good as its worst test: one failing or erroring test fails it.
    if outcomes & {"failed", "error"}:
        return "failed"
    if "flaky" in outcomes:
        return "flaky"
    if "passed" in outcomes:
        return "passed"
    return "skipped"


@dataclass(frozen=True)
class TestRunSummary:
    __test__: ClassVar[bool] = False
    kind: ClassVar[EvidenceKind] = EvidenceKind.SANITY

    format: str
    parser_version: str
    tool: str
    tool_version: str | None
    cases: tuple[TestCaseResult, ...]
    notes: tuple[str, ...] = ()

    def _count(self, outcome: Outcome) -> int:
        return sum(1 for case in self.cases if case.outcome == outcome)

    @property
    def tests(self) -> int:
        return len(self.cases)

    @property
    def passed(self) -> int:
        return self._count("passed")

    @property
    def failed(self) -> int:
        return self._count("failed")

    @property
    def errors(self) -> int:
        return self._count("error")

    @property
    def skipped(self) -> int:
        return self._count("skipped")

    @property
    def flaky(self) -> int:
        return self._count("flaky")

    @property
    def journey_outcomes(self) -> Mapping[str, Outcome]:
        """Each journey id the run mentions, with the outcome of its worst test."""
        seen: dict[str, set[Outcome]] = {}
        for case in self.cases:
            for journey in case.journeys:
                seen.setdefault(journey, set()).add(case.outcome)
        return MappingProxyType({journey: _journey_outcome(seen[journey]) for journey in sorted(seen)})

    @property
    def verdict(self) -> Verdict:
        # A run in which nothing ran (no tests, or all skipped) proves nothing: fail closed.
        if self.failed or self.errors or not (self.passed or self.flaky):
            return "fail"
        return "pass"

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": str(self.kind),
            "format": self.format,
            "parser_version": self.parser_version,
            "verdict": self.verdict,
            "tool": self.tool,
            "tool_version": self.tool_version,
            "tests": self.tests,
            "passed": self.passed,
            "failed": self.failed,
            "errors": self.errors,
            "skipped": self.skipped,
            "flaky": self.flaky,
            "journeys": dict(self.journey_outcomes),
            "cases": [case.to_dict() for case in self.cases],
            "notes": list(self.notes),
        }


# --- performance ------------------------------------------------------------------------------


@dataclass(frozen=True)
class LatencyMs:
    """Request latency in milliseconds; None where the file does not record that statistic."""

    p50: float | None = None
    p90: float | None = None
    p95: float | None = None
    p99: float | None = None
    avg: float | None = None
    max: float | None = None

    def to_dict(self) -> dict[str, float | None]:
        return {
            "p50": _round(self.p50, 3),
            "p90": _round(self.p90, 3),
            "p95": _round(self.p95, 3),
            "p99": _round(self.p99, 3),
            "avg": _round(self.avg, 3),
            "max": _round(self.max, 3),
        }


@dataclass(frozen=True)
class Threshold:
    metric: str
    expression: str
    crossed: bool

    def to_dict(self) -> dict[str, Any]:
        return {"metric": self.metric, "expression": self.expression, "crossed": self.crossed}


@dataclass(frozen=True)
class PerformanceSummary:
    kind: ClassVar[EvidenceKind] = EvidenceKind.PERFORMANCE

    format: str
    parser_version: str
    tool: str
    requests: int | None
    failed_requests: int | None
    error_rate: float | None
    latency_ms: LatencyMs
    checks_passed: int | None = None
    checks_failed: int | None = None
    thresholds: tuple[Threshold, ...] = ()
    notes: tuple[str, ...] = ()

    @property
    def verdict(self) -> Verdict:
        return "fail" if any(threshold.crossed for threshold in self.thresholds) else "pass"

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": str(self.kind),
            "format": self.format,
            "parser_version": self.parser_version,
            "verdict": self.verdict,
            "tool": self.tool,
            "requests": self.requests,
            "failed_requests": self.failed_requests,
            "error_rate": _round(self.error_rate, 6),
            "latency_ms": self.latency_ms.to_dict(),
            "checks_passed": self.checks_passed,
            "checks_failed": self.checks_failed,
            "thresholds": [threshold.to_dict() for threshold in self.thresholds],
            "notes": list(self.notes),
        }


# --- security ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ToolInfo:
    name: str
    version: str | None

    def __post_init__(self) -> None:
        object.__setattr__(self, "name", bounded_label(self.name))
        object.__setattr__(self, "version", _label(self.version))

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "version": self.version}


@dataclass(frozen=True)
class SecurityResult:
    tool: str
    rule_id: str | None
    level: SarifLevel
    severity: Severity
    security_severity: float | None
    message: str
    location: str | None
    baseline_state: str | None
    suppressed: bool

    def __post_init__(self) -> None:
        object.__setattr__(self, "tool", bounded_label(self.tool))
        object.__setattr__(self, "rule_id", _label(self.rule_id))
        object.__setattr__(self, "location", _label(self.location))

    @property
    def counted(self) -> bool:
        """Open findings: not suppressed, and not ``absent`` (fixed since the baseline)."""
        return not self.suppressed and self.baseline_state != "absent"

    def to_dict(self) -> dict[str, Any]:
        return {
            "tool": self.tool,
            "rule_id": self.rule_id,
            "level": self.level,
            "severity": self.severity,
            "security_severity": _round(self.security_severity, 2),
            "message": self.message,
            "location": self.location,
            "baseline_state": self.baseline_state,
            "suppressed": self.suppressed,
        }


@dataclass(frozen=True)
class SecuritySummary:
    kind: ClassVar[EvidenceKind] = EvidenceKind.SECURITY

    format: str
    parser_version: str
    tools: tuple[ToolInfo, ...]
    results: tuple[SecurityResult, ...]
    execution_successful: bool = True
    # What the tool said it could not scan (SARIF tool execution/configuration notifications).
    scan_incomplete: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()

    @property
    def findings_by_severity(self) -> Mapping[Severity, int]:
        counts: dict[Severity, int] = dict.fromkeys(SEVERITIES, 0)
        for result in self.results:
            if result.counted:
                counts[result.severity] += 1
        return MappingProxyType(counts)

    @property
    def suppressed(self) -> int:
        return sum(1 for result in self.results if result.suppressed)

    @property
    def fixed(self) -> int:
        return sum(1 for result in self.results if not result.suppressed and result.baseline_state == "absent")

    @property
    def verdict(self) -> Verdict:
        counts = self.findings_by_severity
        if counts["critical"] or counts["high"] or not self.execution_successful:
            return "fail"
        return "pass"

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": str(self.kind),
            "format": self.format,
            "parser_version": self.parser_version,
            "verdict": self.verdict,
            "tools": [tool.to_dict() for tool in self.tools],
            "findings_by_severity": dict(self.findings_by_severity),
            "suppressed": self.suppressed,
            "fixed": self.fixed,
            "execution_successful": self.execution_successful,
            "scan_incomplete": list(self.scan_incomplete),
            "results": [result.to_dict() for result in self.results],
            "notes": list(self.notes),
        }


@dataclass(frozen=True)
class DependencyVulnerability:
    id: str
    aliases: tuple[str, ...]
    fix_versions: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "aliases": list(self.aliases),
            "fix_versions": list(self.fix_versions),
        }


@dataclass(frozen=True)
class AuditedDependency:
    name: str
    version: str | None
    skip_reason: str | None
    vulnerabilities: tuple[DependencyVulnerability, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "skip_reason": self.skip_reason,
            "vulnerabilities": [vulnerability.to_dict() for vulnerability in self.vulnerabilities],
        }


@dataclass(frozen=True)
class DependencyAuditSummary:
    kind: ClassVar[EvidenceKind] = EvidenceKind.SECURITY

    format: str
    parser_version: str
    tool: str
    dependencies: tuple[AuditedDependency, ...]
    notes: tuple[str, ...] = ()

    @property
    def audited(self) -> int:
        return sum(1 for dependency in self.dependencies if dependency.skip_reason is None)

    @property
    def skipped(self) -> int:
        return len(self.dependencies) - self.audited

    @property
    def vulnerabilities(self) -> int:
        return sum(len(dependency.vulnerabilities) for dependency in self.dependencies)

    @property
    def verdict(self) -> Verdict:
        # pip-audit exits 0 and prints "No known vulnerabilities found" when it could audit
        # nothing; a dependency it skipped was not checked, so the audit cannot pass.
        return "fail" if self.vulnerabilities or self.skipped else "pass"

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": str(self.kind),
            "format": self.format,
            "parser_version": self.parser_version,
            "verdict": self.verdict,
            "tool": self.tool,
            "dependencies": len(self.dependencies),
            "audited": self.audited,
            "skipped": self.skipped,
            "vulnerabilities": self.vulnerabilities,
            "items": [dependency.to_dict() for dependency in self.dependencies],
            "notes": list(self.notes),
        }


@dataclass(frozen=True)
class SecurityAttestationSummary:
    """A signed-off manual security test (pentest); see ``attestation.py`` for the form."""

    kind: ClassVar[EvidenceKind] = EvidenceKind.SECURITY

    format: str
    parser_version: str
    schema: str
    tester_name: str
    tester_firm: str
    test_start: str
    test_end: str
    scope: tuple[str, ...]
    findings: Mapping[str, int]
    report_sha256: str | None
    signed_off_by: str
    signed_off_at: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "findings", _frozen(self.findings))

    @property
    def verdict(self) -> Verdict:
        return "info"

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": str(self.kind),
            "format": self.format,
            "parser_version": self.parser_version,
            "verdict": self.verdict,
            "schema": self.schema,
            "tester_name": self.tester_name,
            "tester_firm": self.tester_firm,
            "test_start": self.test_start,
            "test_end": self.test_end,
            "scope": list(self.scope),
            "findings": dict(self.findings),
            "report_sha256": self.report_sha256,
            "signed_off_by": self.signed_off_by,
            "signed_off_at": self.signed_off_at,
        }


# --- documents --------------------------------------------------------------------------------


@dataclass(frozen=True)
class VexVulnerability:
    id: str
    severity: str
    state: str | None
    affects: tuple[str, ...]

    # CycloneDX analysis states under which a vulnerability no longer needs action.
    CLOSED_STATES: ClassVar[frozenset[str]] = frozenset(
        {"not_affected", "false_positive", "resolved", "resolved_with_pedigree"}
    )

    @property
    def open(self) -> bool:
        return self.state not in self.CLOSED_STATES

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "severity": self.severity,
            "state": self.state,
            "affects": list(self.affects),
        }


CYCLONEDX_SEVERITIES: tuple[str, ...] = (
    "critical",
    "high",
    "medium",
    "low",
    "info",
    "none",
    "unknown",
)


@dataclass(frozen=True)
class CycloneDxSummary:
    kind: ClassVar[EvidenceKind] = EvidenceKind.DOCUMENT

    format: str
    parser_version: str
    spec_version: str
    serial_number: str | None
    bom_version: int | None
    component_count: int
    metadata_component_name: str | None
    metadata_component_version: str | None
    vulnerabilities: tuple[VexVulnerability, ...] = ()

    def _by_severity(self, *, open_only: bool) -> Mapping[str, int]:
        counts = dict.fromkeys(CYCLONEDX_SEVERITIES, 0)
        for vulnerability in self.vulnerabilities:
            if vulnerability.open or not open_only:
                counts[vulnerability.severity] += 1
        return MappingProxyType(counts)

    @property
    def vulnerabilities_by_severity(self) -> Mapping[str, int]:
        return self._by_severity(open_only=False)

    @property
    def open_vulnerabilities_by_severity(self) -> Mapping[str, int]:
        """Without those whose analysis says not_affected, false_positive or resolved."""
        return self._by_severity(open_only=True)

    @property
    def vulnerabilities_by_state(self) -> Mapping[str, int]:
        counts: dict[str, int] = {}
        for vulnerability in self.vulnerabilities:
            state = vulnerability.state or "not_analysed"
            counts[state] = counts.get(state, 0) + 1
        return MappingProxyType(dict(sorted(counts.items())))

    @property
    def verdict(self) -> Verdict:
        return "info"

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": str(self.kind),
            "format": self.format,
            "parser_version": self.parser_version,
            "verdict": self.verdict,
            "spec_version": self.spec_version,
            "serial_number": self.serial_number,
            "bom_version": self.bom_version,
            "component_count": self.component_count,
            "metadata_component": {
                "name": self.metadata_component_name,
                "version": self.metadata_component_version,
            },
            "vulnerabilities": len(self.vulnerabilities),
            "vulnerabilities_by_severity": dict(self.vulnerabilities_by_severity),
            "open_vulnerabilities_by_severity": dict(self.open_vulnerabilities_by_severity),
            "vulnerabilities_by_state": dict(self.vulnerabilities_by_state),
            "vulnerability_items": [vulnerability.to_dict() for vulnerability in self.vulnerabilities],
        }


@dataclass(frozen=True)
class StatementSubject:
    name: str
    digests: Mapping[str, str]

    def __post_init__(self) -> None:
        object.__setattr__(self, "digests", _frozen(self.digests))

    @property
    def sha256(self) -> str | None:
        return self.digests.get("sha256")

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "sha256": self.sha256, "digests": dict(self.digests)}


@dataclass(frozen=True)
class DsseEnvelopeInfo:
    payload_type: str
    signatures: int
    keyids: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "payload_type": self.payload_type,
            "signatures": self.signatures,
            "keyids": list(self.keyids),
        }


PredicateFact = str | int | tuple[str, ...] | None


@dataclass(frozen=True)
class InTotoSummary:
    kind: ClassVar[EvidenceKind] = EvidenceKind.DOCUMENT

    format: str
    parser_version: str
    statement_type: str
    predicate_type: str
    subjects: tuple[StatementSubject, ...]
    envelope: DsseEnvelopeInfo | None = None
    # A few facts lifted from well-known predicates (SLSA provenance, SLSA VSA, test-result).
    predicate_facts: Mapping[str, PredicateFact] = field(default_factory=lambda: _frozen(None))

    def __post_init__(self) -> None:
        object.__setattr__(self, "predicate_facts", _frozen(self.predicate_facts))

    @property
    def signatures_verified(self) -> bool:
        # Parsing only decodes the envelope; checking signatures needs trusted keys and is done
        # (or not) elsewhere. Saying so explicitly keeps a reader from assuming otherwise.
        return False

    @property
    def verdict(self) -> Verdict:
        return "info"

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": str(self.kind),
            "format": self.format,
            "parser_version": self.parser_version,
            "verdict": self.verdict,
            "statement_type": self.statement_type,
            "predicate_type": self.predicate_type,
            "subjects": [subject.to_dict() for subject in self.subjects],
            "envelope": None if self.envelope is None else self.envelope.to_dict(),
            "signatures_verified": self.signatures_verified,
            "predicate": {
                key: list(value) if isinstance(value, tuple) else value for key, value in self.predicate_facts.items()
            },
        }


@dataclass(frozen=True)
class DocumentSummary:
    kind: ClassVar[EvidenceKind] = EvidenceKind.DOCUMENT

    format: str
    parser_version: str
    size_bytes: int
    sha256: str

    @property
    def verdict(self) -> Verdict:
        return "info"

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": str(self.kind),
            "format": self.format,
            "parser_version": self.parser_version,
            "verdict": self.verdict,
            "size_bytes": self.size_bytes,
            "sha256": self.sha256,
        }


Summary = (
    TestRunSummary
    | PerformanceSummary
    | SecuritySummary
    | DependencyAuditSummary
    | SecurityAttestationSummary
    | CycloneDxSummary
    | InTotoSummary
    | DocumentSummary
)
