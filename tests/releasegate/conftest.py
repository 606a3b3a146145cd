"""On PostgreSQL the gate reads its facts with one statement (``releasegate.gate.
facts_from_postgresql``, releasegate/gate_sql.py); the ORM backend (``facts_from_orm``) is the
reference. Every gate check any test here makes on PostgreSQL is therefore read both ways, and
the two snapshots must be equal: the same service, answer to whether the caller may act on it,
facts, revision, policy, audit alarm and time."""

from datetime import datetime
from typing import Any

import pytest
from django.db import connection

from core.actors import ActingUser
from releasegate import gate


def assert_backends_agree(
    found: gate.Snapshot | None,
    *,
    acting_user: ActingUser,
    service_slug: str,
    digest: str,
    changelog_id: Any,
    now: datetime | None = None,
) -> None:
    """``found`` (from PostgreSQL's statement) equals what the ORM reads at the same time."""
    at = found.now if found is not None else (now or datetime.now().astimezone())
    reference = gate.facts_from_orm(
        acting_user=acting_user, service_slug=service_slug, digest=digest, changelog_id=changelog_id, now=at
    )
    assert found == reference
    if found is not None and reference is not None:
        # Model instances compare by primary key: compare what the gate stores of them too.
        assert found.service.slug == reference.service.slug
        assert (found.revision.number if found.revision else None) == (
            reference.revision.number if reference.revision else None
        )


@pytest.fixture(autouse=True)
def _gate_reads_checked_against_the_orm(monkeypatch: pytest.MonkeyPatch) -> None:
    if connection.vendor != "postgresql":
        return
    read = gate.facts_from_postgresql

    def checked(**question: Any) -> Any:
        found = read(**question)
        assert_backends_agree(found, **question)
        return found

    monkeypatch.setattr(gate, "facts_from_postgresql", checked)
    with_token = gate.facts_with_token

    def checked_with_token(**question: Any) -> Any:
        found = with_token(**question)
        if found is not None and found[1] is not None:
            token, snapshot = found
            assert_backends_agree(
                snapshot,
                acting_user=token.service_account,
                service_slug=question["service_slug"],
                digest=question["digest"],
                changelog_id=question["changelog_id"],
            )
        return found

    monkeypatch.setattr(gate, "facts_with_token", checked_with_token)
