"""On PostgreSQL the gate reads its facts with one statement (releasegate/gate_sql.py); the ORM
path (``releasegate.gate.gate_facts``) is the reference. Every gate check any test here makes
on PostgreSQL is therefore read both ways, and the two must agree: the same facts, policy,
revision and answer to whether the caller may act on the service."""

from typing import Any

import pytest
from django.db import connection

from changelogs import selectors as changelog_selectors
from changelogs.models import Service
from core.actors import ActingUser
from releasegate import gate


def assert_read_agrees(
    row: Any, *, acting_user: ActingUser, service_slug: str, digest: str, changelog_id: Any, now: Any
) -> None:
    service = Service.objects.select_related("domain").filter(slug=service_slug).first()
    if row is None:
        assert service is None
        return
    assert service is not None
    managed = changelog_selectors.service_list_managed(user=acting_user).filter(pk=service.pk).exists()
    assert gate._may_manage(acting_user, row) == managed
    reference = gate.gate_facts(service=service, digest=digest, changelog_id=changelog_id, now=now)
    found = gate.snapshot_of(row, service=service, now=now)
    assert found.facts == reference.facts
    assert found.policy == reference.policy
    assert (found.revision.pk if found.revision else None) == (reference.revision.pk if reference.revision else None)


@pytest.fixture(autouse=True)
def _gate_reads_checked_against_the_orm(monkeypatch: pytest.MonkeyPatch) -> None:
    if connection.vendor != "postgresql":
        return
    read = gate._read

    def checked(**question: Any) -> Any:
        row = read(**question)
        assert_read_agrees(row, **question)
        return row

    monkeypatch.setattr(gate, "_read", checked)
