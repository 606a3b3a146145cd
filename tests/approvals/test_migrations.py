"""Migrations that move existing rows, run forward over rows written before them."""

from datetime import timedelta

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

from tests.conftest import Cast
from tests.factories import changelog_make

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("migrations_restored")]

BEFORE = [("approvals", "0001_approvals_retrospectives_outbox")]
AFTER = [("approvals", "0002_retrospective_service")]


def _migrate(targets: list[tuple[str, str]]) -> None:
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)


def test_existing_retrospectives_take_their_changelogs_service(cast: Cast) -> None:
    first = changelog_make(service=cast.payments_api, kind="hotfix")
    second = changelog_make(service=cast.transfers_api, kind="hotfix")
    _migrate(BEFORE)
    try:
        old = MigrationExecutor(connection).loader.project_state(BEFORE).apps.get_model("approvals", "Retrospective")
        now = timezone.now()
        for changelog in (first, second):
            old.objects.create(changelog_id=changelog.pk, opened_at=now, due_at=now + timedelta(hours=24))
    finally:
        _migrate(AFTER)

    new = MigrationExecutor(connection).loader.project_state(AFTER).apps.get_model("approvals", "Retrospective")
    services = dict(new.objects.values_list("changelog_id", "service_id"))
    assert services == {first.pk: first.service_id, second.pk: second.service_id}
