"""The gate's pure decision as a table."""

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from releasegate.policy import FreezeFact, GateFacts, PlannedWindowFact, evaluate

START = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
END = START + timedelta(hours=1)


def window(checked_at: datetime, grace_minutes: int = 0) -> PlannedWindowFact:
    return PlannedWindowFact(start=START, end=END, grace_minutes=grace_minutes, checked_at=checked_at)


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
    ("in its planned window", replace(READY, planned_window=window(START + timedelta(minutes=30))), ["allowed"]),
    ("at its window's start", replace(READY, planned_window=window(START)), ["allowed"]),
    ("at its window's end", replace(READY, planned_window=window(END)), ["allowed"]),
    (
        "before its planned window",
        replace(READY, planned_window=window(START - timedelta(seconds=1))),
        ["outside_planned_window"],
    ),
    (
        "after its planned window",
        replace(READY, planned_window=window(END + timedelta(seconds=1))),
        ["outside_planned_window"],
    ),
    (
        "planned for last week",
        replace(READY, planned_window=window(END + timedelta(days=7), grace_minutes=60)),
        ["outside_planned_window"],
    ),
    (
        "late within the policy's grace",
        replace(READY, planned_window=window(END + timedelta(minutes=59), grace_minutes=60)),
        ["allowed"],
    ),
    (
        "later than the policy's grace",
        replace(READY, planned_window=window(END + timedelta(minutes=61), grace_minutes=60)),
        ["outside_planned_window"],
    ),
    (
        # Stored before the API refused times past 2999: the grace must not overflow the calendar.
        "a window to the end of the calendar, with grace",
        replace(
            READY,
            planned_window=PlannedWindowFact(
                start=START, end=datetime.max.replace(tzinfo=UTC), grace_minutes=60, checked_at=END
            ),
        ),
        ["allowed"],
    ),
]


@pytest.mark.parametrize(("case", "facts", "expected"), CASES, ids=[c[0] for c in CASES])
def test_each_fact_decides_as_expected(case: str, facts: GateFacts, expected: list[str]) -> None:
    decision = evaluate(facts)

    assert [reason.code for reason in decision.reasons] == expected
    assert decision.allow == (expected == ["allowed"])


def test_the_window_denial_says_when_the_change_was_planned_and_what_to_do() -> None:
    late = evaluate(replace(READY, planned_window=window(END + timedelta(days=2), grace_minutes=15)))
    early = evaluate(replace(READY, planned_window=window(START - timedelta(hours=3))))

    assert late.reasons[0].message == (
        "The change was planned for 2026-12-01 09:00 UTC to 2026-12-01 10:00 UTC (and 15 minutes late allowed); "
        "it is 2026-12-03 10:00 UTC, after its window: plan a new window (edit the changelog) and have it "
        "approved again."
    )
    assert early.reasons[0].message == (
        "The change is planned for 2026-12-01 09:00 UTC to 2026-12-01 10:00 UTC; it is 2026-12-01 06:00 UTC, "
        "before its window."
    )
