"""The gate's pure decision as a table."""

from dataclasses import replace

import pytest

from releasegate.policy import FreezeFact, GateFacts, evaluate

READY = GateFacts(
    changelog_found=True,
    changelog_status="approved",
    changelog_kind="train",
    revision_status="submitted",
    approval_status="approved",
    one_independent_approval=True,
)

CASES = [
    ("ready", READY, ["allowed"]),
    ("no changelog", GateFacts(changelog_found=False), ["no_changelog"]),
    ("draft revision", replace(READY, revision_status="draft"), ["changelog_not_submitted"]),
    ("superseded revision", replace(READY, revision_status="superseded"), ["changelog_not_submitted"]),
    ("already deployed", replace(READY, changelog_status="deployed"), ["changelog_closed"]),
    (
        "readiness findings",
        replace(READY, findings=(("evidence_missing", "No security evidence is attached."),)),
        ["evidence_missing"],
    ),
    (
        "no approval",
        replace(READY, approval_status="pending", one_independent_approval=False, approvals_missing=("sign_off",)),
        ["approvals_missing"],
    ),
    ("rejected", replace(READY, approval_status="rejected"), ["changelog_rejected"]),
    (
        "stale and expired",
        replace(READY, approval_status="pending", not_counted=("stale_revision", "expired", "expired")),
        ["approvals_missing", "approval_stale", "approval_expired"],
    ),
    (
        "self-given",
        replace(READY, approval_status="pending", not_counted=("self_approval", "commit_author")),
        ["approvals_missing", "approval_self_given"],
    ),
    (
        "authority lost",
        replace(READY, approval_status="pending", not_counted=("no_authority",)),
        ["approvals_missing", "approval_without_authority"],
    ),
    (
        "hotfix on one approval",
        replace(READY, changelog_kind="hotfix", approval_status="pending", one_independent_approval=True),
        ["allowed"],
    ),
    (
        "hotfix without approval",
        replace(READY, changelog_kind="hotfix", approval_status="pending", one_independent_approval=False),
        ["approvals_missing"],
    ),
    ("overdue retrospective", replace(READY, overdue_retrospectives=1), ["retrospective_overdue"]),
    (
        "freeze",
        replace(READY, active_freezes=(FreezeFact(1, "global", "Year end", overridden=False),)),
        ["freeze_active"],
    ),
    (
        "freeze overridden",
        replace(READY, active_freezes=(FreezeFact(1, "payments", "Migration", overridden=True),)),
        ["allowed"],
    ),
    ("no changelog and overdue", GateFacts(changelog_found=False, overdue_retrospectives=2), ["no_changelog"]),
]


@pytest.mark.parametrize(("case", "facts", "expected"), CASES, ids=[c[0] for c in CASES])
def test_each_fact_decides_as_expected(case: str, facts: GateFacts, expected: list[str]) -> None:
    decision = evaluate(facts)

    assert [reason.code for reason in decision.reasons] == expected
    assert decision.allow == (expected == ["allowed"])
