"""DORA classification of ICT-related incidents and the reporting clock: pure code, no Django.

Regulation (EU) 2022/2554 (DORA) Art. 17-19 and Commission Delegated Regulation (EU) 2024/1772.
An incident is **major** (Art. 8 of the Delegated Regulation) when it affected critical services
and either

- malicious unauthorised access to network and information systems was identified that may
  result in data losses, or
- the materiality thresholds of at least two of the other criteria are met (Art. 9):
  clients, financial counterparts and transactions; reputational impact; duration and service
  downtime; geographical spread; data losses; economic impact.

The thresholds are versioned policy data (``Thresholds``, stored by ``incidents.models.
DoraThresholdVersion``): a classification records the version it used, so that an incident
classified under an earlier version can still be explained.

The reporting clock of a major incident (Art. 19 DORA; the implementing standards' time
limits): the initial notification is due 4 hours after classification and at most 24 hours
after detection; the intermediate report 72 hours after the initial notification (as sent,
else as due); the final report one month after the intermediate report.
"""

import calendar
import itertools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any


class Criterion(StrEnum):
    CLIENTS_COUNTERPARTS_TRANSACTIONS = "clients_counterparts_transactions"
    REPUTATIONAL_IMPACT = "reputational_impact"
    DURATION_AND_DOWNTIME = "duration_and_downtime"
    GEOGRAPHICAL_SPREAD = "geographical_spread"
    DATA_LOSSES = "data_losses"
    ECONOMIC_IMPACT = "economic_impact"


def _known(cls: type[Any], data: Mapping[str, Any], *, what: str) -> dict[str, Any]:
    """``data`` as the dataclass's fields, refusing a name it does not have (ValueError)."""
    unknown = sorted(set(data) - {f.name for f in fields(cls)})
    if unknown:
        raise ValueError(f"unknown DORA {what}: {', '.join(unknown)}")
    return dict(data)


@dataclass(frozen=True)
class Thresholds:
    """The materiality thresholds of Art. 9. "over" limits are strict (a value at the limit does
    not meet it); the Member States count is "two or more" (at the limit meets it)."""

    version: str = "EU-2024/1772@1"
    clients_percent_over: float = 10.0
    clients_number_over: int = 100_000
    counterparts_percent_over: float = 30.0
    transactions_percent_over: float = 10.0  # of the daily average, by number or by value
    duration_hours_over: float = 24.0
    downtime_hours_over: float = 2.0  # of critical functions
    member_states_at_least: int = 2
    economic_eur_over: float = 100_000.0
    minimum_criteria_met: int = 2  # besides critical services, without malicious access

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "Thresholds":
        return cls(**_known(cls, data, what="threshold(s)"))

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


DEFAULT_THRESHOLDS = Thresholds()


@dataclass(frozen=True)
class Criteria:
    """The values of the classification criteria recorded for one incident."""

    critical_services_affected: bool = False
    malicious_access_with_possible_data_loss: bool = False
    clients_percent: float = 0.0
    clients_number: int = 0
    counterparts_percent: float = 0.0
    transactions_percent_number: float = 0.0
    transactions_percent_value: float = 0.0
    reputational_media: bool = False  # media attention
    reputational_complaints: bool = False  # repeated complaints from clients or counterparts
    reputational_regulatory: bool = False  # unable to meet regulatory requirements
    reputational_client_loss: bool = False  # likely loss of clients or counterparts
    duration_hours: float = 0.0
    downtime_hours: float = 0.0
    member_states: int = 0
    data_losses: bool = False  # availability, authenticity, integrity or confidentiality
    economic_eur: float = 0.0

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "Criteria":
        return cls(**_known(cls, data, what="criteria"))

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Classification:
    major: bool
    met: tuple[Criterion, ...]  # the materiality thresholds met, in Criterion order
    why: str
    thresholds_version: str


def criteria_met(criteria: Criteria, thresholds: Thresholds = DEFAULT_THRESHOLDS) -> tuple[Criterion, ...]:
    c, t = criteria, thresholds
    met: list[Criterion] = []
    if (
        c.clients_percent > t.clients_percent_over
        or c.clients_number > t.clients_number_over
        or c.counterparts_percent > t.counterparts_percent_over
        or c.transactions_percent_number > t.transactions_percent_over
        or c.transactions_percent_value > t.transactions_percent_over
    ):
        met.append(Criterion.CLIENTS_COUNTERPARTS_TRANSACTIONS)
    if c.reputational_media or c.reputational_complaints or c.reputational_regulatory or c.reputational_client_loss:
        met.append(Criterion.REPUTATIONAL_IMPACT)
    if c.duration_hours > t.duration_hours_over or c.downtime_hours > t.downtime_hours_over:
        met.append(Criterion.DURATION_AND_DOWNTIME)
    if c.member_states >= t.member_states_at_least:
        met.append(Criterion.GEOGRAPHICAL_SPREAD)
    if c.data_losses:
        met.append(Criterion.DATA_LOSSES)
    if c.economic_eur > t.economic_eur_over:
        met.append(Criterion.ECONOMIC_IMPACT)
    return tuple(met)


def classify(criteria: Criteria, thresholds: Thresholds = DEFAULT_THRESHOLDS) -> Classification:
    met = criteria_met(criteria, thresholds)
    names = ", ".join(met) or "none"
    if not criteria.critical_services_affected:
        return Classification(
            False, met, f"No critical service affected (thresholds met: {names}).", thresholds.version
        )
    if criteria.malicious_access_with_possible_data_loss:
        return Classification(
            True,
            met,
            "Critical services affected and malicious unauthorised access that may lose data.",
            thresholds.version,
        )
    if len(met) >= thresholds.minimum_criteria_met:
        return Classification(
            True,
            met,
            f"Critical services affected and {len(met)} materiality thresholds met: {names}.",
            thresholds.version,
        )
    return Classification(
        False,
        met,
        f"Critical services affected but only {len(met)} materiality threshold(s) met ({names}); "
        f"{thresholds.minimum_criteria_met} are needed.",
        thresholds.version,
    )


# --- The reporting clock of a major incident ------------------------------------------------------


class ReportKind(StrEnum):
    INITIAL = "initial"
    INTERMEDIATE = "intermediate"
    FINAL = "final"


INITIAL_AFTER_CLASSIFICATION = timedelta(hours=4)
INITIAL_AFTER_DETECTION = timedelta(hours=24)
INTERMEDIATE_AFTER_INITIAL = timedelta(hours=72)


def add_month(moment: datetime) -> datetime:
    """The same day and time one calendar month later (the month's last day when it is shorter)."""
    year, month = (moment.year + 1, 1) if moment.month == 12 else (moment.year, moment.month + 1)
    day = min(moment.day, calendar.monthrange(year, month)[1])
    return moment.replace(year=year, month=month, day=day)


def initial_due(*, classified_at: datetime, detected_at: datetime) -> datetime:
    return min(classified_at + INITIAL_AFTER_CLASSIFICATION, detected_at + INITIAL_AFTER_DETECTION)


def report_due(
    kind: ReportKind, *, classified_at: datetime, detected_at: datetime, sent: Mapping[ReportKind, datetime]
) -> datetime:
    """When the report of this kind is due, given when the earlier ones were sent (a report not
    yet sent counts from when it was due: the clock does not wait for a late report)."""
    first = initial_due(classified_at=classified_at, detected_at=detected_at)
    if kind is ReportKind.INITIAL:
        return first
    intermediate = sent.get(ReportKind.INITIAL, first) + INTERMEDIATE_AFTER_INITIAL
    if kind is ReportKind.INTERMEDIATE:
        return intermediate
    return add_month(sent.get(ReportKind.INTERMEDIATE, intermediate))


def overdue(due_at: datetime, sent_at: datetime | None, now: datetime) -> bool:
    return sent_at is None and now > due_at


# --- Recurring incidents (Art. 8(2)): the same root cause twice within six months ------------------

RECURRENCE_WINDOW = timedelta(days=183)


def recurring_tags(occurrences: Iterable[tuple[str, datetime]], *, window: timedelta = RECURRENCE_WINDOW) -> set[str]:
    """The root-cause tags that occur at least twice within ``window`` of each other."""
    by_tag: dict[str, list[datetime]] = {}
    for tag, moment in occurrences:
        by_tag.setdefault(tag, []).append(moment)
    found: set[str] = set()
    for tag, moments in by_tag.items():
        ordered: Sequence[datetime] = sorted(moments)
        if any(later - earlier <= window for earlier, later in itertools.pairwise(ordered)):
            found.add(tag)
    return found
