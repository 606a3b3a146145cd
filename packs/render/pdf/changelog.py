"""The changelog pack's PDF: one change, its evidence, approvals, gate decisions, deployments and
audit events with their proofs (laid out by packs.render.pdf.layout)."""

import json
from collections.abc import Mapping, Sequence
from functools import partial
from io import BytesIO
from typing import Any
from xml.sax.saxutils import escape

from reportlab.lib.pagesizes import A4
from reportlab.platypus import (
    Flowable,
    PageBreak,
    Paragraph,
    Spacer,
)

from packs.render.data import (
    ApprovalItem,
    ChangelogPack,
    DecisionItem,
    DeploymentItem,
    EvidenceItem,
)
from packs.render.howto import (
    EVENTS_NAME,
    EVIDENCE_DIR,
    PROOFS_DIR,
    changelog_steps,
)
from packs.render.pdf.layout import (
    SANS_BOLD,
    Styles,
    build_document,
    fields_table,
    fit,
    hash_lines,
    how_to_steps,
    labelled,
    para,
    records_table,
    yes_no,
)
from tlog.canonical import canonical_json

_KNOWN_CONTENT = {
    "artifact",
    "deploy_steps",
    "data_changes",
    "no_data_changes",
    "rollback_plan",
    "reason",
    "scope",
    "expected_outcome",
    "planned_window",
    "risk_tier",
    "security_impact",
    "hotfix",
    "commit_authors",
    "bundles",
}


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _cover(pack: ChangelogPack, width: float, st: Styles) -> list[Flowable]:
    content = pack.content
    artifact = _dict(content.get("artifact"))
    window = _dict(content.get("planned_window"))
    rows: list[tuple[str, Any]] = [
        ("Organisation", pack.organisation),
        ("Service", pack.service),
        ("Domain", pack.domain),
        ("Kind", pack.kind),
        ("Status", pack.status),
        ("Changelog", para(pack.changelog_id, st.hash)),
        ("Revision", f"{pack.revision} ({pack.revision_status})" if pack.revision_status else str(pack.revision)),
        ("Content hash (SHA-256)", para(pack.content_hash, st.hash)),
        ("Artifact", f"{artifact.get('name', '')} {artifact.get('version', '')}".strip()),
        ("Artifact digest", para(artifact.get("digest", ""), st.hash)),
        ("Source revision", para(artifact.get("source_revision", ""), st.hash)),
        ("Risk tier", content.get("risk_tier", "")),
        ("Planned window", f"{window.get('start', '')} to {window.get('end', '')}" if window else ""),
        ("Created", f"{pack.created_at} by {pack.created_by}"),
        ("Submitted", f"{pack.submitted_at} by {pack.submitted_by}" if pack.submitted_at else "not submitted"),
        ("Pack generated", pack.generated_at),
        ("Audit checkpoint", f"tree size {pack.checkpoint_size}"),
    ]
    if pack.manifest_sha256:
        rows.append(("ZIP manifest (SHA-256)", para(pack.manifest_sha256, st.hash)))
    counts = (
        f"{len(pack.evidence)} evidence files, {len(pack.approvals)} approvals, {len(pack.decisions)} gate decisions, "
        f"{len(pack.deployments)} deployments, {len(pack.audit_events)} audit events with inclusion proofs."
    )
    return [
        para("Change evidence pack", st.title),
        para(f"{pack.service} · {pack.kind} · {pack.status}", st.subtitle),
        fields_table(rows, width, st, label_width=130),
        Spacer(1, 8),
        para(counts, st.body),
        Spacer(1, 4),
        para(
            "This PDF is signed by the organisation. It comes with a ZIP holding the raw evidence files, the "
            "canonical audit events, their inclusion proofs, the signed checkpoint they are proved against, the "
            "log's public key, a standalone verifier and a manifest of hashes. The last section says how to check "
            "all of it.",
            st.note,
        ),
        PageBreak(),
    ]


def _change_section(pack: ChangelogPack, width: float, st: Styles) -> list[Flowable]:
    content = pack.content
    security = _dict(content.get("security_impact"))
    hotfix = _dict(content.get("hotfix"))
    artifact = _dict(content.get("artifact"))
    rows: list[tuple[str, Any]] = [
        ("Reason", content.get("reason", "")),
        ("Scope", content.get("scope", "")),
        *(
            ("Train carries", f"{item.get('changelog', '')} at {item.get('content_hash', '')}")
            for item in content.get("bundles") or []
            if isinstance(item, dict)
        ),
        ("Expected outcome", content.get("expected_outcome", "")),
        ("Rollback plan", content.get("rollback_plan", "")),
        (
            "Security impact",
            ("declared: " + str(security.get("description", ""))) if security.get("declared") else "none declared",
        ),
    ]
    if hotfix:
        rows += [
            ("Incident", hotfix.get("incident_reference", "")),
            ("Emergency category", hotfix.get("emergency_category", "")),
            ("Emergency reason", hotfix.get("emergency_reason", "")),
        ]
    authors = [str(a) for a in _list(content.get("commit_authors"))]
    rows.append(("Commit authors", ", ".join(authors) if authors else "none listed"))
    links = [_dict(link) for link in _list(artifact.get("links"))]
    rows.append(("Links", "\n".join(f"{link.get('title', '')}: {link.get('url', '')}" for link in links) or "none"))
    for key in sorted(set(content) - _KNOWN_CONTENT):
        rows.append((key, canonical_json(content[key]).decode("utf-8")))
    return [para("The change", st.h1), fields_table(rows, width, st)]


def _steps_section(pack: ChangelogPack, width: float, st: Styles) -> list[Flowable]:
    story: list[Flowable] = [para("Deploy steps", st.h1)]
    deploy = [_dict(s) for s in _list(pack.content.get("deploy_steps"))]
    if deploy:
        story.append(
            records_table(
                ["#", "Step", "Command"],
                [22, (width - 22) * 0.5, (width - 22) * 0.5],
                [
                    ([str(n), s.get("description", ""), s.get("command", "") or "—"], [])
                    for n, s in enumerate(deploy, 1)
                ],
                st,
            )
        )
    else:
        story.append(para("No deploy steps.", st.body))
    story.append(para("Data changes", st.h1))
    changes = [_dict(c) for c in _list(pack.content.get("data_changes"))]
    if changes:
        story.append(
            records_table(
                ["#", "Version", "Change", "Rollback"],
                [22, 150, (width - 172) / 2, (width - 172) / 2],
                [
                    (
                        [str(n), c.get("version", ""), c.get("description", ""), c.get("rollback", "")],
                        [labelled("Digest", str(c.get("digest", "")), st)],
                    )
                    for n, c in enumerate(changes, 1)
                ],
                st,
            )
        )
    elif pack.content.get("no_data_changes"):
        story.append(para("None: the changelog declares that the change touches no data.", st.body))
    else:
        story.append(para("None listed.", st.body))
    return story


def _evidence_item(n: int, total: int, item: EvidenceItem, width: float, st: Styles) -> list[Flowable]:
    summary = hash_lines(item.summary_lines, st.body) if item.summary_lines else para("(no summary)", st.body)
    rows: list[tuple[str, Any]] = [
        ("SHA-256", para(item.sha256, st.hash)),
        ("Kind, format", f"{item.kind}, {item.format}"),
        ("Size", f"{item.size:,} bytes"),
        ("Verdict", item.verdict),
        ("Parsed summary", summary),
        ("Parser", item.parser_version),
        ("Uploaded", f"{item.uploaded_at} by {item.uploaded_by}"),
        ("Evidence id", para(item.id, st.hash)),
        ("In the ZIP", para(item.archive_name, st.small)),
    ]
    return [para(f"{n} of {total}. {item.file_name}", st.h2), fields_table(rows, width, st)]


def _evidence_section(pack: ChangelogPack, width: float, st: Styles) -> list[Flowable]:
    story: list[Flowable] = [
        para("Evidence", st.h1),
        para(
            f"Every file is kept byte for byte and is in the ZIP under {EVIDENCE_DIR}/. The verdict is the "
            "parser's reading of the file; the gate applies its policy on top.",
            st.note,
        ),
    ]
    if not pack.evidence:
        story.append(para("No evidence files.", st.body))
    for n, item in enumerate(pack.evidence, 1):
        story += _evidence_item(n, len(pack.evidence), item, width, st)
    story.append(para("Readiness at submission", st.h1))
    story.append(para(f"Policy: {pack.readiness_policy or '—'}", st.body))
    if pack.readiness_findings:
        story.append(
            records_table(
                ["Finding", "What was missing or wrong"],
                [150, width - 150],
                [([code, message], []) for code, message in pack.readiness_findings],
                st,
            )
        )
    else:
        story.append(para("No findings: the evidence was complete when the changelog was submitted.", st.body))
    return story


def _approval(n: int, item: ApprovalItem, pack: ChangelogPack, width: float, st: Styles) -> list[Flowable]:
    same = item.content_hash == pack.content_hash
    counts = "yes" if item.counts else f"no: {item.not_counted_because or 'not counted'}"
    rows: list[tuple[str, Any]] = [
        ("Decision", item.decision),
        ("Approver", item.approver),
        ("Authority", ", ".join(item.authorities) or "none"),
        ("Decided at", item.decided_at),
        ("Expires at", item.expires_at or "—"),
        ("Content hash signed", para(item.content_hash, st.hash)),
        ("Revision", f"{item.revision} ({'' if same else 'NOT '}the content hash of this revision)"),
        ("Retrospective", yes_no(item.retrospective)),
        ("Counts", counts),
        ("Reason", item.reason or "—"),
        (
            "Signed",
            para(
                f"with passkey {item.signature['credential_id']} (assertion and public key in "
                "approval-signatures.json; verify with python3 -m tlog.verifier approvals)",
                st.hash,
            )
            if item.signature
            else "no passkey signature",
        ),
    ]
    return [para(f"Approval {n}: {item.decision} by {item.approver}", st.h2), fields_table(rows, width, st)]


def _decision_record(d: DecisionItem, st: Styles) -> tuple[list[str], list[Flowable]]:
    details = [
        labelled("Artifact digest", d.artifact_digest, st),
        labelled("Decision id", d.id, st),
        para(f"Reasons: {', '.join(d.reasons) if d.reasons else 'none'}", st.cell),
    ]
    return [d.evaluated_at, d.environment, d.outcome, d.requested_by, d.policy], details


def _deployment_record(d: DeploymentItem, st: Styles) -> tuple[list[str], list[Flowable]]:
    details = [
        labelled("Artifact digest", d.artifact_digest, st),
        labelled("Deployment id", d.id, st),
        para(f"Pipeline run: {d.pipeline_run_url or '—'}", st.cell),
    ]
    unauthorised = "UNAUTHORISED" if d.unauthorised else "authorised"
    return [d.reported_at, d.environment, d.status, unauthorised, d.reported_by], details


_DECISION_COLUMNS = {"Evaluated at": 125, "Environment": 65, "Outcome": 50, "Requested by": 135, "Policy": 0}
_DEPLOYMENT_COLUMNS = {"Reported at": 125, "Environment": 65, "Status": 65, "Authorisation": 75, "Reported by": 0}


def _records_section(
    title: str,
    columns: Mapping[str, float],
    records: Sequence[tuple[Sequence[Any], Sequence[Flowable]]],
    width: float,
    st: Styles,
) -> list[Flowable]:
    """A heading and its records' table (the last column takes the rest of the width), or a
    line saying there are none."""
    if not records:
        return [para(title, st.h1), para(f"No {title[0].lower()}{title[1:]}.", st.body)]
    widths = fit(list(columns.values()), width, len(columns) - 1)
    return [para(title, st.h1), records_table(list(columns), widths, records, st)]


def _gate_section(pack: ChangelogPack, width: float, st: Styles) -> list[Flowable]:
    story: list[Flowable] = [para("Approvals", st.h1)]
    if not pack.approvals:
        story.append(para("No approvals.", st.body))
    for n, approval in enumerate(pack.approvals, 1):
        story += _approval(n, approval, pack, width, st)
    decisions = [_decision_record(d, st) for d in pack.decisions]
    story += _records_section("Gate decisions", _DECISION_COLUMNS, decisions, width, st)
    deployments = [_deployment_record(d, st) for d in pack.deployments]
    story += _records_section("Deployments", _DEPLOYMENT_COLUMNS, deployments, width, st)
    story.append(para("Incidents", st.h1))
    if pack.incidents:
        linked = {"caused": "caused by this change (confirmed)", "answered": "answered by this hotfix"}
        for reference, relation, severity, title in pack.incidents:
            story.append(para(f"{reference} ({severity}): {title}: {linked.get(relation, relation)}", st.body))
    else:
        story.append(para("No incident is linked to this change.", st.body))
    return story


def _event_for_reading(event: str) -> str:
    """The canonical event with a space after each comma, so that lines break between fields and
    never inside a hash (the exact bytes are in the ZIP's events.jsonl and proofs)."""
    try:
        return json.dumps(json.loads(event), sort_keys=True, separators=(", ", ":"), ensure_ascii=False)
    except ValueError:
        return event


def _audit_section(pack: ChangelogPack, width: float, st: Styles) -> list[Flowable]:
    story: list[Flowable] = [
        para("Audit trail", st.h1),
        para(
            "Every audit event of this change, with its leaf index in the tamper-evident log and its inclusion "
            f"proof (RFC 9162) against the signed checkpoint below, of tree size {pack.checkpoint_size}. A leaf hash "
            "is SHA-256(0x00 || the canonical event bytes); proof hashes go from the leaf upwards. Each event is "
            "shown as its canonical JSON with a space after each comma for reading; the ZIP holds the exact bytes "
            f"(one per line in {EVENTS_NAME}) and each proof as {PROOFS_DIR}/<leaf index>.json.",
            st.note,
        ),
        para("Signed checkpoint", st.h2),
        hash_lines(pack.checkpoint.rstrip("\n").split("\n"), st.preformatted),
        para("Public key of the log", st.h2),
        para(pack.public_key, st.hash),
        para("Events", st.h2),
    ]
    records = []
    for item in sorted(pack.audit_events, key=lambda e: e.leaf_index):
        details = [
            labelled("Leaf hash", item.leaf_hash, st),
            Paragraph(
                f'<font name="{SANS_BOLD}" color="#5a5a5a">Inclusion proof</font> '
                f"({len(item.proof)} hashes)<br/>" + "<br/>".join(escape(h) for h in item.proof),
                st.hash,
            ),
            para(_event_for_reading(item.event), st.small),
        ]
        records.append(([str(item.leaf_index), str(item.event_id), item.time, item.actor, item.action], details))
    if records:
        widths = fit([42, 42, 125, 135, 0], width, 4)
        story.append(records_table(["Leaf index", "Event id", "Time", "Actor", "Action"], widths, records, st))
    else:
        story.append(para("No audit events.", st.body))
    return story


def _changelog_story(pack: ChangelogPack, width: float) -> list[Flowable]:
    st = Styles()
    steps = changelog_steps(
        leaf_indexes=[e.leaf_index for e in pack.audit_events],
        certificate_sha256=pack.signing_certificate_sha256,
        organisation=pack.organisation,
    )
    return [
        *_cover(pack, width, st),
        *_change_section(pack, width, st),
        *_steps_section(pack, width, st),
        *_evidence_section(pack, width, st),
        *_gate_section(pack, width, st),
        *_audit_section(pack, width, st),
        para("How to verify", st.h1),
        para("Everything below runs offline on the unpacked ZIP; nothing needs access to the service.", st.note),
        *how_to_steps(steps, st),
    ]


MANIFEST_KEYWORD = "manifest-sha256:"
"""In the PDF's keywords (its document information, plain text in the signed bytes) before the
ZIP manifest's SHA-256, for the verifier to find without rendering the page."""


def render_changelog_pdf(pack: ChangelogPack) -> bytes:
    """The changelog pack's PDF (unsigned): the same pack always gives the same bytes."""
    out = BytesIO()
    build_document(
        out,
        partial(_changelog_story, pack),
        pagesize=A4,
        generated_at=pack.generated_at,
        footer=f"{pack.organisation} · evidence pack · {pack.service} · changelog {pack.changelog_id}",
        meta={
            "title": f"Change evidence pack: {pack.service}, changelog {pack.changelog_id}",
            "author": pack.organisation,
            "subject": f"{pack.kind} of {pack.service} ({pack.domain}), revision {pack.revision}, {pack.status}",
            "keywords": [
                "evidence pack",
                "changelog",
                pack.changelog_id,
                pack.service,
                pack.domain,
                *([f"{MANIFEST_KEYWORD}{pack.manifest_sha256}"] if pack.manifest_sha256 else []),
            ],
        },
    )
    return out.getvalue()
