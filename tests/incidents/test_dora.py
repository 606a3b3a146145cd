"""DORA classification (Delegated Regulation 2024/1772, Art. 8-9): every threshold at, below and
above its limit, and the combination rule. Pure: no database."""

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from incidents.dora import (
    DEFAULT_THRESHOLDS,
    Criteria,
    Criterion,
    ReportKind,
    Thresholds,
    add_month,
    classify,
    criteria_met,
    overdue,
    recurring_tags,
    report_due,
)

C = Criterion

# (criterion values, the criterion they would meet, met?)
THRESHOLDS: list[tuple[dict[str, Any], Criterion, bool]] = [
    ({"clients_percent": 9.99}, C.CLIENTS_COUNTERPARTS_TRANSACTIONS, False),
    ({"clients_percent": 10.0}, C.CLIENTS_COUNTERPARTS_TRANSACTIONS, False),
    ({"clients_percent": 10.01}, C.CLIENTS_COUNTERPARTS_TRANSACTIONS, True),
    ({"clients_number": 99_999}, C.CLIENTS_COUNTERPARTS_TRANSACTIONS, False),
    ({"clients_number": 100_000}, C.CLIENTS_COUNTERPARTS_TRANSACTIONS, False),
    ({"clients_number": 100_001}, C.CLIENTS_COUNTERPARTS_TRANSACTIONS, True),
    ({"counterparts_percent": 29.9}, C.CLIENTS_COUNTERPARTS_TRANSACTIONS, False),
    ({"counterparts_percent": 30.0}, C.CLIENTS_COUNTERPARTS_TRANSACTIONS, False),
    ({"counterparts_percent": 30.1}, C.CLIENTS_COUNTERPARTS_TRANSACTIONS, True),
    ({"transactions_percent_number": 9.9}, C.CLIENTS_COUNTERPARTS_TRANSACTIONS, False),
    ({"transactions_percent_number": 10.0}, C.CLIENTS_COUNTERPARTS_TRANSACTIONS, False),
    ({"transactions_percent_number": 10.1}, C.CLIENTS_COUNTERPARTS_TRANSACTIONS, True),
    ({"transactions_percent_value": 9.9}, C.CLIENTS_COUNTERPARTS_TRANSACTIONS, False),
    ({"transactions_percent_value": 10.0}, C.CLIENTS_COUNTERPARTS_TRANSACTIONS, False),
    ({"transactions_percent_value": 10.1}, C.CLIENTS_COUNTERPARTS_TRANSACTIONS, True),
    ({"reputational_media": True}, C.REPUTATIONAL_IMPACT, True),
    ({"reputational_complaints": True}, C.REPUTATIONAL_IMPACT, True),
    ({"reputational_regulatory": True}, C.REPUTATIONAL_IMPACT, True),
    ({"reputational_client_loss": True}, C.REPUTATIONAL_IMPACT, True),
    ({}, C.REPUTATIONAL_IMPACT, False),
    ({"duration_hours": 23.9}, C.DURATION_AND_DOWNTIME, False),
    ({"duration_hours": 24.0}, C.DURATION_AND_DOWNTIME, False),
    ({"duration_hours": 24.1}, C.DURATION_AND_DOWNTIME, True),
    ({"downtime_hours": 1.9}, C.DURATION_AND_DOWNTIME, False),
    ({"downtime_hours": 2.0}, C.DURATION_AND_DOWNTIME, False),
    ({"downtime_hours": 2.1}, C.DURATION_AND_DOWNTIME, True),
    ({"member_states": 1}, C.GEOGRAPHICAL_SPREAD, False),
    ({"member_states": 2}, C.GEOGRAPHICAL_SPREAD, True),  # "two or more"
    ({"member_states": 3}, C.GEOGRAPHICAL_SPREAD, True),
    ({"data_losses": False}, C.DATA_LOSSES, False),
    ({"data_losses": True}, C.DATA_LOSSES, True),
    ({"economic_eur": 99_999.99}, C.ECONOMIC_IMPACT, False),
    ({"economic_eur": 100_000}, C.ECONOMIC_IMPACT, False),
    ({"economic_eur": 100_000.01}, C.ECONOMIC_IMPACT, True),
]


@pytest.mark.parametrize(("values", "criterion", "met"), THRESHOLDS)
def test_each_threshold_at_below_and_above_its_limit(values: dict[str, Any], criterion: Criterion, met: bool) -> None:
    assert (criterion in criteria_met(Criteria(**values))) is met
    assert len(criteria_met(Criteria(**values))) == int(met)  # and it meets nothing else


TWO = {"clients_percent": 11, "economic_eur": 200_000}
ONE = {"clients_percent": 11}


@pytest.mark.parametrize(
    ("values", "major"),
    [
        ({"critical_services_affected": True, **TWO}, True),
        ({"critical_services_affected": True, **ONE}, False),
        ({"critical_services_affected": True}, False),
        ({"critical_services_affected": False, **TWO}, False),  # no critical service: never major
        ({"critical_services_affected": True, "malicious_access_with_possible_data_loss": True}, True),
        ({"critical_services_affected": False, "malicious_access_with_possible_data_loss": True, **TWO}, False),
        (
            {
                "critical_services_affected": True,
                "clients_number": 100_001,
                "counterparts_percent": 31,
                "transactions_percent_value": 11,
            },
            False,  # three thresholds of one criterion are one criterion met
        ),
        ({"critical_services_affected": True, "duration_hours": 25, "member_states": 2}, True),
        ({"critical_services_affected": True, "reputational_media": True, "data_losses": True}, True),
    ],
)
def test_the_combination_rule(values: dict[str, Any], major: bool) -> None:
    result = classify(Criteria(**values))
    assert result.major is major, result.why
    assert result.thresholds_version == DEFAULT_THRESHOLDS.version


def test_thresholds_are_versioned_data() -> None:
    stricter = Thresholds.from_json({"version": "bank-2027@1", "economic_eur_over": 50_000})
    criteria = Criteria(critical_services_affected=True, economic_eur=60_000, member_states=2)

    assert classify(criteria).major is False
    assert classify(criteria, stricter).major is True
    assert classify(criteria, stricter).thresholds_version == "bank-2027@1"
    with pytest.raises(ValueError, match="unknown"):
        Thresholds.from_json({"economic_eur_over_typo": 1})


T0 = datetime(2026, 1, 30, 8, 0, tzinfo=UTC)


def test_the_reporting_clock() -> None:
    detected = T0
    classified = T0 + timedelta(hours=2)
    assert report_due(ReportKind.INITIAL, classified_at=classified, detected_at=detected, sent={}) == T0 + timedelta(
        hours=6
    )
    late_classified = T0 + timedelta(hours=22)  # 4 h after would be beyond 24 h after detection
    assert report_due(
        ReportKind.INITIAL, classified_at=late_classified, detected_at=detected, sent={}
    ) == T0 + timedelta(hours=24)
    sent_initial = T0 + timedelta(hours=5)
    intermediate = report_due(
        ReportKind.INTERMEDIATE, classified_at=classified, detected_at=detected, sent={ReportKind.INITIAL: sent_initial}
    )
    assert intermediate == sent_initial + timedelta(hours=72)
    final = report_due(
        ReportKind.FINAL,
        classified_at=classified,
        detected_at=detected,
        sent={ReportKind.INITIAL: sent_initial, ReportKind.INTERMEDIATE: datetime(2026, 1, 31, 9, 0, tzinfo=UTC)},
    )
    assert final == datetime(2026, 2, 28, 9, 0, tzinfo=UTC)  # a month later, the month being shorter
    assert add_month(datetime(2026, 12, 15, tzinfo=UTC)) == datetime(2027, 1, 15, tzinfo=UTC)
    assert overdue(T0, None, T0 + timedelta(seconds=1))
    assert not overdue(T0, None, T0)
    assert not overdue(T0, T0 + timedelta(days=1), T0 + timedelta(days=2))  # sent late, but sent


def test_the_same_root_cause_twice_within_six_months_recurs() -> None:
    occurrences = [
        ("database", T0),
        ("database", T0 + timedelta(days=150)),
        ("network", T0),
        ("network", T0 + timedelta(days=200)),
        ("code", T0),
    ]
    assert recurring_tags(occurrences) == {"database"}
