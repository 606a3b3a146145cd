"""The range of times the service takes from outside: 1970 to 2999 (UTC).

Windows and deadlines are computed from given times (a day before an incident, thirty days
before a period's end, a planned window's end plus the policy's grace); at the edges of what
Python's datetime holds (years 1 and 9999) that arithmetic overflows. No change, incident or
deployment of a bank lies outside this range, so inputs outside it are refused, with this code
and message, by the API's fields (core.api) and by the changelog content's rules alike."""

from datetime import UTC, date, datetime

EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(3000, 1, 1, tzinfo=UTC)  # exclusive
OUT_OF_RANGE = "out_of_range"
TIME_RANGE = "Between 1970-01-01 and 2999-12-31 (UTC)."


def in_range(moment: datetime | date) -> bool:
    """Whether an aware time, or a day, lies in the range."""
    if isinstance(moment, datetime):
        return EARLIEST <= moment < LATEST
    return EARLIEST.date() <= moment < LATEST.date()
