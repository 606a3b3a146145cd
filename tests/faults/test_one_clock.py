"""One clock for the times that decide (issue 19, "What was seen" 6): a web worker whose clock
is 70 minutes slow issued an allow decision that had already expired, and the deployment after
it was flagged unauthorised. Business times now come from the database's clock."""

from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone

from audit.sequencer import database_now
from changelogs.models import ChangelogRevision
from releasegate.models import GateDecision
from tests.conftest import Cast
from tests.factories import changelog_make
from tests.releasegate.gate_support import check, ready_changelog
from tests.releasegate.test_deployments import report

SLOW = timedelta(minutes=70)


@pytest.mark.requirement("PR-12")
def test_a_slow_web_clock_neither_expires_an_allow_decision_nor_flags_the_deployment_after_it(cast: Cast) -> None:
    ready_changelog(cast)
    pipeline = cast.pipeline.client()

    with time_machine.travel(timezone.now() - SLOW, tick=True):
        answer = check(pipeline).json()

    assert answer["decision"] == "allow"
    decision = GateDecision.objects.get()
    assert abs((decision.evaluated_at - database_now()).total_seconds()) < 60
    assert decision.valid_until > database_now() + timedelta(minutes=50)

    deployed = report(pipeline, "run-after-a-slow-check", started_at=timezone.now())

    assert deployed.status_code == 201, deployed.json()
    assert deployed.json()["unauthorised"] is False


def test_a_submission_is_stamped_by_the_database_clock(cast: Cast) -> None:
    changelog = changelog_make(service=cast.payments_api, by=cast.requester)

    with time_machine.travel(timezone.now() - SLOW, tick=True):
        response = cast.pipeline.client().post(f"/api/v1/changelogs/{changelog.id}/submit")

    assert response.status_code == 200
    submitted_at = ChangelogRevision.objects.get(changelog=changelog).submitted_at
    assert submitted_at is not None
    assert abs((submitted_at - database_now()).total_seconds()) < 60
