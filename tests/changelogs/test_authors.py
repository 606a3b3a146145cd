"""Who wrote a change (changelogs/authors.py, pure): co-author trailers, the names a person is
matched by, and which of a revision's authors count."""

import pytest

from changelogs.authors import author_identities, co_authors, identities, revision_authors
from changelogs.policy import PolicyError, PolicyRules


def test_co_author_trailers_are_read_in_any_case_one_per_line() -> None:
    message = (
        "Round fees half-even\n\nThe fee table was wrong.\n\n"
        "Co-authored-by: Ada Lovelace <ada@bank.example>\n"
        "co-authored-by:Grace <12345+grace@users.noreply.github.com>\n"
        "Signed-off-by: Someone <someone@bank.example>\n"
        "Co-authored-by: no address here\n"
    )

    assert co_authors(message) == [
        ("Ada Lovelace", "ada@bank.example"),
        ("Grace", "12345+grace@users.noreply.github.com"),
    ]


@pytest.mark.parametrize(
    ("login", "email", "expected"),
    [
        ("Alice", "Alice@Bank.example", {"alice", "alice@bank.example"}),
        ("", "12345+Grace-H@users.noreply.github.com", {"12345+grace-h@users.noreply.github.com", "grace-h"}),
        ("", "grace@users.noreply.github.com", {"grace@users.noreply.github.com", "grace"}),
        ("", "grace@noreply.github.com.evil.example", {"grace@noreply.github.com.evil.example"}),
        ("  ", "", set()),
    ],
)
@pytest.mark.requirement("PR-04")
def test_a_person_is_matched_by_login_email_and_the_login_of_a_github_no_reply_address(
    login: str, email: str, expected: set[str]
) -> None:
    assert identities(name_or_login=login, email=email) == expected


def test_authors_read_in_part_count_but_only_a_complete_read_verifies() -> None:
    read = [{"name": "W", "email": "writer@bank.example", "login": "writer-gh", "role": "author"}]
    content = {"commit_authors": ["Dev@Bank.example", "someone"]}

    unread = revision_authors(content=content)
    partial = revision_authors(content=content, status="incomplete", source="compare", read=read)
    complete = revision_authors(content=content, status="read", source="compare", read=read)
    failed = revision_authors(content=content, status="failed", read=read)

    assert unread.identities == failed.identities == {"dev@bank.example", "someone"}
    assert (
        partial.identities == complete.identities == {"dev@bank.example", "someone", "writer@bank.example", "writer-gh"}
    )
    assert (unread.verified, partial.verified, complete.verified, failed.verified) == (False, False, True, False)
    assert complete.excludes(username="Writer-GH", email="")
    assert not complete.excludes(username="approver", email="approver@bank.example")
    assert author_identities(read) == {"writer@bank.example", "writer-gh"}


def test_the_policy_names_risk_tiers_that_need_authors_read_from_github() -> None:
    rules = PolicyRules.from_json({"require_verified_commit_authors": ["critical", "high"]})

    assert rules.require_verified_commit_authors == ("high", "critical")
    assert rules.requires_verified_authors("high")
    assert not rules.requires_verified_authors("medium")
    assert not PolicyRules().requires_verified_authors("critical")  # off unless the policy says so
    with pytest.raises(PolicyError):
        PolicyRules.from_json({"require_verified_commit_authors": ["urgent"]})
