"""The content hash that approvals sign: same content, same hash; any change, another hash."""

import copy
from typing import Any

import pytest

from changelogs.content_rules import content_validate
from changelogs.signed import content_hash
from tests.factories import OTHER_DIGEST, changelog_content


def hash_of(content: dict[str, Any], *, service: str = "payments-api", kind: str = "train") -> str:
    return content_hash(service=service, kind=kind, content=content_validate(kind=kind, content=content), evidence=[])


def test_the_same_content_always_yields_the_same_hash() -> None:
    content = changelog_content()
    reordered = dict(reversed(list(copy.deepcopy(content).items())))

    assert hash_of(content) == hash_of(copy.deepcopy(content)) == hash_of(reordered)


def test_equal_times_written_differently_hash_the_same() -> None:
    utc = changelog_content(planned_window={"start": "2026-12-01T09:00:00Z", "end": "2026-12-01T10:00:00Z"})
    offset = changelog_content(
        planned_window={"start": "2026-12-01T10:00:00+01:00", "end": "2026-12-01T11:00:00+01:00"}
    )

    assert hash_of(utc) == hash_of(offset)


def test_the_hash_is_sha256_of_the_canonical_json() -> None:
    import hashlib
    import json

    content = content_validate(kind="train", content=changelog_content())
    document = {
        "content": content,
        "evidence": [],
        "format": "releasegate/changelog/v1",
        "kind": "train",
        "service": "payments-api",
    }
    expected = hashlib.sha256(
        json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    ).hexdigest()

    assert content_hash(service="payments-api", kind="train", content=content, evidence=[]) == expected


DATA_CHANGE_EVIDENCE = {"dry_run_evidence": "2" * 64, "backup_evidence": "3" * 64}


def _artifact(**changes: Any) -> dict[str, Any]:
    return {"artifact": {**changelog_content()["artifact"], **changes}}


FIELD_CHANGES = [
    _artifact(name="payments-api-2"),
    _artifact(version="1.4.3"),
    _artifact(digest=OTHER_DIGEST),
    _artifact(source_revision="fedcba9876543210fedcba9876543210fedcba98"),
    _artifact(links=[]),
    {"deploy_steps": [{"description": "Roll out the new image"}]},
    {"deploy_steps": list(reversed(changelog_content()["deploy_steps"]))},
    {
        "data_changes": [
            {
                "description": "Index",
                "version": "V42",
                "digest": OTHER_DIGEST,
                "rollback": "Drop",
                **DATA_CHANGE_EVIDENCE,
            }
        ],
        "no_data_changes": False,
    },
    {"rollback_plan": "Roll forward."},
    {"reason": "Fixes rounding of card fees!"},
    {"scope": "Every service of the domain."},
    {"expected_outcome": "Nothing visible."},
    {"planned_window": {"start": "2026-12-01T09:00:00Z", "end": "2026-12-01T10:00:01Z"}},
    {"risk_tier": "high"},
    {"security_impact": {"declared": True, "description": "New TLS ciphers."}},
    {"commit_authors": ["someone-else@bank.example"]},
    {"bundles": [{"changelog": "5d1f1c38-9a55-4b8e-9fd4-0e1f0c9b1f63", "content_hash": "4" * 64}]},
]


@pytest.mark.parametrize("change", FIELD_CHANGES)
@pytest.mark.requirement("PR-03")
def test_any_field_change_yields_another_hash(change: dict[str, Any]) -> None:
    assert hash_of(changelog_content(**change)) != hash_of(changelog_content())


def test_service_and_kind_are_part_of_the_hash() -> None:
    content = changelog_content()

    assert hash_of(content, service="payments-web") != hash_of(content)
    hotfix = changelog_content(
        hotfix={"incident_reference": "INC-1", "emergency_category": "service_outage", "emergency_reason": "Outage"}
    )
    assert hash_of(hotfix, kind="hotfix") != hash_of(changelog_content(hotfix=None))


def test_evidence_is_part_of_the_hash_whatever_its_order() -> None:
    content = content_validate(kind="train", content=changelog_content())
    first = {"sha256": "a" * 64, "kind": "sanity"}
    second = {"sha256": "b" * 64, "kind": "security"}

    with_both = content_hash(service="s", kind="train", content=content, evidence=[first, second])

    assert with_both == content_hash(service="s", kind="train", content=content, evidence=[second, first])
    assert with_both != content_hash(service="s", kind="train", content=content, evidence=[first])
