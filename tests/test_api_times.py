"""Times given to the API lie between 1970 and 2999: outside, a 400 ``out_of_range`` on the
field, never a 500.

Found by schemathesis in CI: ``GET /api/v1/incidents/figures?end=0001-01-30T01:00:00Z`` took
thirty days off year 1 and answered 500 (``OverflowError``); so did a weekly review of the week
of 9999-12-31, and an incident started in year 1 or 9999 once its suspects were asked for. A
changelog planned to end in 9999 was stored, and every gate check of it then overflowed adding
the policy's grace to the window's end."""

from typing import Any

import pytest
from drf_spectacular.generators import SchemaGenerator

from audit.models import AuditEvent
from changelogs.models import Changelog
from core.times import TIME_RANGE
from incidents.models import Incident
from tests.conftest import Cast
from tests.factories import DIGEST, changelog_content

TOO_EARLY = "0001-01-30T01:00:00Z"
TOO_LATE = "9999-12-31T23:59:59Z"
TIMES_OUT_OF_RANGE = [TOO_EARLY, TOO_LATE, "1969-12-31T23:59:59Z", "3000-01-01T00:00:00Z", "0001-01-01T00:00:00+01:00"]


def _out_of_range(response: Any, field: str) -> None:
    assert response.status_code == 400, response.content
    body = response.json()
    assert body["code"] == "invalid_input"
    assert body["fields"][field] == [{"code": "out_of_range", "message": TIME_RANGE}]


def _schema() -> dict[str, Any]:
    schema: dict[str, Any] = SchemaGenerator().get_schema(request=None, public=True)
    return schema


def _time_query_parameters() -> list[tuple[str, str, str]]:
    """(path, parameter, format) of every date or date-time query parameter of a GET without
    path parameters, read from the OpenAPI schema so that a new one is swept too."""
    found = []
    for path, operations in _schema()["paths"].items():
        get = operations.get("get")
        if get is None or "{" in path:
            continue
        for parameter in get.get("parameters", []):
            time_format = parameter.get("schema", {}).get("format")
            if parameter["in"] == "query" and time_format in ("date", "date-time"):
                found.append((path, parameter["name"], time_format))
    return found


def test_the_sweep_below_finds_the_time_parameters_it_is_meant_to_cover() -> None:
    swept = {(path, name) for path, name, _ in _time_query_parameters()}
    assert {
        ("/api/v1/incidents/figures", "end"),
        ("/api/v1/incidents/review", "week"),
        ("/api/v1/audit/events/", "after"),
        ("/api/v1/changelogs/", "created_before"),
    } <= swept


@pytest.mark.parametrize(("path", "name", "time_format"), _time_query_parameters())
@pytest.mark.parametrize("edge", ["early", "late"])
def test_every_time_query_parameter_refuses_the_edges_of_the_calendar(
    cast: Cast, path: str, name: str, time_format: str, edge: str
) -> None:
    value = {"early": TOO_EARLY, "late": TOO_LATE}[edge]
    value = value[:10] if time_format == "date" else value
    client = cast.session(cast.admin)

    _out_of_range(client.get(path, {name: value}), name)


def test_every_time_an_input_takes_says_its_range_in_the_schema() -> None:
    """A time field that is not an InstantField or a DayField would not say its range; the
    sweep above cannot reach request bodies, so this is how a new one is caught."""
    schema = _schema()
    unbounded = []
    for name, component in schema["components"]["schemas"].items():
        if not name.endswith("Request"):
            continue
        for field, spec in component.get("properties", {}).items():
            if spec.get("format") in ("date", "date-time") and TIME_RANGE not in spec.get("description", ""):
                unbounded.append(f"{name}.{field}")
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            for parameter in operation.get("parameters", []):
                spec = parameter.get("schema", {})
                if spec.get("format") in ("date", "date-time") and TIME_RANGE not in parameter.get("description", ""):
                    unbounded.append(f"{method.upper()} {path} ?{parameter['name']}")
    assert unbounded == []


@pytest.mark.parametrize("started_at", TIMES_OUT_OF_RANGE)
def test_an_incident_started_outside_the_range_is_refused_and_nothing_is_recorded(cast: Cast, started_at: str) -> None:
    body = {"title": "Card payments time out", "services": ["payments-api"], "severity": "high"}

    response = cast.session(cast.requester).post(
        "/api/v1/incidents/", {**body, "started_at": started_at}, format="json"
    )

    _out_of_range(response, "started_at")
    assert not Incident.objects.exists()
    assert not AuditEvent.objects.filter(action__startswith="incident:").exists()


def test_a_deployment_started_in_year_one_is_refused(cast: Cast) -> None:
    body = {
        "idempotency_key": "run-1",
        "service": "payments-api",
        "environment": "production",
        "artifact_digest": DIGEST,
        "status": "succeeded",
    }

    response = cast.pipeline.client().post("/api/v1/deployments/", {**body, "started_at": TOO_EARLY}, format="json")

    _out_of_range(response, "started_at")


@pytest.mark.parametrize(
    ("query", "status"),
    [
        ({"start": "1970-01-01T00:00:00Z", "end": "1970-01-31T00:00:00Z"}, 200),
        ({"end": "2999-12-31T23:59:59Z", "start": "2999-12-01T00:00:00Z"}, 200),
    ],
)
def test_the_edges_of_the_range_itself_are_answered(cast: Cast, query: dict[str, str], status: int) -> None:
    figures = cast.session(cast.auditor).get("/api/v1/incidents/figures", query)
    review = cast.session(cast.auditor).get("/api/v1/incidents/review", {"week": query["end"][:10]})

    assert (figures.status_code, review.status_code) == (status, status), (figures.content, review.content)
    assert figures.json()["deployments"] == 0
    assert review.json() == []


def test_a_changelog_planned_to_the_end_of_the_calendar_is_refused_and_not_stored(cast: Cast) -> None:
    """Its window's end plus the policy's grace overflowed in the gate's decision (a 500 on every
    gate check of that change) before the content's rules refused such times."""
    window = {"start": "2026-12-01T09:00:00Z", "end": TOO_LATE}
    body = {"service": "payments-api", "kind": "train", **changelog_content(planned_window=window)}

    response = cast.session(cast.requester).post("/api/v1/changelogs/", body, format="json")

    _out_of_range(response, "planned_window.end")
    assert not Changelog.objects.exists()
