"""API tokens have scopes chosen when they are issued, and a maximum lifetime (issue 13).

Seen: every pipeline token had every right of its service account. A token stolen from the
job that only asks the gate could create and submit changelogs, upload evidence and report
deployments. Now each request needs the scope of its operation."""

from datetime import timedelta
from io import StringIO
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from rest_framework.test import APIClient

from audit.models import AuditEvent
from changelogs.models import Changelog, Evidence
from releasegate.errors import InvalidInput
from releasegate.models import ApiToken, Deployment, GateDecision
from releasegate.services import api_token_issue
from releasegate.tokens import ALL_SCOPES, scopes_parse
from tests.changelogs.evidence_files import sarif_clean
from tests.conftest import Cast
from tests.factories import DIGEST, FACTORY_ACTOR, ServiceFactory, changelog_content, changelog_make


def token_with(cast: Cast, *scopes: str) -> APIClient:
    _, plain = api_token_issue(acting_user=FACTORY_ACTOR, account=cast.pipeline.account, name="scoped", scopes=scopes)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {plain}")
    return client


def operations(changelog: Changelog) -> list[tuple[str, str, str, dict[str, Any], str]]:
    """(scope, method, path, body, format) of each operation a pipeline performs."""
    url = f"/api/v1/changelogs/{changelog.pk}"
    return [
        (
            "changelogs",
            "post",
            "/api/v1/changelogs/",
            {"service": "payments-api", "kind": "train", **changelog_content()},
            "json",
        ),
        ("changelogs", "patch", f"{url}/", {"reason": "Edited"}, "json"),
        ("evidence", "post", f"{url}/evidence/", {"kind": "security", "file": _file()}, "multipart"),
        ("changelogs", "post", f"{url}/submit", {}, "json"),
        (
            "gate",
            "post",
            "/api/v1/gate/check",
            {"service": "payments-api", "environment": "production", "artifact_digest": DIGEST},
            "json",
        ),
        (
            "deployments",
            "post",
            "/api/v1/deployments/",
            {
                "idempotency_key": "run-1",
                "service": "payments-api",
                "environment": "production",
                "artifact_digest": DIGEST,
                "status": "started",
                "started_at": "2026-12-01T09:00:00Z",
            },
            "json",
        ),
        ("read", "get", "/api/v1/changelogs/", {}, "json"),
        ("read", "get", f"{url}/", {}, "json"),
        ("read", "get", f"{url}/readiness", {}, "json"),
        ("read", "get", "/api/v1/deployments/", {}, "json"),
    ]


def _file() -> Any:
    from django.core.files.uploadedfile import SimpleUploadedFile

    return SimpleUploadedFile("semgrep.sarif", sarif_clean())


def call(client: APIClient, method: str, path: str, body: dict[str, Any], fmt: str) -> Any:
    if method == "get":
        return client.get(path)
    return getattr(client, method)(path, body, format=fmt)


@pytest.mark.parametrize("scope", ALL_SCOPES)
def test_each_operation_needs_its_scope_and_a_token_without_it_changes_nothing(cast: Cast, scope: str) -> None:
    changelog = changelog_make(service=cast.payments_api, by=cast.pipeline.account)
    without = token_with(cast, *(other for other in ALL_SCOPES if other != scope))
    counts = (
        Changelog.objects.count(),
        Evidence.objects.count(),
        GateDecision.objects.count(),
        Deployment.objects.count(),
    )
    events = AuditEvent.objects.count()

    for needed, method, path, body, fmt in operations(changelog):
        if needed != scope:
            continue
        response = call(without, method, path, body, fmt)
        assert response.status_code == 403, (method, path, response.content[:200])
        assert response.json()["code"] == "token_scope_missing"
        assert f"lacks the '{scope}' scope" in response.json()["message"]

    assert counts == (
        Changelog.objects.count(),
        Evidence.objects.count(),
        GateDecision.objects.count(),
        Deployment.objects.count(),
    )
    assert AuditEvent.objects.count() == events


def test_a_token_with_a_scope_may_do_what_it_names(cast: Cast) -> None:
    changelog = changelog_make(service=cast.payments_api, by=cast.pipeline.account)

    for scope, method, path, body, fmt in operations(changelog):
        response = call(token_with(cast, scope), method, path, body, fmt)
        assert response.status_code in (200, 201, 202), (scope, method, path, response.content[:300])


def test_the_gate_only_token_cannot_write_a_changelog(cast: Cast) -> None:
    """The job that asks the gate holds a token that can ask the gate, and nothing else."""
    gate_only = token_with(cast, "gate")

    created = gate_only.post(
        "/api/v1/changelogs/", {"service": "payments-api", "kind": "train", **changelog_content()}, format="json"
    )
    asked = gate_only.post(
        "/api/v1/gate/check",
        {"service": "payments-api", "environment": "production", "artifact_digest": DIGEST},
        format="json",
    )

    assert created.status_code == 403
    assert not Changelog.objects.exists()
    assert asked.status_code == 200


def test_people_are_not_limited_by_token_scopes(cast: Cast) -> None:
    assert cast.session(cast.auditor).get("/api/v1/changelogs/").status_code == 200


@pytest.mark.parametrize("scopes", [[], ["deploy"], ["read", "admin"]])
def test_a_token_names_known_scopes_when_it_is_issued(cast: Cast, scopes: list[str]) -> None:
    with pytest.raises(InvalidInput) as refused:
        api_token_issue(acting_user=FACTORY_ACTOR, account=cast.pipeline.account, name="x", scopes=scopes)

    assert refused.value.code == "token_scopes_invalid"


def test_the_scopes_are_recorded_on_the_token_and_in_its_audit_event(cast: Cast) -> None:
    token, _ = api_token_issue(
        acting_user=FACTORY_ACTOR, account=cast.pipeline.account, name="x", scopes=["read", "gate"]
    )

    assert token.scopes == ["gate", "read"]
    event = AuditEvent.objects.filter(action="api_token:issued").order_by("-id").first()
    assert event is not None
    assert '"scopes":["gate","read"]' in event.data


def test_no_token_lives_longer_than_the_maximum_lifetime(cast: Cast, settings: Any) -> None:
    settings.API_TOKEN_MAX_LIFETIME = timedelta(days=30)

    with pytest.raises(InvalidInput) as refused:
        api_token_issue(
            acting_user=FACTORY_ACTOR,
            account=cast.pipeline.account,
            name="x",
            scopes=["gate"],
            lifetime=timedelta(days=31),
        )
    token, _ = api_token_issue(
        acting_user=FACTORY_ACTOR, account=cast.pipeline.account, name="y", scopes=["gate"], lifetime=timedelta(days=30)
    )

    assert refused.value.code == "token_lifetime_too_long"
    assert token.expires_at - token.created_at == timedelta(days=30)


def test_the_command_issues_a_token_with_the_scopes_named(db: None) -> None:
    ServiceFactory(slug="payments-api")
    out = StringIO()

    call_command(
        "create_service_account", "payments-gate", "--service", "payments-api", "--scope", "gate,read", stdout=out
    )

    assert "token scopes: gate, read" in out.getvalue()
    assert ApiToken.objects.get().scopes == ["gate", "read"]


@pytest.mark.parametrize(
    ("arguments", "message"),
    [(["--scope", "deploy"], "unknown scope(s): deploy"), (["--scope", "all", "--days", "400"], "at most 365 days")],
)
def test_the_command_refuses_unknown_scopes_and_too_long_a_life(db: None, arguments: list[str], message: str) -> None:
    ServiceFactory(slug="payments-api")

    with pytest.raises(CommandError, match=message.replace("(", r"\(").replace(")", r"\)")):
        call_command("create_service_account", "ci", "--service", "payments-api", *arguments, stdout=StringIO())

    assert not ApiToken.objects.exists()


def test_scopes_read_the_way_people_write_them() -> None:
    assert scopes_parse(["all"]) == list(ALL_SCOPES)
    assert scopes_parse(["read", "gate,changelogs"]) == ["changelogs", "gate", "read"]


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("migrations_restored")
def test_tokens_issued_before_scopes_keep_every_scope(cast: Cast) -> None:
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate([("releasegate", "0007_github_delivery_replay_key")])
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate([("releasegate", "0008_api_token_scopes")])

    assert {tuple(scopes) for scopes in ApiToken.objects.values_list("scopes", flat=True)} == {ALL_SCOPES}
    assert (
        cast.pipeline.client()
        .post(
            "/api/v1/gate/check",
            {"service": "payments-api", "environment": "production", "artifact_digest": DIGEST},
            format="json",
        )
        .status_code
        == 200
    )
