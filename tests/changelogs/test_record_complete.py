"""PR-01: a production change states why, what it touches, when, and what should follow.
A changelog without its reason, scope, window or expected outcome is refused, nothing stored."""

from typing import Any

import pytest

from audit.models import AuditEvent
from changelogs.models import Changelog
from tests.conftest import Cast
from tests.factories import changelog_content

LIST = "/api/v1/changelogs/"


def _refused_without(cast: Cast, field: str) -> dict[str, Any]:
    body: dict[str, Any] = {"service": "payments-api", "kind": "train", **changelog_content()}
    del body[field]
    changelogs, events = Changelog.objects.count(), AuditEvent.objects.count()

    response = cast.pipeline.client().post(LIST, body, format="json")

    assert response.status_code == 400, response.json()
    assert (Changelog.objects.count(), AuditEvent.objects.count()) == (changelogs, events)
    return response.json()["fields"]


@pytest.mark.requirement("PR-01")
def test_a_changelog_without_a_reason_is_refused(cast: Cast) -> None:
    assert [problem["code"] for problem in _refused_without(cast, "reason")["reason"]] == ["required"]


@pytest.mark.requirement("PR-01")
def test_a_changelog_without_a_scope_is_refused(cast: Cast) -> None:
    assert [problem["code"] for problem in _refused_without(cast, "scope")["scope"]] == ["required"]


@pytest.mark.requirement("PR-01")
def test_a_changelog_without_a_window_is_refused(cast: Cast) -> None:
    fields = _refused_without(cast, "planned_window")

    assert [problem["code"] for problem in fields["planned_window"]] == ["required"]


@pytest.mark.requirement("PR-01")
def test_a_changelog_without_an_expected_outcome_is_refused(cast: Cast) -> None:
    fields = _refused_without(cast, "expected_outcome")

    assert [problem["code"] for problem in fields["expected_outcome"]] == ["required"]


@pytest.mark.requirement("PR-01")
def test_a_blank_scope_is_refused(cast: Cast) -> None:
    body = {"service": "payments-api", "kind": "train", **changelog_content(scope="  ")}

    response = cast.pipeline.client().post(LIST, body, format="json")

    assert response.status_code == 400
    assert [problem["code"] for problem in response.json()["fields"]["scope"]] == ["blank"]
