"""When a hotfix's retrospective approval is due (PR-09). Pure: no Django.

The policy says either so many hours after the retrospective opens, or the next business day:
the end of the working day (``closes``, in the organisation's time zone) of the first working
day after the day it opened that is not in the organisation's holiday calendar.
"""

from collections.abc import Iterable
from datetime import date, datetime, time, timedelta, tzinfo

# Without a working day in a year of days something is misconfigured; do not loop for ever.
_HORIZON_DAYS = 366


def next_business_day(day: date, *, working_days: Iterable[int], holidays: Iterable[date]) -> date:
    working, closed = set(working_days), set(holidays)
    for ahead in range(1, _HORIZON_DAYS + 1):
        candidate = day + timedelta(days=ahead)
        if candidate.weekday() in working and candidate not in closed:
            return candidate
    raise ValueError("no business day within a year: check the working days and the holiday calendar")


def retrospective_due(
    opened: datetime,
    *,
    hours: int,
    next_business_day: bool,
    zone: tzinfo,
    closes: time,
    working_days: Iterable[int],
    holidays: Iterable[date],
) -> datetime:
    """The deadline, as an aware datetime in the time zone of ``opened``."""
    if not next_business_day:
        return opened + timedelta(hours=hours)
    local = opened.astimezone(zone)
    day = _next_business_day(local.date(), working_days=working_days, holidays=holidays)
    return datetime.combine(day, closes, tzinfo=zone).astimezone(opened.tzinfo)


_next_business_day = next_business_day
