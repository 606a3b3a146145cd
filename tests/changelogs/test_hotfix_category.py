"""PR-08: a hotfix names its emergency by a category from a fixed list (with the free text
beside it), so that emergency changes can be counted and sampled by why they were urgent."""

from typing import Any

import pytest

from changelogs.content_rules import EMERGENCY_CATEGORIES
from changelogs.models import Changelog
from tests.conftest import Cast
from tests.factories import changelog_content, hotfix_details

LIST = "/api/v1/changelogs/"


def _create(cast: Cast, hotfix: dict[str, Any]) -> Any:
    body = {"service": "payments-api", "kind": "hotfix", **changelog_content(hotfix=hotfix)}
    return cast.pipeline.client().post(LIST, body, format="json")


@pytest.mark.requirement("PR-08")
def test_a_hotfix_without_an_emergency_category_is_refused(cast: Cast) -> None:
    hotfix = hotfix_details()
    del hotfix["emergency_category"]

    response = _create(cast, hotfix)

    assert response.status_code == 400
    assert [problem["code"] for problem in response.json()["fields"]["hotfix.emergency_category"]] == ["required"]
    assert not Changelog.objects.exists()


@pytest.mark.requirement("PR-08")
def test_a_category_not_on_the_list_is_refused(cast: Cast) -> None:
    response = _create(cast, {**hotfix_details(), "emergency_category": "it_felt_urgent"})

    assert response.status_code == 400
    assert [problem["code"] for problem in response.json()["fields"]["hotfix.emergency_category"]] == ["invalid_choice"]


@pytest.mark.requirement("PR-08")
def test_each_category_of_the_list_is_kept_with_the_free_text(cast: Cast) -> None:
    for category in EMERGENCY_CATEGORIES:
        response = _create(cast, {**hotfix_details(), "emergency_category": category})

        assert response.status_code == 201, response.json()
        hotfix = response.json()["revision"]["content"]["hotfix"]
        assert hotfix["emergency_category"] == category
        assert hotfix["emergency_reason"] == hotfix_details()["emergency_reason"]
