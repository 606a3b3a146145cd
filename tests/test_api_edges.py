"""The API's edges (issue 13): whatever a client sends to /api/, the answer is JSON of the one
error shape, never Django's HTML page and never a 500. Each case is one that was seen."""

import json
from typing import Any

import pytest
from django.test import Client
from django.test.client import encode_multipart

from audit.models import AuditEvent
from changelogs.models import Changelog, Evidence
from tests.changelogs.evidence_files import sarif_clean
from tests.conftest import Cast
from tests.factories import DIGEST, changelog_make


def client_for(token: str) -> Client:
    # raise_request_exception=False: a server error must show as the 500 a client would see.
    return Client(raise_request_exception=False, HTTP_AUTHORIZATION=f"Bearer {token}")


def assert_error(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.content[:300]
    assert response["Content-Type"] == "application/json", response.content[:300]
    body: dict[str, Any] = response.json()
    assert set(body) == {"code", "message", "fields"}
    assert body["code"] == code, body
    return body


@pytest.mark.parametrize("debug", [False, True], ids=["production", "DEBUG"])
@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/changelogs/not-a-uuid/",  # a path parameter that does not fit its converter
        "/api/v1/changelogs/00000000-0000-0000-0000-00000000000g/evidence/",
        "/api/v1/changelogs/00000000-0000-0000-0000-000000000000/revisions/one",
        "/api/v1/audit/checkpoints/-1",
        "/api/v1/changelogs",  # no trailing slash: not a redirect to HTML either
        "/api/v2/anything",
        "/api/",
    ],
)
def test_an_unmatched_api_url_is_a_json_404(cast: Cast, settings: Any, debug: bool, path: str) -> None:
    settings.DEBUG = debug

    response = client_for(cast.pipeline.token).get(path)

    assert_error(response, 404, "not_found")


def test_outside_the_api_a_missing_page_is_still_a_page(cast: Cast) -> None:
    response = Client(raise_request_exception=False).get("/no-such-page")

    assert response.status_code == 404
    assert response["Content-Type"].startswith("text/html")


@pytest.mark.parametrize(
    ("authorization", "code"),
    [
        ("Bearer garbage", "authentication_failed"),  # malformed
        ("Bearer rgp_aaaaaaaa_" + "a" * 40, "authentication_failed"),  # well formed, unknown
    ],
)
def test_the_schema_with_a_bad_token_is_a_401_not_a_yaml_500(cast: Cast, authorization: str, code: str) -> None:
    response = Client(raise_request_exception=False, HTTP_AUTHORIZATION=authorization).get("/api/schema/")

    assert_error(response, 401, code)
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_a_post_to_the_schema_is_a_405_not_a_yaml_500(cast: Cast) -> None:
    response = client_for(cast.pipeline.token).post("/api/schema/")

    assert_error(response, 405, "method_not_allowed")


def test_the_schema_itself_is_still_served(cast: Cast) -> None:
    response = client_for(cast.pipeline.token).get("/api/schema/")

    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/vnd.oai.openapi")
    assert b"openapi: 3" in response.content


@pytest.mark.parametrize(
    "path", ["/api/v1/gate/check", "/api/v1/changelogs/", "/api/v1/deployments/", "/api/v1/packs/"]
)
def test_a_body_of_100000_nested_brackets_is_too_deep_on_every_json_endpoint(cast: Cast, path: str) -> None:
    client = Client(raise_request_exception=False)
    client.force_login(cast.admin)  # the admin may post to every one of them (packs are not for pipelines)

    response = client.post(path, data="[" * 100_000, content_type="application/json")

    assert_error(response, 400, "too_deep")


def test_nesting_is_refused_past_32_levels_and_read_up_to_them(cast: Cast) -> None:
    client = client_for(cast.pipeline.token)
    body = {"service": "payments-api", "environment": "production", "artifact_digest": DIGEST}

    # The body is level 1; 31 nested lists inside it reach level 32.
    at_the_limit = client.post("/api/v1/gate/check", {**body, "y": _nested(31)}, content_type="application/json")
    past_it = client.post("/api/v1/gate/check", {**body, "y": _nested(32)}, content_type="application/json")

    assert assert_error(at_the_limit, 400, "invalid_input")["fields"]["y"][0]["code"] == "unknown_field"
    assert_error(past_it, 400, "too_deep")


def _nested(levels: int) -> Any:
    value: Any = []
    for _ in range(levels - 1):
        value = [value]
    return value


def test_a_json_body_over_the_memory_limit_is_a_json_413(cast: Cast, settings: Any) -> None:
    body = json.dumps({"service": "payments-api", "environment": "production", "artifact_digest": "a" * 3_000_000})

    response = client_for(cast.pipeline.token).post("/api/v1/gate/check", data=body, content_type="application/json")

    assert_error(response, 413, "payload_too_large")


def test_a_body_that_is_not_utf8_is_malformed(cast: Cast) -> None:
    response = client_for(cast.pipeline.token).post(
        "/api/v1/gate/check", data=b'{"service": "\xff"}', content_type="application/json"
    )

    assert_error(response, 400, "malformed_request")


def _multipart(client: Client, changelog: Changelog, fields: dict[str, Any]) -> Any:
    boundary = "releasegate-edges"
    return client.post(
        f"/api/v1/changelogs/{changelog.pk}/evidence/",
        data=encode_multipart(boundary, fields),
        content_type=f"multipart/form-data; boundary={boundary}",
    )


def test_more_than_1000_multipart_fields_is_a_json_400_and_stores_nothing(cast: Cast) -> None:
    changelog = changelog_make(service=cast.payments_api, by=cast.pipeline.account)
    events = AuditEvent.objects.count()

    response = _multipart(client_for(cast.pipeline.token), changelog, {f"f{i}": "1" for i in range(1001)})

    assert_error(response, 400, "too_many_fields")
    assert not Evidence.objects.exists()
    assert AuditEvent.objects.count() == events


def test_more_than_100_files_is_a_json_400_and_stores_nothing(cast: Cast) -> None:
    from django.core.files.uploadedfile import SimpleUploadedFile

    changelog = changelog_make(service=cast.payments_api, by=cast.pipeline.account)
    files = {f"file{i}": SimpleUploadedFile(f"f{i}.txt", b"x") for i in range(101)}

    response = _multipart(client_for(cast.pipeline.token), changelog, {"kind": "document", **files})

    assert_error(response, 400, "too_many_files")
    assert not Evidence.objects.exists()


@pytest.mark.parametrize(
    "text",
    [r'"\ud800"', r'"\udc00 and more"', r'"ok \ud83d"'],
    ids=["high alone", "low alone", "high at the end"],
)
def test_a_lone_surrogate_in_a_json_body_is_refused_and_nothing_is_stored(cast: Cast, text: str) -> None:
    body = (
        '{"service": "payments-api", "kind": "train", "reason": ' + text + ', "artifact": {"name": "x", '
        '"version": "1", "digest": "' + DIGEST + '", "source_revision": "0123456789abcdef"}}'
    )
    events = AuditEvent.objects.count()

    response = client_for(cast.pipeline.token).post("/api/v1/changelogs/", data=body, content_type="application/json")

    assert_error(response, 400, "lone_surrogate")
    assert not Changelog.objects.exists()
    assert AuditEvent.objects.count() == events


def test_a_surrogate_pair_is_text_and_reads_as_one_character(cast: Cast) -> None:
    body = {"service": "payments-api", "environment": "production", "artifact_digest": DIGEST}
    text = json.dumps(body)[:-1] + r', "note": "\ud83d\ude80"}'

    response = client_for(cast.pipeline.token).post("/api/v1/gate/check", data=text, content_type="application/json")

    assert_error(response, 400, "invalid_input")
    assert response.json()["fields"]["note"][0]["code"] == "unknown_field"


def test_a_sarif_upload_with_a_lone_surrogate_is_a_400_with_nothing_stored(cast: Cast) -> None:
    """Seen: 500, with the file left in evidence storage and no row or audit event."""
    changelog = changelog_make(service=cast.payments_api, by=cast.pipeline.account)
    document = json.loads(sarif_clean())
    document["runs"][0]["tool"]["driver"]["name"] = "PLACEHOLDER"
    data = json.dumps(document).replace("PLACEHOLDER", r"scanner \udfff").encode()
    events = AuditEvent.objects.count()

    response = _multipart(
        client_for(cast.pipeline.token),
        changelog,
        {"kind": "security", "file": _file("scan.sarif", data)},
    )

    body = assert_error(response, 400, "lone_surrogate")
    assert body["fields"]["file"][0]["message"].endswith("($.runs[0].tool.driver.name)")
    assert not Evidence.objects.exists()
    assert AuditEvent.objects.count() == events


def _file(name: str, data: bytes) -> Any:
    from django.core.files.uploadedfile import SimpleUploadedFile

    return SimpleUploadedFile(name, data)


def test_a_post_to_an_unmatched_api_url_with_a_session_is_a_json_404_not_the_csrf_page(cast: Cast) -> None:
    """Found by schemathesis: with a session cookie, Django's CSRF check answered the catch-all
    with its HTML 403 page."""
    client = Client(raise_request_exception=False, enforce_csrf_checks=True)
    client.force_login(cast.requester)

    response = client.post("/api/v1/changelogs/%F2%8E%A9%85/submit")

    assert_error(response, 404, "not_found")


def test_a_csrf_refusal_under_the_api_is_json(cast: Cast, rf: Any) -> None:
    from releasegate.views import csrf_failure

    response = csrf_failure(rf.post("/api/v1/anything"), reason="CSRF cookie not set.")

    assert response.status_code == 403
    assert json.loads(response.content)["code"] == "permission_denied"


def test_a_retrospective_status_no_retrospective_has_is_refused(cast: Cast) -> None:
    """Found by schemathesis (--checks all): ?status=AAA was read as "every status"."""
    response = cast.session(cast.auditor).get("/api/v1/exceptions/retrospectives?status=AAA")

    assert response.status_code == 400
    assert response.json()["fields"]["status"][0]["code"] == "invalid_choice"
    assert cast.session(cast.auditor).get("/api/v1/exceptions/retrospectives?status=overdue").status_code == 200
