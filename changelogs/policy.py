"""Evidence policy: the rules a changelog's evidence must meet, and their evaluation.

Pure: no Django. ``readiness_findings(rules, facts)`` is a function from plain data to a
list of findings with stable codes; the service layer gathers the facts, the gate and the
approver pages show the findings. An empty list means ready for approval.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

EVIDENCE_KINDS = ("sanity", "performance", "security", "document")
SEVERITIES = ("critical", "high", "medium", "low")
RISK_TIERS = ("low", "medium", "high", "critical")
DEFAULT_SECURITY_LIMITS: Mapping[str, int | None] = {"critical": 0, "high": 0, "medium": None, "low": None}


class FindingCode(StrEnum):
    EVIDENCE_MISSING = "evidence_missing"
    EVIDENCE_FAILED = "evidence_failed"
    EVIDENCE_WRONG_ENVIRONMENT = "evidence_wrong_environment"
    EVIDENCE_OTHER_ARTIFACT = "evidence_other_artifact"
    EVIDENCE_DIGEST_MISSING = "evidence_digest_missing"
    DATA_CHANGE_EVIDENCE_MISSING = "data_change_evidence_missing"
    TRAIN_CHANGE_NOT_APPROVED = "train_change_not_approved"
    JOURNEY_NOT_COVERED = "journey_not_covered"
    JOURNEY_FAILED = "journey_failed"
    THRESHOLD_EXCEEDED = "threshold_exceeded"
    THRESHOLD_NOT_MEASURED = "threshold_not_measured"
    SECURITY_FINDINGS_EXCEEDED = "security_findings_exceeded"
    SCAN_INCOMPLETE = "scan_incomplete"


class PolicyError(ValueError):
    """Rules that cannot be applied; the message names the offending key."""


@dataclass(frozen=True)
class Finding:
    code: FindingCode
    message: str
    evidence: str | None = None  # id of the evidence the finding is about
    journey: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"code": str(self.code), "message": self.message, "evidence": self.evidence, "journey": self.journey}


@dataclass(frozen=True)
class PolicyRules:
    """One version of a domain's (or a service's) rules. Every field has a bank-safe default."""

    required_evidence: Mapping[str, tuple[str, ...]] = field(
        default_factory=lambda: {"train": ("sanity", "performance", "security"), "hotfix": ("sanity", "security")}
    )
    sanity_environments: tuple[str, ...] = ("staging",)
    performance_environments: tuple[str, ...] = ("staging", "performance")
    # None: every critical journey of the domain must be covered.
    critical_journeys: tuple[str, ...] | None = None
    max_p95_ms: float | None = 500.0
    max_error_rate: float | None = 0.01
    max_security_findings: Mapping[str, int | None] = field(default_factory=lambda: dict(DEFAULT_SECURITY_LIMITS))
    # Approvals (used by the approvals app and the gate).
    required_approvals: Mapping[str, int] = field(
        default_factory=lambda: {"low": 1, "medium": 1, "high": 2, "critical": 2}
    )
    approval_validity_days: int = 7
    hotfix_retrospective_hours: int = 24
    # "hours": due hotfix_retrospective_hours after it opens; "next_business_day": by the end of
    # the organisation's next working day that is not a holiday (approvals/deadlines.py).
    hotfix_retrospective_deadline: str = "hours"
    # Risk tiers whose changes the gate allows only once their commit authors have been read from
    # the source host (GitHub): until then it denies commit_authors_unverified.
    require_verified_commit_authors: tuple[str, ...] = ()
    # The gate: how many minutes after its planned window ends a change may still go out.
    planned_window_grace_minutes: int = 0
    # Risk tiers whose approvals count only when signed with the approver's passkey over what
    # they decided (identity.challenge); an unsigned one is approval_unsigned.
    signed_approvals: tuple[str, ...] = ("high", "critical")
    # Staging tests and performance results count only when they name the artifact digest they
    # ran against (PR-02): one that names none proves nothing of this build (evidence_digest_missing).
    require_evidence_digest: bool = True

    def requires_verified_authors(self, risk_tier: str) -> bool:
        return risk_tier in self.require_verified_commit_authors

    def to_json(self) -> dict[str, Any]:
        return {
            "required_evidence": {kind: list(kinds) for kind, kinds in self.required_evidence.items()},
            "sanity_environments": list(self.sanity_environments),
            "performance_environments": list(self.performance_environments),
            "critical_journeys": None if self.critical_journeys is None else list(self.critical_journeys),
            "max_p95_ms": self.max_p95_ms,
            "max_error_rate": self.max_error_rate,
            "max_security_findings": dict(self.max_security_findings),
            "required_approvals": dict(self.required_approvals),
            "approval_validity_days": self.approval_validity_days,
            "hotfix_retrospective_hours": self.hotfix_retrospective_hours,
            "hotfix_retrospective_deadline": self.hotfix_retrospective_deadline,
            "require_verified_commit_authors": list(self.require_verified_commit_authors),
            "planned_window_grace_minutes": self.planned_window_grace_minutes,
            "signed_approvals": list(self.signed_approvals),
            "require_evidence_digest": self.require_evidence_digest,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "PolicyRules":
        """Strict: unknown keys and wrong types are refused, missing keys take the default."""
        if not isinstance(data, Mapping):
            raise PolicyError("rules must be a JSON object")
        defaults = cls()
        unknown = sorted(set(data) - set(defaults.to_json()))
        if unknown:
            raise PolicyError(f"unknown rule(s): {', '.join(unknown)}")
        return cls(
            required_evidence=_required_evidence(
                data.get("required_evidence", defaults.to_json()["required_evidence"])
            ),
            sanity_environments=_strings(data, "sanity_environments", defaults.sanity_environments),
            performance_environments=_strings(data, "performance_environments", defaults.performance_environments),
            critical_journeys=(
                None if data.get("critical_journeys") is None else _strings(data, "critical_journeys", ())
            ),
            max_p95_ms=_optional_number(data, "max_p95_ms", defaults.max_p95_ms),
            max_error_rate=_optional_number(data, "max_error_rate", defaults.max_error_rate),
            max_security_findings=_severity_limits(data.get("max_security_findings", defaults.max_security_findings)),
            required_approvals=_approvals(data.get("required_approvals", defaults.required_approvals)),
            approval_validity_days=_whole(data, "approval_validity_days", defaults.approval_validity_days, minimum=1),
            hotfix_retrospective_hours=_whole(
                data, "hotfix_retrospective_hours", defaults.hotfix_retrospective_hours, minimum=1
            ),
            hotfix_retrospective_deadline=_deadline_rule(data, defaults.hotfix_retrospective_deadline),
            require_verified_commit_authors=_tiers(data, "require_verified_commit_authors"),
            planned_window_grace_minutes=_whole(
                data, "planned_window_grace_minutes", defaults.planned_window_grace_minutes, minimum=0
            ),
            signed_approvals=_tiers(data, "signed_approvals", defaults.signed_approvals),
            require_evidence_digest=_flag(data, "require_evidence_digest", defaults.require_evidence_digest),
        )


def _strings(data: Mapping[str, Any], key: str, default: tuple[str, ...]) -> tuple[str, ...]:
    value = data.get(key, list(default))
    if not isinstance(value, list) or not all(isinstance(item, str) and item for item in value):
        raise PolicyError(f"{key} must be a list of non-empty strings")
    return tuple(value)


def _optional_number(data: Mapping[str, Any], key: str, default: float | None) -> float | None:
    value = data.get(key, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise PolicyError(f"{key} must be a number >= 0 or null")
    return float(value)


def _whole(data: Mapping[str, Any], key: str, default: int, *, minimum: int) -> int:
    value = data.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise PolicyError(f"{key} must be a whole number >= {minimum}")
    return int(value)


def _flag(data: Mapping[str, Any], key: str, default: bool) -> bool:
    value = data.get(key, default)
    if not isinstance(value, bool):
        raise PolicyError(f"{key} must be true or false")
    return value


DEADLINE_RULES = ("hours", "next_business_day")


def _deadline_rule(data: Mapping[str, Any], default: str) -> str:
    value = data.get("hotfix_retrospective_deadline", default)
    if value not in DEADLINE_RULES:
        raise PolicyError(f"hotfix_retrospective_deadline must be one of {', '.join(DEADLINE_RULES)}")
    return str(value)


def _tiers(data: Mapping[str, Any], key: str, default: tuple[str, ...] = ()) -> tuple[str, ...]:
    tiers = _strings(data, key, default)
    if not set(tiers) <= set(RISK_TIERS):
        raise PolicyError(f"{key} may only list risk tiers among {', '.join(RISK_TIERS)}")
    return tuple(tier for tier in RISK_TIERS if tier in tiers)


def _required_evidence(value: Any) -> dict[str, tuple[str, ...]]:
    if not isinstance(value, Mapping) or set(value) != {"train", "hotfix"}:
        raise PolicyError("required_evidence must name the evidence kinds for both 'train' and 'hotfix'")
    result = {}
    for kind, kinds in value.items():
        if not isinstance(kinds, list | tuple) or not set(kinds) <= set(EVIDENCE_KINDS):
            raise PolicyError(f"required_evidence.{kind} must list kinds among {', '.join(EVIDENCE_KINDS)}")
        result[kind] = tuple(kinds)
    return result


def _severity_limits(value: Any) -> dict[str, int | None]:
    """Severities not named keep their defaults: naming only 'medium' must not lift the
    limits on critical and high findings."""
    if not isinstance(value, Mapping) or not set(value) <= set(SEVERITIES):
        raise PolicyError(f"max_security_findings may only name {', '.join(SEVERITIES)}")
    limits: dict[str, int | None] = dict(DEFAULT_SECURITY_LIMITS)
    for severity, limit in value.items():
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 0):
            raise PolicyError(f"max_security_findings.{severity} must be a whole number >= 0 or null")
        limits[severity] = limit
    return limits


def _approvals(value: Any) -> dict[str, int]:
    if not isinstance(value, Mapping) or set(value) != set(RISK_TIERS):
        raise PolicyError(f"required_approvals must give a number for each of {', '.join(RISK_TIERS)}")
    for tier, count in value.items():
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise PolicyError(f"required_approvals.{tier} must be a whole number >= 1")
    return dict(value)


def environments_required(rules: PolicyRules, kind: str) -> tuple[str, ...]:
    """Where evidence of this kind must come from to count; empty when anywhere will do."""
    if kind == "sanity":
        return rules.sanity_environments
    if kind == "performance":
        return rules.performance_environments
    return ()


@dataclass(frozen=True)
class EvidenceFact:
    """What the policy needs to know of one evidence file."""

    id: str
    kind: str
    format: str
    file_name: str
    environment: str
    verdict: str
    summary: Mapping[str, Any]
    artifact_digest: str = ""  # the build it was produced against, when the upload named it
    sha256: str = ""


# Every key of an evidence summary that ``readiness_findings`` reads. The gate reads only these
# from the database (a test report's summary also lists every test case); a test checks this
# list against what readiness reads of every real sample.
READINESS_SUMMARY_KEYS = (
    "execution_successful",
    "journeys",
    "latency_ms",
    "error_rate",
    "findings_by_severity",
    "findings",
    "scan_incomplete",
)


@dataclass(frozen=True)
class ReadinessFacts:
    changelog_kind: str
    domain_critical_journeys: tuple[str, ...]
    evidence: Sequence[EvidenceFact]
    artifact_digest: str = ""  # the revision's
    data_changes: Sequence[Mapping[str, Any]] = ()  # the content's data-change steps
    bundles: Sequence[Mapping[str, Any]] = ()  # a train's changes: changelog id and approved content hash
    # Each listed changelog of the same service as it is now: id → (status, current content hash).
    bundled_now: Mapping[str, tuple[str, str]] = field(default_factory=dict)


# Evidence about the build itself: tests and measurements of another build prove nothing of
# this one (PR-02). A security scan of the source or a document is not tied to one build.
ARTIFACT_BOUND_KINDS = ("sanity", "performance")


def _of_other_artifact(item: EvidenceFact, digest: str) -> bool:
    return item.kind in ARTIFACT_BOUND_KINDS and bool(item.artifact_digest) and item.artifact_digest != digest


def _of_no_artifact(rules: PolicyRules, item: EvidenceFact) -> bool:
    return rules.require_evidence_digest and item.kind in ARTIFACT_BOUND_KINDS and not item.artifact_digest


def readiness_findings(rules: PolicyRules, facts: ReadinessFacts) -> list[Finding]:
    findings: list[Finding] = []
    counted: list[EvidenceFact] = []
    for item in facts.evidence:
        if _of_no_artifact(rules, item):
            findings.append(
                Finding(
                    FindingCode.EVIDENCE_DIGEST_MISSING,
                    f"{item.file_name} names no artifact digest: the policy counts {item.kind} evidence only "
                    f"when it names the digest it ran against ({facts.artifact_digest}).",
                    evidence=item.id,
                )
            )
        elif _of_other_artifact(item, facts.artifact_digest):
            findings.append(
                Finding(
                    FindingCode.EVIDENCE_OTHER_ARTIFACT,
                    f"{item.file_name} was produced against {item.artifact_digest}, not {facts.artifact_digest}: "
                    f"it does not count.",
                    evidence=item.id,
                )
            )
        else:
            counted.append(item)
    by_kind: dict[str, list[EvidenceFact]] = {}
    for item in counted:
        by_kind.setdefault(item.kind, []).append(item)
    for kind in rules.required_evidence.get(facts.changelog_kind, ()):
        if not by_kind.get(kind):
            findings.append(Finding(FindingCode.EVIDENCE_MISSING, f"No {kind} evidence is attached."))
    for item in counted:
        if _did_not_pass(item):
            findings.append(
                Finding(
                    FindingCode.EVIDENCE_FAILED, f"{item.file_name} ({item.format}) did not pass.", evidence=item.id
                )
            )
    findings += _sanity_findings(rules, facts, by_kind.get("sanity", []))
    findings += _performance_findings(rules, by_kind.get("performance", []))
    findings += _security_findings(rules, by_kind.get("security", []))
    findings += _data_change_findings(rules, facts)
    findings += _train_findings(facts)
    return findings


def _train_findings(facts: ReadinessFacts) -> list[Finding]:
    """A train carries changes each approved on its own (PR-20): each listed change must be
    approved now, on the very content the train lists (an edit since makes a new revision)."""
    findings = []
    for bundled in facts.bundles:
        changelog, listed_hash = str(bundled.get("changelog", "")), str(bundled.get("content_hash", ""))
        status, current_hash = facts.bundled_now.get(changelog, ("", ""))
        if not status:
            why = "is not a change of this service"
        elif status != "approved":
            why = f"is {status}, not approved"
        elif current_hash != listed_hash:
            why = f"was changed since: its content is now {current_hash or 'a draft'}, not {listed_hash}"
        else:
            continue
        findings.append(Finding(FindingCode.TRAIN_CHANGE_NOT_APPROVED, f"The train's change {changelog} {why}."))
    return findings


def _data_change_findings(rules: PolicyRules, facts: ReadinessFacts) -> list[Finding]:
    """Each data-change step names, by SHA-256, the file with its staging dry run's result and
    the file showing its backup (or tested rollback); both must be attached to the revision,
    and the dry run must have run where staging tests count (PR-23)."""
    attached = {item.sha256: item for item in facts.evidence}
    findings: list[Finding] = []
    for change in facts.data_changes:
        version = change.get("version", "a data change")
        dry_run = attached.get(str(change.get("dry_run_evidence", "")))
        if dry_run is None:
            message = f"{version}: the dry run's result ({change.get('dry_run_evidence')}) is not attached."
        elif dry_run.environment not in rules.sanity_environments:
            message = (
                f"{version}: the dry run {dry_run.file_name} ran in '{dry_run.environment or 'an unnamed environment'}'"
                f", not in {', '.join(rules.sanity_environments)}."
            )
        else:
            message = ""
        if message:
            findings.append(Finding(FindingCode.DATA_CHANGE_EVIDENCE_MISSING, message))
        if str(change.get("backup_evidence", "")) not in attached:
            findings.append(
                Finding(
                    FindingCode.DATA_CHANGE_EVIDENCE_MISSING,
                    f"{version}: the backup or rollback evidence ({change.get('backup_evidence')}) is not attached.",
                )
            )
    return findings


def _did_not_pass(item: EvidenceFact) -> bool:
    # A scanner's findings are judged against the policy's limits below, not by the parser's
    # hint; the scan itself failed only when the tool says it did not complete.
    if item.format == "sarif":
        return item.summary.get("execution_successful") is False
    return item.verdict == "fail"


def _environment_finding(item: EvidenceFact, allowed: tuple[str, ...]) -> list[Finding]:
    if item.environment in allowed:
        return []
    return [
        Finding(
            FindingCode.EVIDENCE_WRONG_ENVIRONMENT,
            f"{item.file_name} comes from '{item.environment or 'an unnamed environment'}'; "
            f"{item.kind} evidence must come from {', '.join(allowed)}.",
            evidence=item.id,
        )
    ]


def _sanity_findings(rules: PolicyRules, facts: ReadinessFacts, sanity: list[EvidenceFact]) -> list[Finding]:
    findings: list[Finding] = []
    outcomes: dict[str, set[str]] = {}
    for item in sanity:
        findings += _environment_finding(item, environments_required(rules, "sanity"))
        if item.environment not in environments_required(rules, "sanity"):
            continue  # tests from elsewhere prove nothing about staging
        for journey, outcome in item.summary.get("journeys", {}).items():
            outcomes.setdefault(journey, set()).add(outcome)
    required = facts.domain_critical_journeys if rules.critical_journeys is None else rules.critical_journeys
    for journey in required:
        seen = outcomes.get(journey, set())
        if "failed" in seen:
            findings.append(
                Finding(FindingCode.JOURNEY_FAILED, f"A staging test of {journey} failed.", journey=journey)
            )
        elif not seen & {"passed", "flaky"}:
            findings.append(
                Finding(FindingCode.JOURNEY_NOT_COVERED, f"No passing staging test carries {journey}.", journey=journey)
            )
    return findings


def _performance_findings(rules: PolicyRules, performance: list[EvidenceFact]) -> list[Finding]:
    findings: list[Finding] = []
    for item in performance:
        findings += _environment_finding(item, environments_required(rules, "performance"))
        p95 = (item.summary.get("latency_ms") or {}).get("p95")
        findings += _limit_findings(item, "p95 latency", p95, rules.max_p95_ms, spec="g", unit=" ms")
        error_rate = item.summary.get("error_rate")
        findings += _limit_findings(item, "error rate", error_rate, rules.max_error_rate, spec=".2%", unit="")
    return findings


def _limit_findings(
    item: EvidenceFact, measure: str, value: float | None, limit: float | None, *, spec: str, unit: str
) -> list[Finding]:
    """A limit the policy sets: the file must measure it (else not measured) and stay within it."""
    if limit is None:
        return []
    if value is None:
        return [Finding(FindingCode.THRESHOLD_NOT_MEASURED, f"{item.file_name} has no {measure}.", evidence=item.id)]
    if value > limit:
        message = f"{item.file_name}: {measure} {value:{spec}}{unit} is over the limit of {limit:{spec}}{unit}."
        return [Finding(FindingCode.THRESHOLD_EXCEEDED, message, evidence=item.id)]
    return []


def _security_findings(rules: PolicyRules, security: list[EvidenceFact]) -> list[Finding]:
    findings: list[Finding] = []
    for item in security:
        skipped = item.summary.get("scan_incomplete") or []
        if skipped:
            findings.append(
                Finding(
                    FindingCode.SCAN_INCOMPLETE,
                    f"{item.file_name}: the scanner reports that it did not scan everything "
                    f"({len(skipped)} notification(s)); first: {skipped[0]}",
                    evidence=item.id,
                )
            )
        counts = item.summary.get("findings_by_severity") or item.summary.get("findings") or {}
        for severity in SEVERITIES:
            limit = rules.max_security_findings.get(severity)
            found = counts.get(severity, 0) or 0
            if limit is not None and found > limit:
                findings.append(
                    Finding(
                        FindingCode.SECURITY_FINDINGS_EXCEEDED,
                        f"{item.file_name}: {found} {severity} finding(s), at most {limit} allowed.",
                        evidence=item.id,
                    )
                )
    return findings


def evidence_brief(rules: PolicyRules, item: EvidenceFact) -> tuple[str, ...]:
    """What an approver reads of one evidence file before signing: the tests and the journeys
    they cover, latency and error rate against the policy's limits, findings by severity
    against the limits. Sentences, from the parsed summary."""
    summary = item.summary
    if item.kind == "sanity":
        outcomes = ", ".join(
            f"{summary.get(key, 0)} {key}" for key in ("passed", "failed", "errors", "skipped", "flaky")
        )
        journeys = summary.get("journeys") or {}
        covered = ", ".join(f"{journey} {outcome}" for journey, outcome in sorted(journeys.items()))
        return (
            f"{summary.get('tests', 0)} tests: {outcomes}.",
            f"Journeys: {covered}." if covered else "Journeys: none tagged.",
        )
    if item.kind == "performance":
        latency = summary.get("latency_ms") or {}
        p95, p99, error_rate = latency.get("p95"), latency.get("p99"), summary.get("error_rate")
        limit_p95 = f" (limit {rules.max_p95_ms:g} ms)" if rules.max_p95_ms is not None else ""
        limit_errors = f" (limit {rules.max_error_rate:.2%})" if rules.max_error_rate is not None else ""
        return (
            f"p95 {_ms(p95)}{limit_p95}, p99 {_ms(p99)}.",
            f"Error rate {'not measured' if error_rate is None else f'{error_rate:.2%}'}{limit_errors} "
            f"over {summary.get('requests', 'an unknown number of')} requests.",
        )
    if item.kind == "security":
        counts = summary.get("findings_by_severity") or summary.get("findings") or {}
        parts = []
        for severity in SEVERITIES:
            limit = rules.max_security_findings.get(severity)
            parts.append(f"{counts.get(severity, 0) or 0} {severity}" + ("" if limit is None else f" (limit {limit})"))
        lines = [f"Findings: {', '.join(parts)}."]
        if summary.get("execution_successful") is False:
            lines.append("The scanner reports that it did not complete.")
        return tuple(lines)
    notes = summary.get("notes") or []
    return tuple(str(note) for note in notes[:5]) or ("A document: read it before signing.",)


def _ms(value: Any) -> str:
    return "not measured" if value is None else f"{value:g} ms"
