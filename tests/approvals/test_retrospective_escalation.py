"""PR-09: an overdue retrospective escalates: first to the domain's signing authorities (when
it becomes overdue), then, if still owed RETROSPECTIVE_ESCALATION_HOURS later, once to the
second level (RETROSPECTIVE_ESCALATION_EMAILS)."""

import json
from datetime import timedelta
from typing import Any

import pytest

from approvals.models import Notification, Retrospective
from approvals.services import retrospectives_mark_overdue
from audit.models import AuditEvent
from tests.clock import time_passes
from tests.conftest import Cast
from tests.factories import changelog_make, unsigned_approvals_count
from tests.releasegate.gate_support import approve


@pytest.fixture
def overdue_hotfix(cast: Cast, settings: Any) -> Any:
    settings.RETROSPECTIVE_ESCALATION_EMAILS = ["head-of-change@bank.example", "cro-office@bank.example"]
    settings.RETROSPECTIVE_ESCALATION_HOURS = 24
    unsigned_approvals_count(cast.payments)  # the approval here is a password one, not a passkey's
    hotfix = changelog_make(
        service=cast.payments_api, by=cast.requester, kind="hotfix", submitted=True, risk_tier="high"
    )
    approve(cast, hotfix, reason="Outage")
    return hotfix


@pytest.mark.requirement("PR-09")
def test_an_overdue_retrospective_goes_to_the_domain_first_and_to_the_second_level_a_day_later(
    cast: Cast, overdue_hotfix: Any
) -> None:
    time_passes(timedelta(hours=25))
    retrospectives_mark_overdue()
    first = Notification.objects.filter(event="retrospective.overdue", channel="email").get()
    assert cast.approver.email in first.recipients
    assert not Notification.objects.filter(event="retrospective.escalated").exists()

    time_passes(timedelta(hours=24))
    retrospectives_mark_overdue()
    retrospectives_mark_overdue()

    second = Notification.objects.filter(event="retrospective.escalated", channel="email").get()
    assert second.recipients == ["cro-office@bank.example", "head-of-change@bank.example"]
    assert second.payload["changelog"] == str(overdue_hotfix.id)
    retrospective = Retrospective.objects.get(changelog=overdue_hotfix)
    assert retrospective.escalated_at is not None
    event = AuditEvent.objects.get(action="retrospective:escalated")
    assert json.loads(event.data)["to"] == ["cro-office@bank.example", "head-of-change@bank.example"]


def test_a_retrospective_completed_meanwhile_is_not_escalated(cast: Cast, overdue_hotfix: Any) -> None:
    time_passes(timedelta(hours=25))
    retrospectives_mark_overdue()
    Retrospective.objects.filter(changelog=overdue_hotfix).update(status="completed")

    time_passes(timedelta(hours=24))
    retrospectives_mark_overdue()

    assert not Notification.objects.filter(event="retrospective.escalated").exists()
