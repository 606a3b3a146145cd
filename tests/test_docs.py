"""The documentation stays true: every error code the code can return is in docs/api-errors.md."""

import re
from enum import StrEnum
from pathlib import Path

import pytest

from approvals.errors import ApprovalError
from audit.errors import AuditError
from changelogs.content_rules import ContentError
from changelogs.errors import ChangelogError
from changelogs.parsers import ParseErrorCode
from changelogs.policy import FindingCode
from core.errors import CommonError
from incidents.errors import IncidentError
from packs.errors import PackError
from releasegate.deployments import DeploymentError
from releasegate.freezes import FreezeError
from releasegate.github import GitHubError, GitHubReason
from releasegate.policy import ReasonCode
from releasegate.services import IdentityError
from releasegate.smoke import SmokeError
from releasegate.tokens import TokenError

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs" / "api-errors.md"
ENUMS: list[type[StrEnum]] = [
    CommonError,
    ChangelogError,
    ContentError,
    ParseErrorCode,
    FindingCode,
    IdentityError,
    TokenError,
    AuditError,
    ApprovalError,
    ReasonCode,
    DeploymentError,
    SmokeError,
    FreezeError,
    PackError,
    GitHubError,
    GitHubReason,
    IncidentError,
]


@pytest.mark.parametrize("enum", ENUMS, ids=[enum.__name__ for enum in ENUMS])
def test_every_error_code_is_documented(enum: type[StrEnum]) -> None:
    text = DOCS.read_text()

    missing = [code.value for code in enum if f"`{code.value}`" not in text]

    assert missing == [], f"add these codes to docs/api-errors.md: {missing}"


TEST_REFERENCE = re.compile(r"`(tests/[\w/]+\.py)::(test_\w+)`")


@pytest.mark.parametrize("doc", ["docs/approvals.md", "docs/gate.md"])
def test_every_test_the_who_can_do_what_alone_table_names_exists(doc: str) -> None:
    text = (REPO / doc).read_text()
    references = TEST_REFERENCE.findall(text)
    if doc == "docs/approvals.md":
        assert len(references) >= 10
    missing = [
        f"{path}::{name}"
        for path, name in references
        if not re.search(rf"^\s*def {name}\(", (REPO / path).read_text(), re.MULTILINE)
    ]
    assert missing == []
