"""Commit authors read from GitHub: after submission a worker reads who wrote the commits a
change deploys from the fake GitHub API on 127.0.0.1 (the App's JWT, an installation token, the
REST endpoints), and nobody among them may approve, whatever the pipeline declared."""

import csv
import io
import json
from datetime import timedelta
from typing import Any

import pytest
import time_machine
from django.test import Client
from django.utils import timezone

from audit.models import AuditEvent
from changelogs.models import Changelog, CommitAuthors
from changelogs.services import policy_create
from releasegate.tasks import commit_authors_sweep
from tests.conftest import Cast
from tests.factories import OTHER_DIGEST, changelog_content, seen_of
from tests.packs.test_packs import download, first_day, request_pack
from tests.releasegate import test_github
from tests.releasegate.gate_support import PASSWORD, approve, check, ready_changelog, report_succeeded
from tests.releasegate.github_fake import FakeGitHub
from tests.releasegate.test_github import INSTALLATION_ID, SHA

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("eager_celery")]

# The fake GitHub API and the App's key, as the deployment protection rule's tests set them up.
app_key = test_github.app_key
github = test_github.github

ROOT_SHA = "1" * 40
BASE_SHA = "b" * 40
WRITTEN_SHA = "c" * 40


@pytest.fixture
def repository(cast: Cast, github: FakeGitHub) -> FakeGitHub:
    """payments-api lives on the (fake) GitHub, where the App is installed."""
    cast.payments_api.repository_url = f"{github.url}/bank/payments-api"
    cast.payments_api.save(update_fields=["repository_url"])
    github.installations["bank/payments-api"] = INSTALLATION_ID
    github.add_commit(ROOT_SHA, name="Founder", email="founder@bank.example", login="founder")
    return github


def with_pull_request(github: FakeGitHub, number: int, **artifact: Any) -> dict[str, Any]:
    return {
        **changelog_content()["artifact"],
        "links": [{"title": "pull request", "url": f"{github.url}/bank/payments-api/pull/{number}"}],
        **artifact,
    }


def decide(cast: Cast, changelog: Changelog, who: Any = None) -> Any:
    return cast.session(who or cast.approver).post(
        f"/api/v1/changelogs/{changelog.id}/approvals/",
        {"decision": "approved", "reason": "Checked", "password": PASSWORD, **seen_of(changelog)},
        format="json",
    )


def read_authors() -> int:
    """What beat's sweep does every 15 s (Celery is eager here: the reads happen at once)."""
    return int(commit_authors_sweep.delay().get())


@pytest.mark.requirement("PR-04")
def test_an_approver_who_wrote_a_commit_cannot_approve_even_when_the_pipeline_left_them_out(
    cast: Cast, repository: FakeGitHub
) -> None:
    repository.add_commit(
        WRITTEN_SHA, name="The Approver", email="approver@bank.example", login="approver-gh", parent=ROOT_SHA
    )
    repository.add_commit(SHA, name="Dev", email="dev@bank.example", login="dev", parent=WRITTEN_SHA)
    repository.pull(42, [WRITTEN_SHA, SHA])
    changelog = ready_changelog(cast, approved=False, artifact=with_pull_request(repository, 42))
    assert changelog.current_revision.content["commit_authors"] == ["dev@bank.example"]  # type: ignore[union-attr]

    assert read_authors() == 1
    response = decide(cast, changelog)

    assert response.status_code == 403
    assert response.json()["code"] == "own_change"
    assert "read from GitHub" in response.json()["message"]
    read = CommitAuthors.objects.get(revision=changelog.current_revision)
    assert (read.status, read.source, read.pull_request) == ("read", "pull_request", 42)
    assert [(a["email"], a["login"]) for a in read.authors] == [
        ("approver@bank.example", "approver-gh"),
        ("dev@bank.example", "dev"),
    ]
    # The token was for that repository only, and for reading.
    [token] = repository.token_requests
    assert token.body == {
        "repositories": ["payments-api"],
        "permissions": {"contents": "read", "pull_requests": "read"},
    }
    assert token.installation_id == INSTALLATION_ID
    # Nor through the approver's pages.
    admin = Client()
    admin.force_login(cast.approver)
    page = admin.get(f"/admin/approvals/approval/queue/{changelog.pk}/").content.decode()
    assert 'id="approve"' not in page
    assert "Read from GitHub" in page
    assert admin.get(f"/admin/approvals/approval/queue/{changelog.pk}/approved/").status_code == 403


@pytest.mark.requirement("PR-04")
def test_an_approval_given_before_github_was_read_stops_counting_once_its_approver_is_found_an_author(
    cast: Cast, repository: FakeGitHub
) -> None:
    repository.add_commit(SHA, name="The Approver", email="APPROVER@bank.example", parent=ROOT_SHA)
    changelog = ready_changelog(cast)  # approved by cast.approver, whom the declaration omits
    pipeline = cast.pipeline.client()
    assert check(pipeline).json()["decision"] == "allow"

    read_authors()

    answer = check(pipeline).json()
    assert answer["decision"] == "deny"
    assert {reason["code"] for reason in answer["reasons"]} == {"approvals_missing", "approval_self_given"}
    approvals = cast.session(cast.auditor).get(f"/api/v1/changelogs/{changelog.id}/approvals/").json()
    assert [(a["not_counted_because"], a["commit_authors_from"]) for a in approvals["approvals"]] == [
        ("commit_author", "github")
    ]


def test_the_commits_since_the_previous_deployment_with_their_co_authors_are_read(
    cast: Cast, repository: FakeGitHub
) -> None:
    repository.add_commit(BASE_SHA, name="Someone", email="someone@bank.example", parent=ROOT_SHA)
    repository.add_commit(
        WRITTEN_SHA,
        name="Writer",
        email="writer@bank.example",
        parent=BASE_SHA,
        message="Round fees half-even\n\nCo-authored-by: The Approver <12345+approver@users.noreply.github.com>\n",
    )
    repository.add_commit(SHA, name="Dev", email="dev@bank.example", login="dev", parent=WRITTEN_SHA)
    previous = ready_changelog(cast, artifact={**changelog_content()["artifact"], "source_revision": BASE_SHA})
    pipeline = cast.pipeline.client()
    check(pipeline)
    deployed = report_succeeded(pipeline, previous, "previous")
    assert deployed.json()["unauthorised"] is False
    changelog = ready_changelog(
        cast, approved=False, artifact={**changelog_content()["artifact"], "digest": OTHER_DIGEST}
    )

    read_authors()

    read = CommitAuthors.objects.get(revision=changelog.current_revision)
    assert (read.status, read.source, read.base, read.head) == ("read", "compare", BASE_SHA, SHA)
    assert read.commits == [WRITTEN_SHA, SHA]
    assert [(a["email"], a["role"]) for a in read.authors] == [
        ("writer@bank.example", "author"),
        ("12345+approver@users.noreply.github.com", "co_author"),
        ("dev@bank.example", "author"),
    ]
    # The co-author's no-reply address names their GitHub login, which is the approver's username.
    assert decide(cast, changelog).json()["code"] == "own_change"
    [event] = AuditEvent.objects.filter(action="changelog:commit_authors_read", target_id=str(changelog.pk))
    assert json.loads(event.data)["source"] == "compare"


def test_a_pull_request_that_does_not_end_at_the_source_revision_is_not_taken_for_the_change(
    cast: Cast, repository: FakeGitHub
) -> None:
    repository.add_commit(WRITTEN_SHA, name="Other", email="approver@bank.example", parent=ROOT_SHA)
    repository.add_commit(SHA, name="Dev", email="dev@bank.example", parent=ROOT_SHA)
    repository.pull(42, [WRITTEN_SHA])  # someone else's pull request
    changelog = ready_changelog(cast, approved=False, artifact=with_pull_request(repository, 42))

    read_authors()

    read = CommitAuthors.objects.get(revision=changelog.current_revision)
    assert (read.status, read.source, read.commits) == ("read", "commit", [SHA])
    assert decide(cast, changelog).status_code == 201


def test_a_failed_read_is_tried_again_after_its_back_off_and_audited_once(cast: Cast, repository: FakeGitHub) -> None:
    repository.add_commit(SHA, name="Dev", email="dev@bank.example", parent=ROOT_SHA)
    changelog = ready_changelog(cast, approved=False)
    repository.fail_reads = 1

    read_authors()
    read = CommitAuthors.objects.get(revision=changelog.current_revision)
    assert (read.status, read.attempts) == ("retry", 1)
    assert "502" in read.last_error
    assert read_authors() == 0  # not due yet

    with time_machine.travel(timezone.now() + timedelta(minutes=5)):
        assert read_authors() == 1

    read.refresh_from_db()
    assert (read.status, read.attempts) == ("read", 2)
    assert AuditEvent.objects.filter(action="changelog:commit_authors_read").count() == 1
    assert read_authors() == 0  # never read again


def test_a_repository_the_app_is_not_installed_on_is_a_failed_read_and_the_change_stays_unverified(
    cast: Cast, repository: FakeGitHub
) -> None:
    repository.installations.clear()
    changelog = ready_changelog(cast, approved=False)

    read_authors()

    read = CommitAuthors.objects.get(revision=changelog.current_revision)
    assert read.status == "failed"
    assert "404" in read.last_error
    [event] = AuditEvent.objects.filter(action="changelog:commit_authors_read")
    assert json.loads(event.data)["status"] == "failed"
    approvals = cast.session(cast.approver).get(f"/api/v1/changelogs/{changelog.id}/approvals/").json()
    assert approvals["approvals"] == []
    assert decide(cast, changelog).json()["approvals"][0]["commit_authors_from"] == "declaration"


def test_the_policy_can_require_authors_read_from_github_before_the_gate_allows(
    cast: Cast, repository: FakeGitHub
) -> None:
    repository.add_commit(SHA, name="Dev", email="dev@bank.example", parent=ROOT_SHA)
    policy_create(
        acting_user=cast.admin,
        domain=cast.payments,
        rules={"require_verified_commit_authors": ["medium"]},
        reason="Medium risk needs authors from GitHub",
    )
    ready_changelog(cast)  # medium risk, approved
    pipeline = cast.pipeline.client()

    before = check(pipeline).json()
    read_authors()
    after = check(pipeline).json()

    assert (before["decision"], [reason["code"] for reason in before["reasons"]]) == (
        "deny",
        ["commit_authors_unverified"],
    )
    assert after["decision"] == "allow"


def test_nothing_is_read_without_the_github_app(cast: Cast, repository: FakeGitHub, settings: Any) -> None:
    settings.GITHUB_APP_ID = ""
    ready_changelog(cast, approved=False)

    assert read_authors() == 0
    assert repository.reads == []


def test_a_service_whose_repository_is_elsewhere_is_not_asked_about(cast: Cast, repository: FakeGitHub) -> None:
    cast.payments_api.repository_url = "https://git.bank.example/payments/payments-api"
    cast.payments_api.save(update_fields=["repository_url"])
    changelog = ready_changelog(cast, approved=False)

    read_authors()

    read = CommitAuthors.objects.get(revision=changelog.current_revision)
    assert read.status == "failed"
    assert repository.reads == []
    approve(cast, changelog)  # the declaration still applies, and nobody declared the approver


def test_the_population_pack_counts_an_approval_by_an_author_read_from_github_against_separation_of_duties(
    cast: Cast, repository: FakeGitHub
) -> None:
    repository.add_commit(SHA, name="The Approver", email="approver@bank.example", parent=ROOT_SHA)
    changelog = ready_changelog(cast)  # approved by the approver, whom the declaration omits
    start = first_day().isoformat()
    end = (timezone.now() + timedelta(days=1)).isoformat()
    body = {"kind": "population", "start": start, "end": end, "sample_size": 1}

    before = population_rows(cast, {**body, "seed": 1})
    read_authors()
    after = population_rows(cast, {**body, "seed": 2})

    assert [(row["changelog_id"], row["separation_of_duties"]) for row in before] == [(str(changelog.pk), "true")]
    assert [(row["changelog_id"], row["separation_of_duties"]) for row in after] == [(str(changelog.pk), "false")]


def population_rows(cast: Cast, body: dict[str, Any]) -> list[dict[str, str]]:
    job = request_pack(cast, body)
    rows = csv.DictReader(io.StringIO(download(cast, job, "population.csv").decode()))
    return [row for row in rows if row["record"] == "change"]
