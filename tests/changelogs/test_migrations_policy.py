"""Policy versions written before `require_evidence_digest` existed keep meaning what they meant:
the migration writes the rule as it was (off) into them; versions written after it follow the
default (on)."""

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

from changelogs.models import Policy
from changelogs.policy import PolicyRules
from tests.conftest import Cast

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("migrations_restored")]

BEFORE = [("changelogs", "0005_evidence_artifact_digest")]
AFTER = [("changelogs", "0006_policy_versions_keep_counting_evidence_without_digest")]


def _migrate(targets: list[tuple[str, str]]) -> None:
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)


def test_versions_written_before_the_rule_keep_counting_evidence_without_a_digest(cast: Cast) -> None:
    _migrate(BEFORE)
    try:
        old = MigrationExecutor(connection).loader.project_state(BEFORE).apps.get_model("changelogs", "Policy")
        old.objects.create(
            domain_id=cast.payments.pk,
            version=1,
            rules={"max_p95_ms": 800},
            reason="Payments' own p95 budget",
            created_by_id=cast.admin.pk,
            created_at=timezone.now(),
        )
    finally:
        _migrate(AFTER)

    pinned = Policy.objects.get(domain=cast.payments, version=1)
    assert pinned.rules == {"max_p95_ms": 800, "require_evidence_digest": False}
    assert not PolicyRules.from_json(pinned.rules).require_evidence_digest
    assert PolicyRules.from_json({"max_p95_ms": 800}).require_evidence_digest  # a new version: the default
