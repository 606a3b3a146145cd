"""The plain data an evidence pack is rendered from. Every value is already a string or
number as it should appear: rendering never formats times or looks anything up, so the same
data always gives the same bytes."""

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class EvidenceItem:
    id: str
    kind: str
    format: str
    file_name: str
    size: int
    sha256: str
    verdict: str
    parser_version: str
    uploaded_by: str
    uploaded_at: str
    summary_lines: Sequence[str]  # what the parser found, for people ("7 tests: 3 passed, 1 failed…")
    archive_name: str  # its path inside the ZIP, e.g. "evidence/<sha256>-junit.xml"


@dataclass(frozen=True)
class ApprovalItem:
    decision: str
    approver: str
    authorities: Sequence[str]
    revision: int
    content_hash: str
    decided_at: str
    expires_at: str
    retrospective: bool
    reason: str
    counts: bool
    not_counted_because: str | None
    # The approver's passkey signature (tlog/verifier.py's approval signature fields), or None.
    signature: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class DecisionItem:
    id: str
    evaluated_at: str
    environment: str
    artifact_digest: str
    outcome: str
    reasons: Sequence[str]  # codes
    requested_by: str
    policy: str


@dataclass(frozen=True)
class DeploymentItem:
    id: str
    reported_at: str
    environment: str
    status: str
    artifact_digest: str
    unauthorised: bool
    pipeline_run_url: str
    reported_by: str


@dataclass(frozen=True)
class AuditItem:
    leaf_index: int
    event_id: int
    time: str
    actor: str
    action: str
    event: str  # the canonical event bytes (UTF-8 JSON) the leaf hash covers
    leaf_hash: str  # hex
    proof: Sequence[str]  # hex, RFC 9162 inclusion proof against the pack's checkpoint


@dataclass(frozen=True)
class ChangelogPack:
    organisation: str
    generated_at: str
    changelog_id: str
    service: str
    domain: str
    kind: str
    status: str
    revision: int
    revision_status: str
    content_hash: str
    content: dict[str, Any]  # the revision's validated content (artifact, steps, data changes…)
    created_by: str
    created_at: str
    submitted_by: str
    submitted_at: str
    readiness_policy: str
    readiness_findings: Sequence[tuple[str, str]]  # (code, message) at submission
    evidence: Sequence[EvidenceItem]
    approvals: Sequence[ApprovalItem]
    decisions: Sequence[DecisionItem]
    deployments: Sequence[DeploymentItem]
    audit_events: Sequence[AuditItem]
    checkpoint: str  # the signed note all proofs are against
    checkpoint_size: int
    public_key: str  # the verifier key for the checkpoint
    # SHA-256 (hex) of the DER of the certificate the PDF will be signed with, printed under
    # "How to verify" so an auditor can check the signer (releasegate.pdfsign.certificate_sha256).
    signing_certificate_sha256: str = ""
    # Incidents linked to the change (incidents.selectors.incidents_of_changelog):
    # (reference, "caused" or "answered", severity, title).
    incidents: Sequence[tuple[str, str, str, str]] = ()
    # SHA-256 of the ZIP's manifest.json, printed in the signed PDF: binds the ZIP to the PDF.
    manifest_sha256: str = ""


@dataclass(frozen=True)
class ChangeRow:
    """One production change of the period, with the auditor's tests answered."""

    changelog_id: str
    service: str
    domain: str
    kind: str
    status: str
    risk_tier: str
    artifact_digest: str
    submitted_at: str
    approved_at: str  # when the approvals that count were complete ("" if never)
    first_deployed_at: str  # "" if never deployed
    approval_before_deploy: bool | None  # None: not deployed
    separation_of_duties: bool  # no counted approval by requester, uploader or commit author
    evidence_complete: bool  # no readiness findings at submission
    rollback_plan: bool
    deployments: int


@dataclass(frozen=True)
class DeploymentRow:
    deployment_id: str
    reported_at: str
    service: str
    domain: str
    environment: str
    status: str
    artifact_digest: str
    changelog_id: str  # "" when no changelog of the service carries its digest
    unauthorised: bool


@dataclass(frozen=True)
class ExceptionRow:
    kind: str  # "unauthorised_deployment", "retrospective_overdue", "retrospective_missing", "retrospective_late",
    # "deployed_while_denied"
    reference: str  # the deployment or changelog id
    service: str
    at: str
    detail: str


@dataclass(frozen=True)
class PopulationPack:
    organisation: str
    generated_at: str
    period_start: str
    period_end: str
    domain: str  # "" for all domains
    # Each rendering (the PDF, the CSV) iterates these once and never holds them whole; to make
    # both from one pack, pass iterables that can be iterated again (a fresh query each time).
    changes: Iterable[ChangeRow]
    deployments: Iterable[DeploymentRow]
    exceptions: Sequence[ExceptionRow]
    totals: dict[str, int]
    audit_first_leaf: int
    audit_last_leaf: int
    checkpoint: str
    sample_seed: int
    sample_size: int
    sample: Sequence[str]  # packs.render.sample.sample_changelog_ids(ids, seed=, size=): the PDF explains that method
    extra: dict[str, str] = field(default_factory=dict)  # more labelled lines for the cover
    public_key: str = ""  # the verifier key for the checkpoint
    signing_certificate_sha256: str = ""  # as for ChangelogPack
    csv_sha256: str = ""  # SHA-256 of population.csv, printed in the signed PDF: binds the CSV to it
