"""PR-09: a retrospective is due within the policy's window: so many hours (24 by default) or
the next business day, read in the organisation's time zone, working days and holiday calendar."""

from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from django.utils import timezone

from approvals.deadlines import retrospective_due
from approvals.models import Retrospective
from audit.clock import business_now
from changelogs.policy import PolicyError, PolicyRules
from changelogs.services import policy_create
from tests.conftest import Cast
from tests.factories import changelog_make
from tests.releasegate.gate_support import approve

LONDON = ZoneInfo("Europe/London")
CHRISTMAS = (date(2026, 12, 25), date(2026, 12, 28))  # Christmas Day, and Boxing Day's substitute


def due(opened: datetime, **overrides: Any) -> datetime:
    options: dict[str, Any] = {
        "hours": 24,
        "next_business_day": True,
        "zone": LONDON,
        "closes": time(18),
        "working_days": range(5),
        "holidays": CHRISTMAS,
    }
    return retrospective_due(opened, **{**options, **overrides})


@pytest.mark.requirement("PR-09")
def test_the_next_business_day_ends_at_closing_time_in_the_organisations_zone() -> None:
    # Tuesday 1 December 2026, 23:30 London: due Wednesday at 18:00 London (GMT).
    assert due(datetime(2026, 12, 1, 23, 30, tzinfo=UTC)) == datetime(2026, 12, 2, 18, 0, tzinfo=UTC)
    # Friday evening: due Monday.
    assert due(datetime(2026, 12, 4, 20, 0, tzinfo=UTC)) == datetime(2026, 12, 7, 18, 0, tzinfo=UTC)
    # In summer time closing is 17:00 UTC.
    assert due(datetime(2026, 7, 1, 9, 0, tzinfo=UTC)) == datetime(2026, 7, 2, 17, 0, tzinfo=UTC)


@pytest.mark.requirement("PR-09")
def test_holidays_of_the_calendar_are_not_business_days() -> None:
    # Thursday 24 December: Friday 25 is Christmas, Monday 28 the substitute holiday: Tuesday 29.
    assert due(datetime(2026, 12, 24, 10, 0, tzinfo=UTC)) == datetime(2026, 12, 29, 18, 0, tzinfo=UTC)
    assert due(datetime(2026, 12, 24, 10, 0, tzinfo=UTC), holidays=()) == datetime(2026, 12, 25, 18, 0, tzinfo=UTC)


def test_without_next_business_day_the_window_is_in_hours() -> None:
    opened = datetime(2026, 12, 24, 10, 0, tzinfo=UTC)

    assert due(opened, next_business_day=False, hours=36) == datetime(2026, 12, 25, 22, 0, tzinfo=UTC)


def test_the_policy_names_the_deadline_rule() -> None:
    rules = PolicyRules.from_json({"hotfix_retrospective_deadline": "next_business_day"})

    assert rules.hotfix_retrospective_deadline == "next_business_day"
    assert PolicyRules().hotfix_retrospective_deadline == "hours"
    with pytest.raises(PolicyError):
        PolicyRules.from_json({"hotfix_retrospective_deadline": "whenever"})


@pytest.mark.requirement("PR-09")
def test_a_hotfix_approved_before_holidays_is_due_after_them(cast: Cast, settings: Any) -> None:
    """Business times come from the database's clock, which a test cannot move: the holidays
    are the next two working days after today, so the retrospective is due on the third."""
    settings.ORGANISATION_TIME_ZONE = "Europe/London"
    today = business_now().astimezone(LONDON).date()
    working = [day for day in (today + timedelta(days=n) for n in range(1, 12)) if day.weekday() < 5]
    settings.ORGANISATION_HOLIDAYS = [working[0].isoformat(), working[1].isoformat()]
    policy_create(
        acting_user=cast.admin,
        domain=cast.payments,
        rules={"hotfix_retrospective_deadline": "next_business_day", "signed_approvals": []},
        reason="Retrospectives by the next business day",
    )
    hotfix = changelog_make(
        service=cast.payments_api, by=cast.requester, kind="hotfix", submitted=True, risk_tier="high"
    )

    approve(cast, hotfix, reason="Outage")

    retrospective = Retrospective.objects.get(changelog=hotfix)
    assert retrospective.due_at == datetime.combine(working[2], time(18), LONDON)
    assert timezone.is_aware(retrospective.due_at)
