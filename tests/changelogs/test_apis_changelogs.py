"""The changelog API as pipelines, people and strangers use it."""

from typing import Any

import pytest
from rest_framework.test import APIClient

from audit.models import AuditEvent
from changelogs.models import Changelog, ChangelogRevision
from tests.conftest import Cast
from tests.factories import OTHER_DIGEST, changelog_content, changelog_make, hotfix_details

LIST = "/api/v1/changelogs/"


def detail(changelog: Changelog) -> str:
    return f"/api/v1/changelogs/{changelog.id}/"


def create_body(**overrides: Any) -> dict[str, Any]:
    return {"service": "payments-api", "kind": "train", **changelog_content(**overrides)}


def caller(cast: Cast, who: str) -> APIClient:
    if who == "pipeline":
        return cast.pipeline.client()
    if who == "other_pipeline":
        return cast.other_pipeline.client()
    if who == "anonymous":
        return APIClient()
    return cast.session(getattr(cast, who))


# who, and the status each endpoint answers: (list, create, read, edit, submit, revisions, revision)
ACCESS = [
    ("pipeline", 200, 201, 200, 200, 200, 200, 200),
    ("requester", 200, 201, 200, 200, 200, 200, 200),
    ("admin", 200, 201, 200, 200, 200, 200, 200),
    ("auditor", 200, 400, 200, 403, 403, 200, 200),
    ("other_pipeline", 200, 400, 404, 404, 404, 404, 404),
    ("approver", 200, 400, 200, 403, 403, 200, 200),  # a signing authority of the domain reads, never edits
    ("other_approver", 200, 400, 404, 404, 404, 404, 404),
    ("anonymous", 401, 401, 401, 401, 401, 401, 401),
]


@pytest.mark.parametrize(("who", "list_", "create", "read", "edit", "submit", "revisions", "revision"), ACCESS)
def test_every_endpoint_answers_each_caller_as_expected(
    cast: Cast, who: str, list_: int, create: int, read: int, edit: int, submit: int, revisions: int, revision: int
) -> None:
    changelog = changelog_make(service=cast.payments_api)
    client = caller(cast, who)

    listed = client.get(LIST)
    assert listed.status_code == list_
    if list_ == 200:
        visible = {item["id"] for item in listed.json()["results"]}
        assert (str(changelog.id) in visible) == (read == 200)

    assert client.post(LIST, create_body(), format="json").status_code == create
    assert client.get(detail(changelog)).status_code == read
    assert client.patch(detail(changelog), {"reason": "Changed."}, format="json").status_code == edit
    assert client.post(f"{detail(changelog)}submit").status_code == submit
    assert client.get(f"{detail(changelog)}revisions/").status_code == revisions
    assert client.get(f"{detail(changelog)}revisions/1").status_code == revision


def test_errors_have_one_shape_with_a_stable_code(cast: Cast) -> None:
    changelog = changelog_make(service=cast.payments_api)

    unauthenticated = APIClient().get(LIST)
    hidden = cast.other_pipeline.client().get(detail(changelog))
    forbidden = cast.session(cast.auditor).post(f"{detail(changelog)}submit")

    assert unauthenticated.json() == {
        "code": "not_authenticated",
        "message": "Authentication credentials were not provided.",
        "fields": {},
    }
    assert unauthenticated["WWW-Authenticate"].startswith("Bearer")
    assert hidden.json()["code"] == "changelog_not_found"
    assert forbidden.json()["code"] == "changelog_read_only"


def test_a_pipeline_creates_edits_and_submits_a_changelog(cast: Cast) -> None:
    client = cast.pipeline.client()

    created = client.post(LIST, create_body(), format="json")
    assert created.status_code == 201, created.json()
    body = created.json()
    assert body["service"] == "payments-api"
    assert body["domain"] == "payments"
    assert body["status"] == "draft"
    assert body["created_by"] == "svc-payments-ci"
    assert body["revision"]["number"] == 1
    assert body["revision"]["content_hash"] == ""
    assert body["revision"]["content"]["artifact"]["digest"] == "sha256:" + "ab" * 32

    url = f"{LIST}{body['id']}/"
    edited = client.patch(url, {"reason": "Fixes rounding of card fees (FEES-12)."}, format="json")
    assert edited.status_code == 200
    assert edited.json()["revision"]["number"] == 1
    assert edited.json()["revision"]["content"]["reason"] == "Fixes rounding of card fees (FEES-12)."

    submitted = client.post(f"{url}submit")
    assert submitted.status_code == 200
    revision = submitted.json()["revision"]
    assert submitted.json()["status"] == "submitted"
    assert revision["status"] == "submitted"
    assert len(revision["content_hash"]) == 64
    assert revision["submitted_by"] == "svc-payments-ci"


def test_editing_a_submitted_changelog_makes_a_new_revision_and_keeps_the_old_one(cast: Cast) -> None:
    changelog = changelog_make(service=cast.payments_api, submitted=True)
    first_hash = ChangelogRevision.objects.get(changelog=changelog, number=1).content_hash
    client = cast.pipeline.client()

    edited = client.patch(detail(changelog), {"reason": "A better reason."}, format="json")
    resubmitted = client.post(f"{detail(changelog)}submit")

    assert edited.json()["status"] == "draft"
    assert edited.json()["revision"]["number"] == 2
    assert resubmitted.json()["revision"]["number"] == 2
    second_hash = resubmitted.json()["revision"]["content_hash"]
    assert second_hash != first_hash
    old = client.get(f"{detail(changelog)}revisions/1").json()
    assert old["status"] == "superseded"
    assert old["content_hash"] == first_hash
    assert old["content"]["reason"] == "Fixes rounding of card fees."
    listed = client.get(f"{detail(changelog)}revisions/").json()
    assert [(r["number"], r["status"]) for r in listed] == [(1, "superseded"), (2, "submitted")]


def test_submitting_twice_is_a_conflict(cast: Cast) -> None:
    changelog = changelog_make(service=cast.payments_api, submitted=True)

    response = cast.pipeline.client().post(f"{detail(changelog)}submit")

    assert response.status_code == 409
    assert response.json()["code"] == "changelog_not_draft"


def test_a_missing_revision_is_not_found(cast: Cast) -> None:
    changelog = changelog_make(service=cast.payments_api)

    response = cast.pipeline.client().get(f"{detail(changelog)}revisions/7")

    assert response.status_code == 404
    assert response.json()["code"] == "revision_not_found"


INVALID = [
    (
        "bad digest",
        {"artifact": {**changelog_content()["artifact"], "digest": "sha256:abc"}},
        "artifact.digest",
        "invalid_digest",
    ),
    (
        "digest in upper case",
        {"artifact": {**changelog_content()["artifact"], "digest": "sha256:" + "AB" * 32}},
        "artifact.digest",
        "invalid_digest",
    ),
    ("no deploy steps", {"deploy_steps": []}, "deploy_steps", "deploy_steps_missing"),
    (
        "data changes undeclared",
        {"data_changes": [], "no_data_changes": False},
        "data_changes",
        "data_changes_undeclared",
    ),
    (
        "data changes listed and declared none",
        {
            "data_changes": [
                {
                    "description": "Add index",
                    "version": "V42",
                    "digest": OTHER_DIGEST,
                    "rollback": "Drop it",
                    "dry_run_evidence": "2" * 64,
                    "backup_evidence": "3" * 64,
                }
            ],
            "no_data_changes": True,
        },
        "no_data_changes",
        "data_changes_contradictory",
    ),
    (
        "data change without rollback",
        {
            "data_changes": [
                {
                    "description": "Add index",
                    "version": "V42",
                    "digest": OTHER_DIGEST,
                    "dry_run_evidence": "2" * 64,
                    "backup_evidence": "3" * 64,
                }
            ],
            "no_data_changes": False,
        },
        "data_changes.0.rollback",
        "required",
    ),
    ("hotfix without incident reference", {"kind": "hotfix", "hotfix": None}, "hotfix", "hotfix_details_missing"),
    ("hotfix details on a train", {"hotfix": hotfix_details()}, "hotfix", "hotfix_details_not_allowed"),
    ("unknown service", {"service": "no-such-service"}, "service", "unknown_service"),
    ("another team's service", {"service": "transfers-api"}, "service", "unknown_service"),
    # PostgreSQL text cannot hold NUL: this was a 500 until the slug was checked first.
    ("a service name no slug can be", {"service": "payments\x00-api"}, "service", "unknown_service"),
    ("unknown kind", {"kind": "yolo"}, "kind", "invalid_kind"),
    (
        "window ends before it starts",
        {"planned_window": {"start": "2026-12-01T10:00:00Z", "end": "2026-12-01T09:00:00Z"}},
        "planned_window.end",
        "window_ends_before_start",
    ),
    (
        "security impact not described",
        {"security_impact": {"declared": True, "description": ""}},
        "security_impact.description",
        "security_impact_undescribed",
    ),
    ("a typo in a field name", {"deploy_step": []}, "deploy_step", "unknown_field"),
    ("missing rollback plan", {"rollback_plan": ""}, "rollback_plan", "blank"),
]


@pytest.mark.parametrize(("case", "overrides", "field", "code"), INVALID, ids=[case[0] for case in INVALID])
@pytest.mark.requirement("PR-01")
def test_an_invalid_changelog_is_refused_with_a_stable_code_and_creates_nothing(
    cast: Cast, case: str, overrides: dict[str, Any], field: str, code: str
) -> None:
    body = create_body()
    body.update(overrides)
    changelogs_before = Changelog.objects.count()
    events_before = AuditEvent.objects.count()

    response = cast.pipeline.client().post(LIST, body, format="json")

    assert response.status_code == 400
    error = response.json()
    assert error["code"] in {"invalid_input", "unknown_service", "invalid_kind"}
    assert code in [problem["code"] for problem in error["fields"][field]], error
    assert Changelog.objects.count() == changelogs_before
    assert AuditEvent.objects.count() == events_before


def test_an_invalid_edit_leaves_the_draft_as_it_was(cast: Cast) -> None:
    changelog = changelog_make(service=cast.payments_api)
    before = cast.pipeline.client().get(detail(changelog)).json()

    response = cast.pipeline.client().patch(detail(changelog), {"deploy_steps": []}, format="json")

    assert response.status_code == 400
    assert response.json()["fields"]["deploy_steps"][0]["code"] == "deploy_steps_missing"
    assert cast.pipeline.client().get(detail(changelog)).json() == before


def test_a_body_that_is_not_json_is_refused(cast: Cast) -> None:
    response = cast.pipeline.client().post(LIST, "{not json", content_type="application/json")

    assert response.status_code == 400
    assert response.json()["code"] == "malformed_request"


@pytest.mark.requirement("PR-08")
def test_a_hotfix_carries_its_incident(cast: Cast) -> None:
    response = cast.pipeline.client().post(LIST, create_body(kind="hotfix", hotfix=hotfix_details()), format="json")

    assert response.status_code == 201, response.json()
    assert response.json()["kind"] == "hotfix"
    assert response.json()["revision"]["content"]["hotfix"]["incident_reference"] == "INC-4711"


def test_the_list_filters_by_service_domain_kind_status_and_date(cast: Cast) -> None:
    from django.utils import timezone

    draft = changelog_make(service=cast.payments_api)
    submitted = changelog_make(service=cast.payments_api, submitted=True)
    hotfix = changelog_make(service=cast.payments_api, kind="hotfix")
    elsewhere = changelog_make(service=cast.transfers_api)
    admin = cast.session(cast.admin)

    def ids(query: str) -> set[str]:
        return {item["id"] for item in admin.get(f"{LIST}?{query}").json()["results"]}

    assert ids("service=payments-api") == {str(draft.id), str(submitted.id), str(hotfix.id)}
    assert ids("domain=transfers") == {str(elsewhere.id)}
    assert ids("kind=hotfix") == {str(hotfix.id)}
    assert ids("status=submitted") == {str(submitted.id)}
    tomorrow = (timezone.now() + timezone.timedelta(days=1)).isoformat().replace("+00:00", "Z")
    assert ids(f"created_before={tomorrow}") == {str(c.id) for c in (draft, submitted, hotfix, elsewhere)}
    assert ids(f"created_after={tomorrow}") == set()
    assert admin.get(f"{LIST}?status=nonsense").status_code == 400


def test_the_list_pages_with_a_cursor(cast: Cast) -> None:
    made = {str(changelog_make(service=cast.payments_api).id) for _ in range(5)}
    client = cast.pipeline.client()

    first = client.get(f"{LIST}?limit=2").json()
    seen = [item["id"] for item in first["results"]]
    next_url = first["next"]
    while next_url:
        page = client.get(next_url).json()
        seen += [item["id"] for item in page["results"]]
        next_url = page["next"]

    assert len(seen) == 5
    assert set(seen) == made


def test_the_catalog_is_readable(cast: Cast) -> None:
    from tests.factories import JourneyFactory

    JourneyFactory(journey_id="PAY-001", domain=cast.payments, critical=True)
    JourneyFactory(journey_id="PAY-003", domain=cast.payments, critical=False)
    client = cast.pipeline.client()

    assert {d["slug"] for d in client.get("/api/v1/domains/").json()} == {"payments", "transfers"}
    services = {s["slug"]: s["domain"] for s in client.get("/api/v1/services/").json()}
    assert services == {"payments-api": "payments", "transfers-api": "transfers"}
    critical = client.get("/api/v1/journeys/?domain=payments&critical=true").json()
    assert [j["journey_id"] for j in critical] == ["PAY-001"]
    assert APIClient().get("/api/v1/domains/").status_code == 401
