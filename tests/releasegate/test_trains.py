"""PR-20: a deployment train bundles changes that were each approved, listed by changelog and
the content hash that was approved. The gate allows the train only while every listed change
is still approved on exactly that content; adding or removing one changes the train's content,
so its approvals no longer count until it is approved again."""

from typing import Any

import pytest

from changelogs.models import Changelog
from tests.conftest import Cast
from tests.factories import changelog_content, changelog_make
from tests.releasegate.gate_support import approve, check, ready_changelog


def _digest(char: str) -> str:
    return "sha256:" + char * 64


def codes(response: Any) -> list[str]:
    assert response.status_code == 200, response.json()
    return [reason["code"] for reason in response.json()["reasons"]]


def individual(cast: Cast, char: str, *, approved: bool = True, service: Any = None) -> Changelog:
    artifact = {**changelog_content()["artifact"], "digest": _digest(char)}
    changelog = changelog_make(
        service=service or cast.payments_api, by=cast.pipeline.account, submitted=True, artifact=artifact
    )
    if approved:
        approve(cast, changelog)
    changelog.refresh_from_db()
    return changelog


def listed(*changelogs: Changelog) -> list[dict[str, str]]:
    return [
        {"changelog": str(changelog.id), "content_hash": changelog.current_revision.content_hash}  # type: ignore[union-attr]
        for changelog in changelogs
    ]


@pytest.mark.requirement("PR-20")
def test_a_train_of_changes_each_approved_on_the_listed_content_is_allowed(cast: Cast) -> None:
    first, second = individual(cast, "a"), individual(cast, "b")
    train = ready_changelog(cast, bundles=listed(first, second))

    assert codes(check(cast.pipeline.client())) == ["allowed"]
    assert train.current_revision.content["bundles"] == listed(first, second)  # type: ignore[union-attr]


@pytest.mark.requirement("PR-20")
def test_a_train_listing_a_change_that_is_not_approved_is_denied(cast: Cast) -> None:
    first, unapproved = individual(cast, "a"), individual(cast, "b", approved=False)
    ready_changelog(cast, bundles=listed(first, unapproved))

    assert codes(check(cast.pipeline.client())) == ["train_change_not_approved"]


@pytest.mark.requirement("PR-20")
def test_a_listed_change_edited_after_its_approval_denies_the_train(cast: Cast) -> None:
    first, second = individual(cast, "a"), individual(cast, "b")
    ready_changelog(cast, bundles=listed(first, second))

    edited = cast.pipeline.client().patch(f"/api/v1/changelogs/{second.id}/", {"reason": "More"}, format="json")

    assert edited.status_code == 200
    assert codes(check(cast.pipeline.client())) == ["train_change_not_approved"]


@pytest.mark.requirement("PR-20")
def test_adding_a_change_to_an_approved_train_needs_approval_again(cast: Cast) -> None:
    first, second, third = individual(cast, "a"), individual(cast, "b"), individual(cast, "c")
    train = ready_changelog(cast, bundles=listed(first, second))
    pipeline = cast.pipeline.client()

    pipeline.patch(f"/api/v1/changelogs/{train.id}/", {"bundles": listed(first, second, third)}, format="json")
    pipeline.post(f"/api/v1/changelogs/{train.id}/submit")

    assert codes(check(pipeline)) == ["approvals_missing", "approval_stale"]
    approve(cast, train)
    assert codes(check(pipeline)) == ["allowed"]


@pytest.mark.requirement("PR-20")
def test_removing_a_change_from_an_approved_train_needs_approval_again(cast: Cast) -> None:
    first, second = individual(cast, "a"), individual(cast, "b")
    train = ready_changelog(cast, bundles=listed(first, second))
    pipeline = cast.pipeline.client()

    pipeline.patch(f"/api/v1/changelogs/{train.id}/", {"bundles": listed(first)}, format="json")
    pipeline.post(f"/api/v1/changelogs/{train.id}/submit")

    assert codes(check(pipeline)) == ["approvals_missing", "approval_stale"]


@pytest.mark.requirement("PR-20")
def test_a_change_of_another_service_cannot_ride_the_train(cast: Cast) -> None:
    elsewhere = individual(cast, "a", approved=False, service=cast.transfers_api)
    ready_changelog(cast, bundles=listed(elsewhere))

    assert codes(check(cast.pipeline.client())) == ["train_change_not_approved"]


def test_only_a_train_bundles_changes(cast: Cast) -> None:
    first = individual(cast, "a")
    body = {
        "service": "payments-api",
        "kind": "hotfix",
        **changelog_content(
            bundles=listed(first),
            hotfix={
                "incident_reference": "INC-1",
                "emergency_category": "service_outage",
                "emergency_reason": "Outage",
            },
        ),
    }

    response = cast.pipeline.client().post("/api/v1/changelogs/", body, format="json")

    assert response.status_code == 400
    assert response.json()["fields"]["bundles"][0]["code"] == "bundles_not_allowed"
