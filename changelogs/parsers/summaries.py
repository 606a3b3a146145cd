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


def _plain(value: Any) -> Any:
    """Plain JSON data: enums as text, tuples as lists, mappings as dicts, parts by ``to_dict``."""
    if isinstance(value, StrEnum):
        return str(value)
    if isinstance(value, tuple):
        return [_plain(item) for item in value]
    if isinstance(value, Mapping):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, _Plain):
        return value.to_dict()
    return value


class _Plain:
    """What every summary and its parts share, stated as data rather than written out per class.

    ``FIELDS`` lists the keys of ``to_dict()`` in order; ``"key=attribute"`` names the attribute
    where it differs from the key. ``ROUNDED`` gives the places of floats (where the tool's
    precision ends). ``LABELS`` are text from the file, bounded once here whichever parser built
    the value (None stays None); ``FROZEN`` are mappings made read-only.
    """

    FIELDS: ClassVar[tuple[str, ...]] = ()
    ROUNDED: ClassVar[Mapping[str, int]] = MappingProxyType({})
    LABELS: ClassVar[tuple[str, ...]] = ()
    FROZEN: ClassVar[tuple[str, ...]] = ()

    def __post_init__(self) -> None:
        for name in self.LABELS:
            object.__setattr__(self, name, _label(getattr(self, name)))
        for name in self.FROZEN:
            object.__setattr__(self, name, _frozen(getattr(self, name)))

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {}
        for entry in self.FIELDS:
            key, _, attribute = entry.partition("=")
            value = getattr(self, attribute or key)
            places = self.ROUNDED.get(key)
            data[key] = _plain(value) if places is None else _round(value, places)
        return data


@dataclass(frozen=True)
class _Summary(_Plain):
    """A parser's result: its kind, format, parser version and verdict come first in
    ``to_dict()`` (``HEADER``, put before each summary's own ``FIELDS`` here, once)."""

    kind: ClassVar[EvidenceKind]
    HEADER: ClassVar[tuple[str, ...]] = ("kind", "format", "parser_version", "verdict")

    format: str
    parser_version: str

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "FIELDS" in cls.__dict__:
            cls.FIELDS = (*_Summary.HEADER, *cls.__dict__["FIELDS"])

    @property
    def verdict(self) -> Verdict:
        # Documents carry facts, not an outcome; summaries that judge say so themselves.
        return "info"


# --- sanity -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class TestCaseResult(_Plain):
    __test__: ClassVar[bool] = False  # not a pytest test class, despite the name
    FIELDS = ("name", "suite", "classname", "outcome", "duration_s", "journeys", "properties", "message")
    ROUNDED = MappingProxyType({"duration_s": 6})
    LABELS = ("name", "suite", "classname")

    name: str
    suite: str | None
    classname: str | None
    outcome: Outcome
    duration_s: float | None
    journeys: tuple[str, ...] = ()
    properties: Mapping[str, str] = field(default_factory=lambda: _frozen(None))
    message: str | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        bounded = {bounded_label(key): bounded_label(value) for key, value in self.properties.items()}
        object.__setattr__(self, "properties", _frozen(bounded))


def _journey_outcome(outcomes: set[Outcome]) -> Outcome:
    # A journey is only as good as its worst test: one failing or erroring test fails it.
    if outcomes & {"failed", "error"}:
        return "failed"
    if "flaky" in outcomes:
        return "flaky"
    if "passed" in outcomes:
        return "passed"
    return "skipped"


class _CasesWith:
    """How many of a run's cases ended with one outcome (a read-only attribute of the run)."""

    def __init__(self, outcome: Outcome) -> None:
        self.outcome = outcome

    def __get__(self, run: "TestRunSummary", owner: type | None = None) -> int:
        return sum(1 for case in run.cases if case.outcome == self.outcome)


@dataclass(frozen=True)
class TestRunSummary(_Summary):
    __test__: ClassVar[bool] = False
    kind: ClassVar[EvidenceKind] = EvidenceKind.SANITY
    FIELDS = (
        *("tool", "tool_version", "tests", "passed", "failed", "errors", "skipped", "flaky"),
        *("journeys=journey_outcomes", "cases", "notes"),
    )

    tool: str
    tool_version: str | None
    cases: tuple[TestCaseResult, ...]
    notes: tuple[str, ...] = ()

    passed: ClassVar[_CasesWith] = _CasesWith("passed")
    failed: ClassVar[_CasesWith] = _CasesWith("failed")
    errors: ClassVar[_CasesWith] = _CasesWith("error")
    skipped: ClassVar[_CasesWith] = _CasesWith("skipped")
    flaky: ClassVar[_CasesWith] = _CasesWith("flaky")

    @property
    def tests(self) -> int:
        return len(self.cases)

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


# --- performance ------------------------------------------------------------------------------


@dataclass(frozen=True)
class LatencyMs(_Plain):
    """Request latency in milliseconds; None where the file does not record that statistic."""

    FIELDS = ("p50", "p90", "p95", "p99", "avg", "max")
    ROUNDED = MappingProxyType(dict.fromkeys(FIELDS, 3))

    p50: float | None = None
    p90: float | None = None
    p95: float | None = None
    p99: float | None = None
    avg: float | None = None
    max: float | None = None


@dataclass(frozen=True)
class Threshold(_Plain):
    FIELDS = ("metric", "expression", "crossed")

    metric: str
    expression: str
    crossed: bool


@dataclass(frozen=True)
class PerformanceSummary(_Summary):
    kind: ClassVar[EvidenceKind] = EvidenceKind.PERFORMANCE
    FIELDS = (
        *("tool", "requests", "failed_requests", "error_rate", "latency_ms"),
        *("checks_passed", "checks_failed", "thresholds", "notes"),
    )
    ROUNDED = MappingProxyType({"error_rate": 6})

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


# --- security ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ToolInfo(_Plain):
    FIELDS = ("name", "version")
    LABELS = ("name", "version")

    name: str
    version: str | None


@dataclass(frozen=True)
class SecurityResult(_Plain):
    FIELDS = (
        *("tool", "rule_id", "level", "severity", "security_severity"),
        *("message", "location", "baseline_state", "suppressed"),
    )
    ROUNDED = MappingProxyType({"security_severity": 2})
    LABELS = ("tool", "rule_id", "location")

    tool: str
    rule_id: str | None
    level: SarifLevel
    severity: Severity
    security_severity: float | None
    message: str
    location: str | None
    baseline_state: str | None
    suppressed: bool

    @property
    def counted(self) -> bool:
        """Open findings: not suppressed, and not ``absent`` (fixed since the baseline)."""
        return not self.suppressed and self.baseline_state != "absent"


@dataclass(frozen=True)
class SecuritySummary(_Summary):
    kind: ClassVar[EvidenceKind] = EvidenceKind.SECURITY
    FIELDS = (
        *("tools", "findings_by_severity", "suppressed", "fixed"),
        *("execution_successful", "scan_incomplete", "results", "notes"),
    )

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


@dataclass(frozen=True)
class DependencyVulnerability(_Plain):
    FIELDS = ("id", "aliases", "fix_versions")

    id: str
    aliases: tuple[str, ...]
    fix_versions: tuple[str, ...]


@dataclass(frozen=True)
class AuditedDependency(_Plain):
    FIELDS = ("name", "version", "skip_reason", "vulnerabilities")

    name: str
    version: str | None
    skip_reason: str | None
    vulnerabilities: tuple[DependencyVulnerability, ...] = ()


@dataclass(frozen=True)
class DependencyAuditSummary(_Summary):
    kind: ClassVar[EvidenceKind] = EvidenceKind.SECURITY
    FIELDS = (
        *("tool", "dependencies=dependency_count", "audited", "skipped", "vulnerabilities"),
        *("items=dependencies", "notes"),
    )

    tool: str
    dependencies: tuple[AuditedDependency, ...]
    notes: tuple[str, ...] = ()

    @property
    def dependency_count(self) -> int:
        return len(self.dependencies)

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


@dataclass(frozen=True)
class SecurityAttestationSummary(_Summary):
    """A signed-off manual security test (pentest); see ``attestation.py`` for the form."""

    kind: ClassVar[EvidenceKind] = EvidenceKind.SECURITY
    FIELDS = (
        *("schema", "tester_name", "tester_firm", "test_start", "test_end", "scope", "findings"),
        *("report_sha256", "signed_off_by", "signed_off_at"),
    )
    FROZEN = ("findings",)

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


# --- documents --------------------------------------------------------------------------------


@dataclass(frozen=True)
class VexVulnerability(_Plain):
    FIELDS = ("id", "severity", "state", "affects")

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
class CycloneDxSummary(_Summary):
    kind: ClassVar[EvidenceKind] = EvidenceKind.DOCUMENT
    FIELDS = (
        *("spec_version", "serial_number", "bom_version", "component_count", "metadata_component"),
        *("vulnerabilities=vulnerability_count", "vulnerabilities_by_severity"),
        *("open_vulnerabilities_by_severity", "vulnerabilities_by_state", "vulnerability_items=vulnerabilities"),
    )

    spec_version: str
    serial_number: str | None
    bom_version: int | None
    component_count: int
    metadata_component_name: str | None
    metadata_component_version: str | None
    vulnerabilities: tuple[VexVulnerability, ...] = ()

    @property
    def metadata_component(self) -> Mapping[str, str | None]:
        return {"name": self.metadata_component_name, "version": self.metadata_component_version}

    @property
    def vulnerability_count(self) -> int:
        return len(self.vulnerabilities)

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


@dataclass(frozen=True)
class StatementSubject(_Plain):
    FIELDS = ("name", "sha256", "digests")
    FROZEN = ("digests",)

    name: str
    digests: Mapping[str, str]

    @property
    def sha256(self) -> str | None:
        return self.digests.get("sha256")


@dataclass(frozen=True)
class DsseEnvelopeInfo(_Plain):
    FIELDS = ("payload_type", "signatures", "keyids")

    payload_type: str
    signatures: int
    keyids: tuple[str, ...]


PredicateFact = str | int | tuple[str, ...] | None


@dataclass(frozen=True)
class InTotoSummary(_Summary):
    kind: ClassVar[EvidenceKind] = EvidenceKind.DOCUMENT
    FIELDS = (
        *("statement_type", "predicate_type", "subjects", "envelope", "signatures_verified"),
        "predicate=predicate_facts",
    )
    FROZEN = ("predicate_facts",)

    statement_type: str
    predicate_type: str
    subjects: tuple[StatementSubject, ...]
    envelope: DsseEnvelopeInfo | None = None
    # A few facts lifted from well-known predicates (SLSA provenance, SLSA VSA, test-result).
    predicate_facts: Mapping[str, PredicateFact] = field(default_factory=lambda: _frozen(None))

    @property
    def signatures_verified(self) -> bool:
        # Parsing only decodes the envelope; checking signatures needs trusted keys and is done
        # (or not) elsewhere. Saying so explicitly keeps a reader from assuming otherwise.
        return False


@dataclass(frozen=True)
class DocumentSummary(_Summary):
    kind: ClassVar[EvidenceKind] = EvidenceKind.DOCUMENT
    FIELDS = ("size_bytes", "sha256")

    size_bytes: int
    sha256: str


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
