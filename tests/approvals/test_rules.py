"""The counting rules as table tests: which approvals count, and when they are enough."""

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from approvals.rules import ApprovalContext, ApprovalFact, ApprovalStatus, approval_state

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
HASH = "a" * 64
SIGN = frozenset({"sign_off"})
REQUESTER, UPLOADER = 1, 2


def context(**changes: object) -> ApprovalContext:
    base = ApprovalContext(
        revision_number=2,
        content_hash=HASH,
        risk_tier="medium",
        security_impact=False,
        has_data_changes=False,
        requester_ids=frozenset({REQUESTER}),
        evidence_uploader_ids=frozenset({UPLOADER}),
        commit_authors=frozenset({"dev@bank.example", "carol"}),
        required_by_tier={"low": 1, "medium": 1, "high": 2, "critical": 2},
        now=NOW,
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def approval(person: int, *, id: str | None = None, **changes: object) -> ApprovalFact:
    base = ApprovalFact(
        id=id or f"a{person}",
        approver_id=person,
        approver_username=f"user{person}",
        approver_email=f"user{person}@bank.example",
        decision="approved",
        revision_number=2,
        content_hash=HASH,
        decided_at=NOW - timedelta(hours=1),
        expires_at=NOW + timedelta(days=6),
        authorities_now=SIGN,
    )
    return replace(base, **changes)  # type: ignore[arg-type]


NOT_COUNTED = [
    ("self-approval", approval(REQUESTER), "self_approval"),
    ("evidence uploader", approval(UPLOADER), "evidence_uploader"),
    ("commit author by e-mail", approval(7, approver_email="DEV@bank.example"), "commit_author"),
    ("commit author by username", approval(8, approver_username="carol"), "commit_author"),
    ("approver of another domain (no authority here)", approval(9, authorities_now=frozenset()), "no_authority"),
    ("expired", approval(10, expires_at=NOW), "expired"),
    ("stale revision", approval(11, revision_number=1), "stale_revision"),
    ("same number, other content", approval(12, content_hash="b" * 64), "stale_revision"),
]


@pytest.mark.parametrize(("case", "fact", "reason"), NOT_COUNTED, ids=[c[0] for c in NOT_COUNTED])
@pytest.mark.requirement("PR-04")
def test_an_approval_that_must_not_count_does_not(case: str, fact: ApprovalFact, reason: str) -> None:
    state = approval_state(context(), [fact])

    assert state.status == ApprovalStatus.PENDING
    assert state.counted == ()
    assert state.not_counted == {fact.id: reason}
    assert state.missing == ("sign_off",)
    assert not state.one_independent_approval


@pytest.mark.requirement("PR-05")
def test_the_same_person_twice_counts_once() -> None:
    state = approval_state(context(risk_tier="high"), [approval(5, id="first"), approval(5, id="second")])

    assert state.counted == ("first",)
    assert state.not_counted == {"second": "duplicate_approver"}
    assert state.status == ApprovalStatus.PENDING


def test_a_rejection_of_the_current_revision_blocks_it() -> None:
    state = approval_state(context(), [approval(5), approval(6, decision="rejected")])

    assert state.status == ApprovalStatus.REJECTED
    assert state.rejected_by == ("a6",)
    assert not state.one_independent_approval


def test_a_rejection_of_an_earlier_revision_does_not_block() -> None:
    state = approval_state(context(), [approval(5), approval(6, decision="rejected", revision_number=1)])

    assert state.status == ApprovalStatus.APPROVED


@pytest.mark.parametrize(
    ("tier", "people", "status"),
    [
        ("low", 1, "approved"),
        ("medium", 1, "approved"),
        ("high", 1, "pending"),
        ("high", 2, "approved"),
        ("critical", 2, "approved"),
    ],
)
@pytest.mark.requirement("PR-05")
def test_distinct_authorised_people_reach_the_tiers_number(tier: str, people: int, status: str) -> None:
    state = approval_state(context(risk_tier=tier), [approval(10 + n) for n in range(people)])

    assert state.status == status


def test_security_impact_needs_a_security_sign_off_by_another_person() -> None:
    ctx = context(security_impact=True)
    both = frozenset({"sign_off", "security_sign_off"})

    one_person_with_both = approval_state(ctx, [approval(5, authorities_now=both)])
    two_people = approval_state(ctx, [approval(5), approval(6, authorities_now=frozenset({"security_sign_off"}))])

    assert one_person_with_both.status == ApprovalStatus.PENDING
    assert one_person_with_both.missing == ("security_sign_off",)
    assert two_people.status == ApprovalStatus.APPROVED


@pytest.mark.requirement("PR-23")
def test_data_changes_need_a_data_sign_off_and_roles_are_matched_to_people() -> None:
    ctx = context(has_data_changes=True, security_impact=True)
    # The only security authority also has sign_off: the matching must give them security.
    facts = [
        approval(5, authorities_now=frozenset({"sign_off", "security_sign_off"})),
        approval(6, authorities_now=frozenset({"sign_off", "data_sign_off"})),
        approval(7, authorities_now=SIGN),
    ]

    state = approval_state(ctx, facts)

    assert state.status == ApprovalStatus.APPROVED
    assert state.missing == ()


@pytest.mark.requirement("PR-08")
def test_one_independent_sign_off_is_what_a_hotfix_needs_first() -> None:
    state = approval_state(context(risk_tier="high"), [approval(5)])

    assert state.status == ApprovalStatus.PENDING
    assert state.one_independent_approval
    assert state.missing == ("sign_off",)


@pytest.mark.requirement("PR-08")
def test_a_security_authority_alone_is_not_an_independent_sign_off() -> None:
    state = approval_state(context(), [approval(5, authorities_now=frozenset({"security_sign_off"}))])

    assert not state.one_independent_approval
