"""A realistic changelog pack and population, built by hand over a real Merkle log with a signed
checkpoint, and the poppler tools the pack tests check output with."""

import hashlib
import json
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from audit.events import canonical_event
from packs.render import data as pack_data
from tlog.canonical import canonical_json
from tlog.merkle import Coord, Frontier, inclusion_proof, leaf_hash
from tlog.note import Checkpoint, NoteSigner, generate_signer

ORIGIN = "gate.bank.example/audit-log"
CHANGELOG_ID = "0b1e6f3c-5d2a-4c7e-9a41-8f2d6c1b7e90"
CONTENT_HASH = "7d9c2f1e4b8a6d3c5e0f1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f"
DIGEST = "sha256:4a5b6c7d8e9f0a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293"
OTHER_DIGEST = "sha256:ffee0011223344556677889900aabbccddeeff00112233445566778899aabbcc"
GENERATED_AT = "2026-11-28T10:00:00.000000Z"

JUNIT = b"""<?xml version="1.0" encoding="UTF-8"?>
<testsuites name="staging sanity" tests="4" failures="0">
  <testsuite name="payments-staging" tests="4" failures="0" time="12.5">
    <testcase name="card payment end to end" classname="journeys.payments" time="4.1">
      <properties><property name="journey" value="PAY-001"/></properties>
    </testcase>
    <testcase name="refund" classname="journeys.payments" time="3.2">
      <properties><property name="journey" value="PAY-002"/></properties>
    </testcase>
    <testcase name="standing order" classname="journeys.payments" time="2.9">
      <properties><property name="journey" value="PAY-003"/></properties>
    </testcase>
    <testcase name="payment history" classname="journeys.payments" time="2.3">
      <properties><property name="journey" value="PAY-004"/></properties>
    </testcase>
  </testsuite>
</testsuites>
"""
K6 = json.dumps(
    {
        "metrics": {
            "http_req_duration": {"type": "trend", "values": {"p(95)": 182.4, "p(99)": 240.1, "avg": 95.2}},
            "http_req_failed": {"type": "rate", "values": {"rate": 0.0012}},
            "http_reqs": {"type": "counter", "values": {"count": 48210}},
        }
    },
    indent=2,
).encode()
SARIF = json.dumps(
    {
        "version": "2.1.0",
        "runs": [
            {
                "tool": {"driver": {"name": "semgrep", "version": "1.99.0"}},
                "results": [
                    {"ruleId": "python.lang.security.audit.md5", "level": "note", "message": {"text": "md5 used"}}
                ],
            }
        ],
    },
    indent=2,
).encode()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class Log:
    """A small Merkle log: every leaf's canonical event, the signed checkpoint and its key."""

    events: list[bytes]
    nodes: dict[Coord, bytes]
    signer: NoteSigner
    checkpoint: str

    @property
    def size(self) -> int:
        return len(self.events)

    def proof(self, index: int) -> list[str]:
        def fetch(coords: Any) -> dict[Coord, bytes]:
            return {c: self.nodes[c] for c in coords}

        return [h.hex() for h in inclusion_proof(index, self.size, fetch)]


def _event(n: int, action: str, actor: str, target_id: str, data: dict[str, Any], at: datetime) -> bytes:
    return canonical_event(
        event_id=100 + n,
        time=at,
        actor=actor,
        actor_id=7 if actor.startswith("service_account") else 3,
        action=action,
        target_type="changelogs.changelog",
        target_id=target_id,
        data=canonical_json(data).decode(),
        request_id=f"4f6c{n:04d}-req",
    )


OUR_EVENTS = [
    ("changelog:created", "service_account:svc-payments-ci", {"revision": 1}),
    ("evidence:attached", "service_account:svc-payments-ci", {"sha256": sha256(JUNIT), "kind": "sanity"}),
    ("evidence:attached", "service_account:svc-payments-ci", {"sha256": sha256(K6), "kind": "performance"}),
    ("evidence:attached", "service_account:svc-payments-ci", {"sha256": sha256(SARIF), "kind": "security"}),
    ("changelog:submitted", "service_account:svc-payments-ci", {"content_hash": CONTENT_HASH, "revision": 1}),
    ("gate:decided", "service_account:svc-payments-ci", {"outcome": "deny", "reasons": ["approval_missing"]}),
    ("approval:given", "user:bob", {"content_hash": CONTENT_HASH, "decision": "approve"}),
    ("approval:given", "user:carol", {"content_hash": CONTENT_HASH, "decision": "approve"}),
    ("gate:decided", "service_account:svc-payments-ci", {"outcome": "allow", "reasons": []}),
    ("deployment:reported", "service_account:svc-payments-ci", {"status": "succeeded"}),
]


def build_log() -> tuple[Log, list[int]]:
    """23 leaves: ours interleaved with other changes' events. Returns the log and our leaves."""
    start = datetime(2026, 11, 27, 9, 15, 2, 123456, tzinfo=UTC)
    events: list[bytes] = []
    ours: list[int] = []
    mine = iter(OUR_EVENTS)
    for n in range(23):
        at = start + timedelta(minutes=n)
        if n % 2 == 1 and len(ours) < len(OUR_EVENTS):
            action, actor, data = next(mine)
            ours.append(n)
            events.append(_event(n, action, actor, CHANGELOG_ID, data, at))
        else:
            events.append(_event(n, "changelog:created", "user:dave", f"other-{n}", {"revision": 1}, at))
    frontier = Frontier()
    nodes: dict[Coord, bytes] = {}
    for i, event in enumerate(events):
        lh = leaf_hash(event)
        nodes[(0, i)] = lh
        for level, index, h in frontier.append(lh):
            nodes[(level, index)] = h
    signer = generate_signer(ORIGIN)
    body = Checkpoint(ORIGIN, frontier.size, frontier.root(), ("time 2026-11-28T09:59:58.000211Z",)).body()
    return Log(events, nodes, signer, signer.sign(body)), ours


def _evidence() -> list[tuple[pack_data.EvidenceItem, bytes]]:
    def item(
        n: int, kind: str, fmt: str, name: str, data: bytes, verdict: str, lines: list[str]
    ) -> pack_data.EvidenceItem:
        digest = sha256(data)
        return pack_data.EvidenceItem(
            id=f"9e1c2d3b-0000-4000-8000-00000000000{n}",
            kind=kind,
            format=fmt,
            file_name=name,
            size=len(data),
            sha256=digest,
            verdict=verdict,
            parser_version=f"{fmt}/1",
            uploaded_by="service_account:svc-payments-ci",
            uploaded_at=f"2026-11-27T09:1{n}:00Z",
            summary_lines=lines,
            archive_name=f"evidence/{digest}-{name}",
        )

    return [
        (
            item(
                1,
                "sanity",
                "junit",
                "staging-sanity.xml",
                JUNIT,
                "pass",
                ["4 tests: 4 passed, 0 failed, 0 skipped", "Journeys covered: PAY-001, PAY-002, PAY-003, PAY-004"],
            ),
            JUNIT,
        ),
        (
            item(
                2,
                "performance",
                "k6",
                "k6-summary.json",
                K6,
                "pass",
                ["48,210 requests, error rate 0.12 %", "p95 latency 182.4 ms (limit 300 ms), p99 240.1 ms"],
            ),
            K6,
        ),
        (
            item(
                3,
                "security",
                "sarif",
                "semgrep.sarif",
                SARIF,
                "pass",
                ["semgrep 1.99.0: 1 result", "By severity: 0 critical, 0 high, 0 medium, 0 low, 1 note"],
            ),
            SARIF,
        ),
    ]


CONTENT: dict[str, Any] = {
    "artifact": {
        "name": "payments-api",
        "version": "2.14.0",
        "digest": DIGEST,
        "source_revision": "3f9a2c1d7e6b5a4f3e2d1c0b9a8f7e6d5c4b3a29",
        "links": [
            {"title": "ticket", "url": "https://jira.bank.example/browse/PAY-4711"},
            {"title": "pull request", "url": "https://git.bank.example/payments/api/pull/982"},
        ],
    },
    "deploy_steps": [
        {"description": "Drain the blue pool", "command": "kubectl -n payments scale deploy/api-blue --replicas=0"},
        {"description": "Roll out 2.14.0 to the green pool", "command": "helm upgrade api charts/api --set tag=2.14.0"},
        {"description": "Watch error rate for 15 minutes", "command": ""},
    ],
    "data_changes": [
        {
            "description": "Add index on payments(created_at)",
            "version": "V42__payments_created_at_index",
            "digest": "sha256:1111222233334444555566667777888899990000aaaabbbbccccddddeeeeffff",
            "rollback": "DROP INDEX CONCURRENTLY payments_created_at_idx",
            "dry_run_evidence": "2" * 64,
            "backup_evidence": "3" * 64,
        }
    ],
    "no_data_changes": False,
    "rollback_plan": "Helm rollback to 2.13.2; the index is additive and can stay.",
    "reason": "Faster payment history for customers with many payments (PAY-4711).",
    "scope": "GET /payments of payments-api and one new index on payments; no other endpoint.",
    "expected_outcome": "p95 of GET /payments below 150 ms; no change to error rate.",
    "planned_window": {"start": "2026-11-28T06:00:00Z", "end": "2026-11-28T07:00:00Z"},
    "risk_tier": "high",
    "security_impact": {"declared": False, "description": ""},
    "hotfix": None,
    "commit_authors": ["alice", "erin@bank.example"],
}


def make_changelog_pack() -> tuple[pack_data.ChangelogPack, dict[str, bytes], Log]:
    """The pack, its evidence files by archive name, and the log it is proved against."""
    log, ours = build_log()
    evidence = _evidence()
    audit = [
        pack_data.AuditItem(
            leaf_index=i,
            event_id=100 + i,
            time=json.loads(log.events[i])["time"],
            actor=json.loads(log.events[i])["actor"],
            action=json.loads(log.events[i])["action"],
            event=log.events[i].decode(),
            leaf_hash=log.nodes[(0, i)].hex(),
            proof=log.proof(i),
        )
        for i in ours
    ]
    approvals = [
        pack_data.ApprovalItem(
            decision="approve",
            approver=approver,
            authorities=authorities,
            revision=1,
            content_hash=CONTENT_HASH,
            decided_at=decided_at,
            expires_at=expires_at,
            retrospective=False,
            reason=reason,
            counts=True,
            not_counted_because=None,
        )
        for approver, authorities, decided_at, expires_at, reason in [
            (
                "user:bob",
                ["payments signing authority"],
                "2026-11-27T11:02:41Z",
                "2026-12-04T11:02:41Z",
                "Evidence complete; index reviewed with DBA.",
            ),
            (
                "user:carol",
                ["payments signing authority", "platform risk"],
                "2026-11-27T13:20:05Z",
                "2026-12-04T13:20:05Z",
                "Second approval for a high-risk change.",
            ),
        ]
    ]
    decisions = [
        pack_data.DecisionItem(
            id=f"d0000000-0000-4000-8000-00000000000{n}",
            evaluated_at=at,
            environment="production",
            artifact_digest=DIGEST,
            outcome=outcome,
            reasons=reasons,
            requested_by="service_account:svc-payments-ci",
            policy="production-default/3",
        )
        for n, (at, outcome, reasons) in enumerate(
            [
                ("2026-11-27T10:05:00Z", "deny", ["approval_missing"]),
                ("2026-11-27T12:00:00Z", "deny", ["approval_insufficient"]),
                ("2026-11-28T06:01:30Z", "allow", []),
            ],
            1,
        )
    ]
    deployments = [
        pack_data.DeploymentItem(
            id=f"e0000000-0000-4000-8000-00000000000{n}",
            reported_at=at,
            environment="production",
            status=status,
            artifact_digest=digest,
            unauthorised=digest != DIGEST,
            pipeline_run_url=f"https://ci.bank.example/payments/api/runs/{run}",
            reported_by="service_account:svc-payments-ci",
        )
        for n, (at, status, digest, run) in enumerate(
            [
                ("2026-11-28T06:09:12Z", "succeeded", DIGEST, 55102),
                ("2026-11-28T06:30:40Z", "rolled_back", OTHER_DIGEST, 55107),
            ],
            1,
        )
    ]
    pack = pack_data.ChangelogPack(
        organisation="Example Bank plc",
        generated_at=GENERATED_AT,
        changelog_id=CHANGELOG_ID,
        service="payments-api",
        domain="payments",
        kind="train",
        status="deployed",
        revision=1,
        revision_status="submitted",
        content_hash=CONTENT_HASH,
        content=CONTENT,
        created_by="service_account:svc-payments-ci",
        created_at="2026-11-27T09:15:02Z",
        submitted_by="service_account:svc-payments-ci",
        submitted_at="2026-11-27T09:40:00Z",
        readiness_policy="production-default/3",
        readiness_findings=[],
        evidence=[e for e, _ in evidence],
        approvals=approvals,
        decisions=decisions,
        deployments=deployments,
        audit_events=audit,
        checkpoint=log.checkpoint,
        checkpoint_size=log.size,
        public_key=log.signer.verifier_key(),
    )
    return pack, {e.archive_name: data for e, data in evidence}, log


def with_findings(pack: pack_data.ChangelogPack) -> pack_data.ChangelogPack:
    return replace(pack, readiness_findings=[("evidence_missing", "No security evidence was attached.")])


# --- Population ---------------------------------------------------------------------------------


def change_rows(n: int) -> Iterator[pack_data.ChangeRow]:
    for i in range(n):
        deployed = i % 10 != 9
        yield pack_data.ChangeRow(
            changelog_id=f"c{i:07d}-5d2a-4c7e-9a41-8f2d6c1b7e90",
            service=f"service-{i % 37:02d}",
            domain=("payments", "transfers", "registration", "accounts")[i % 4],
            kind="hotfix" if i % 25 == 0 else "train",
            status="deployed" if deployed else "approved",
            risk_tier=("low", "medium", "high")[i % 3],
            artifact_digest=f"sha256:{sha256(str(i).encode())}",
            submitted_at=f"2026-11-{1 + i % 28:02d}T09:{i % 60:02d}:00Z",
            approved_at=f"2026-11-{1 + i % 28:02d}T11:{i % 60:02d}:00Z",
            first_deployed_at=f"2026-11-{1 + i % 28:02d}T15:{i % 60:02d}:00Z" if deployed else "",
            approval_before_deploy=(i % 97 != 0) if deployed else None,
            separation_of_duties=i % 211 != 0,
            evidence_complete=i % 53 != 0,
            rollback_plan=True,
            deployments=1 + i % 2 if deployed else 0,
        )


def deployment_rows(n: int) -> Iterator[pack_data.DeploymentRow]:
    for i in range(n):
        unauthorised = i % 401 == 0
        yield pack_data.DeploymentRow(
            deployment_id=f"d{i:07d}-0000-4000-8000-000000000001",
            reported_at=f"2026-11-{1 + i % 28:02d}T15:{i % 60:02d}:00Z",
            service=f"service-{i % 37:02d}",
            domain=("payments", "transfers", "registration", "accounts")[i % 4],
            environment="production",
            status="succeeded" if i % 17 else "failed",
            artifact_digest=f"sha256:{sha256(str(i).encode())}",
            changelog_id="" if unauthorised else f"c{i:07d}-5d2a-4c7e-9a41-8f2d6c1b7e90",
            unauthorised=unauthorised,
        )


EXCEPTIONS = [
    pack_data.ExceptionRow(
        "unauthorised_deployment",
        "d0000000-0000-4000-8000-000000000001",
        "service-00",
        "2026-11-01T15:00:00Z",
        "No allow decision covers sha256:5feceb66ffc86f38d952786c6d696c79c2dbc239dd4e91b46729d73a27fb57e9",
    ),
    pack_data.ExceptionRow(
        "retrospective_overdue",
        "c0000025-5d2a-4c7e-9a41-8f2d6c1b7e90",
        "service-25",
        "2026-11-27T15:25:00Z",
        "due 26 h ago",
    ),
    pack_data.ExceptionRow(
        "deployed_while_denied",
        "c0000097-5d2a-4c7e-9a41-8f2d6c1b7e90",
        "service-23",
        "2026-11-14T15:37:00Z",
        "last decision: deny (approval_missing)",
    ),
]


def make_population_pack(
    changes: int = 40, deployments: int = 50, *, seed: int = 20261128, size: int = 5
) -> pack_data.PopulationPack:
    from packs.render.sample import sample_changelog_ids

    log, _ = build_log()
    sample = sample_changelog_ids((r.changelog_id for r in change_rows(changes)), seed=seed, size=size)
    return pack_data.PopulationPack(
        organisation="Example Bank plc",
        generated_at=GENERATED_AT,
        period_start="2026-11-01",
        period_end="2026-11-30",
        domain="",
        changes=change_rows(changes),
        deployments=deployment_rows(deployments),
        exceptions=EXCEPTIONS,
        totals={
            "changes": changes,
            "deployments": deployments,
            "unauthorised_deployments": sum(1 for row in deployment_rows(deployments) if row.unauthorised),
            "exceptions": len(EXCEPTIONS),
        },
        audit_first_leaf=0,
        audit_last_leaf=log.size - 1,
        checkpoint=log.checkpoint,
        sample_seed=seed,
        sample_size=size,
        sample=sample,
        public_key=log.signer.verifier_key(),
    )


# --- Poppler -----------------------------------------------------------------------------------


def poppler(tool: str) -> str:
    """The path of a poppler tool, or skip: CI installs poppler-utils (.ci/run)."""
    path = shutil.which(tool)
    if path is None:
        pytest.skip(f"{tool} is not installed (Debian package poppler-utils); CI installs it")
    return path


def pdftotext(pdf: bytes, tmp_path: Path, *, layout: bool = False) -> str:
    source = tmp_path / "text-input.pdf"
    source.write_bytes(pdf)
    args = [poppler("pdftotext"), "-enc", "UTF-8", *(["-layout"] if layout else []), str(source), "-"]
    return subprocess.run(args, capture_output=True, text=True, check=True).stdout


def pdfsig(pdf: bytes, tmp_path: Path, name: str = "signed.pdf") -> subprocess.CompletedProcess[str]:
    source = tmp_path / name
    source.write_bytes(pdf)
    return subprocess.run([poppler("pdfsig"), str(source)], capture_output=True, text=True, check=False)
