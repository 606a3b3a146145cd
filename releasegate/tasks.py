"""Answering GitHub's deployment protection rule (releasegate/github.py, docs/github.md), and reading
commit authors from GitHub (releasegate/github_commits.py)."""

from typing import Any

from celery import Task, shared_task

from outbox.attempts import attempt_with_retries
from releasegate.github import github_answer_attempt, github_answers_dispatch_due
from releasegate.github_commits import commit_authors_attempt, commit_authors_due


@shared_task(bind=True, ignore_result=True, max_retries=None)
def github_answer_deliver(self: Task[Any, Any], delivery_id: str) -> str:
    """One attempt to answer GitHub; after a failure, the next one through Celery's retry with
    the back-off's countdown. GITHUB_CALLBACK_MAX_ATTEMPTS, counted in the row, decides when to
    give up, not Celery's ``max_retries``: a retry lost with a worker or the broker is picked
    up by the flush with the row's count intact."""
    return attempt_with_retries(
        self, lambda only_when_due: github_answer_attempt(delivery_id=delivery_id, only_when_due=only_when_due)
    )


@shared_task(ignore_result=True)
def github_answers_flush() -> int:
    """Run by beat every 30 s: hands every pending answer that is due to ``github_answer_deliver``
    (a broker that was down at commit time, a retry lost with a worker)."""
    return github_answers_dispatch_due()


# Commit authors read from GitHub after submission (releasegate/github_commits.py).


@shared_task(ignore_result=True)
def commit_authors_read(revision_id: str) -> str:
    """One attempt to read a revision's commit authors; a failed one is tried again by the sweep
    when its back-off is over."""
    return commit_authors_attempt(revision_id=revision_id)


@shared_task(ignore_result=True)
def commit_authors_sweep() -> int:
    """Run by beat every 15 s: hands every revision whose commit authors are due to be read to
    ``commit_authors_read`` (none when the GitHub App is not configured)."""
    due = commit_authors_due()
    for revision_id in due:
        commit_authors_read.delay(revision_id)
    return len(due)


@shared_task(ignore_result=True)
def access_reviews() -> int:
    """Close access reviews past their deadline (revoking what was not re-confirmed) and open
    the next one when it is due (releasegate/access_review.py)."""
    from releasegate.access_review import reviews_close_due

    return reviews_close_due()
