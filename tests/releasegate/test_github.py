"""The GitHub deployment protection rule end to end: signed deliveries into our endpoint, the
gate's decision, and the answer to a fake GitHub API on 127.0.0.1 that verifies the App's JWT,
issues installation tokens and records the callbacks. Real database and Celery (eager)."""

import hashlib
import hmac
import itertools
import json
import logging
import subprocess
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from django.test import Client
from django.utils import timezone

from audit.models import AuditEvent
from changelogs.models import Service
from releasegate.github import (
    github_answer_attempt,
    github_app_jwt,
    github_private_key,
    github_signature,
    repository_key,
)
from releasegate.models import GateDecision, GitHubDelivery, User
from releasegate.tasks import github_answers_flush
from tests.approvals.brokers import PrivateRedis, publishing_to
from tests.clock import time_passes
from tests.conftest import Cast, wait_for
from tests.releasegate.gate_support import ready_changelog
from tests.releasegate.github_fake import FakeGitHub, JwtRejectedError, b64url_decode, jwt_verify, running_fake_github
from tests.settings_import import import_settings
from tests.workers import celery_worker

ROOT = Path(__file__).resolve().parents[2]
URL = "/api/v1/integrations/github/deployment-protection"
APP_ID = "Iv23liReleaseGateTest"
SECRET = "test-github-webhook-secret-0123456789"
SHA = "0123456789abcdef0123456789abcdef01234567"  # ready_changelog's artifact.source_revision
OTHER_SHA = "fedcba9876543210fedcba9876543210fedcba98"
REPOSITORY_URL = "https://github.com/bank/payments-api"
REPOSITORY_ID = 321
INSTALLATION_ID = 987654


@pytest.fixture(scope="module")
def app_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def pem(key: rsa.RSAPrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
    ).decode("ascii")


@pytest.fixture
def github(app_key: rsa.RSAPrivateKey, settings: Any) -> Iterator[FakeGitHub]:
    with running_fake_github(app_key.public_key(), APP_ID) as fake:
        settings.GITHUB_API_URL = fake.url
        settings.GITHUB_APP_ID = APP_ID
        settings.GITHUB_WEBHOOK_SECRET = SECRET
        settings.GITHUB_APP_PRIVATE_KEY = pem(app_key)
        settings.GITHUB_APP_PRIVATE_KEY_FILE = ""
        settings.GITHUB_GATED_ENVIRONMENTS = {"production": "production"}
        settings.GITHUB_CALLBACK_RETRY_BASE_SECONDS = 0
        yield fake


@pytest.fixture
def payments_repo(cast: Cast) -> Service:
    """payments-api lives in the GitHub repository, written the way people write URLs."""
    cast.payments_api.repository_url = "https://GitHub.com/Bank/payments-api.git/"
    cast.payments_api.save(update_fields=["repository_url"])
    return cast.payments_api


_DEPLOYMENT_IDS = itertools.count(1111)


def rule(
    github: FakeGitHub,
    *,
    sha: str = SHA,
    environment: str = "production",
    repository_url: str = REPOSITORY_URL,
    action: str = "requested",
    created_at: datetime | None = None,
) -> dict[str, Any]:
    """A deployment_protection_rule payload as GitHub sends it (abridged): each one for a new
    deployment (a new job, or a re-run), created now unless said otherwise."""
    full_name = repository_url.removeprefix("https://github.com/")
    created = (created_at or timezone.now()).astimezone(UTC).replace(microsecond=0)
    return {
        "action": action,
        "environment": environment,
        "event": "push",
        "deployment_callback_url": github.callback_url(*full_name.split("/")),
        "deployment": {
            "id": next(_DEPLOYMENT_IDS),
            "sha": sha,
            "ref": "main",
            "environment": environment,
            "task": "deploy",
            "created_at": created.isoformat().replace("+00:00", "Z"),
            "updated_at": created.isoformat().replace("+00:00", "Z"),
        },
        "repository": {"id": REPOSITORY_ID, "full_name": full_name, "html_url": repository_url, "private": True},
        "installation": {"id": INSTALLATION_ID, "node_id": "MDIzOkludGVncmF0aW9uSW5zdGFsbGF0aW9uMQ=="},
        "sender": {"login": "octocat", "id": 1},
    }


def sign(body: bytes, secret: str = SECRET) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def deliver(
    payload: dict[str, Any] | bytes,
    *,
    delivery: str | None = None,
    event: str = "deployment_protection_rule",
    signature: str | None = None,
) -> Any:
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    headers = {
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": delivery or str(uuid.uuid4()),
        "X-Hub-Signature-256": sign(body) if signature is None else signature,
        "User-Agent": "GitHub-Hookshot/abc1234",
    }
    return Client().post(URL, data=body, content_type="application/json", headers=headers)


def events(action: str) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(action=action).order_by("id"))


# Approving and rejecting


@pytest.mark.usefixtures("transactional_db", "eager_celery", "payments_repo")
def test_an_allowable_changelog_is_approved_with_an_installation_token(cast: Cast, github: FakeGitHub) -> None:
    changelog = ready_changelog(cast)

    response = deliver(rule(github), delivery="72d3162e-cc78-11e3-81ab-4c9367dc0958")

    assert response.status_code == 202, response.json()
    assert response.json()["received"] == "evaluated"
    assert response.json()["state"] == "approved"
    [token_request] = github.token_requests
    assert github.rejected_jwts == []
    assert token_request.installation_id == INSTALLATION_ID
    assert token_request.claims["iss"] == APP_ID
    assert token_request.claims["exp"] - token_request.claims["iat"] == 600
    assert token_request.claims["iat"] <= time.time() - 59
    assert token_request.body == {"permissions": {"deployments": "write"}, "repository_ids": [REPOSITORY_ID]}
    [callback] = github.callbacks
    assert callback.path == "/repos/bank/payments-api/actions/runs/4242/deployment_protection_rule"
    assert callback.authorization == f"Bearer {token_request.token}"
    assert callback.headers["X-GitHub-Api-Version"] == "2022-11-28"
    assert callback.status == 204
    assert set(callback.body) == {"environment_name", "state", "comment"}
    assert callback.body["environment_name"] == "production"
    assert callback.body["state"] == "approved"
    assert callback.body["comment"].startswith(
        f"Release Gate approved payments-api changelog {changelog.id} revision 1: every check passed"
    )
    delivery = GitHubDelivery.objects.get()
    assert (delivery.status, delivery.attempts, delivery.state) == ("answered", 1, "approved")
    assert delivery.answered_at is not None
    assert delivery.delivery_id == "72d3162e-cc78-11e3-81ab-4c9367dc0958"
    assert (delivery.repository, delivery.sha, delivery.environment) == ("bank/payments-api", SHA, "production")
    assert delivery.service == cast.payments_api
    decision = GateDecision.objects.get()
    assert delivery.decision == decision
    assert (decision.outcome, decision.environment, decision.changelog_id) == ("allow", "production", changelog.id)
    assert decision.requested_by.username == "svc-github-app"
    [allowed] = events("gate:allowed")
    assert allowed.actor == "service_account:svc-github-app"
    [requested] = events("github:protection_rule_requested")
    [answered] = events("github:protection_rule_answered")
    for event in (requested, answered):
        assert (event.target_type, event.target_id) == ("releasegate.githubdelivery", str(delivery.pk))
        assert event.actor == "service_account:svc-github-app"
    assert json.loads(answered.data)["state"] == "approved"
    assert json.loads(requested.data)["decision"] == str(decision.pk)


@pytest.mark.usefixtures("transactional_db", "eager_celery", "payments_repo")
def test_a_changelog_the_gate_denies_is_rejected_with_the_reasons(cast: Cast, github: FakeGitHub) -> None:
    ready_changelog(cast, approved=False)

    response = deliver(rule(github))

    assert response.status_code == 202
    [callback] = github.accepted()
    assert callback.body["state"] == "rejected"
    assert callback.body["environment_name"] == "production"
    assert "\n- approvals_missing: Approvals missing:" in callback.body["comment"]
    delivery = GitHubDelivery.objects.get()
    assert (delivery.status, delivery.state, delivery.reason) == ("answered", "rejected", "")
    assert delivery.decision is not None
    assert delivery.decision.outcome == "deny"
    assert len(events("gate:denied")) == 1


@pytest.mark.usefixtures("transactional_db", "eager_celery", "payments_repo")
def test_a_commit_no_submitted_changelog_names_is_rejected_without_a_decision(cast: Cast, github: FakeGitHub) -> None:
    ready_changelog(cast)

    response = deliver(rule(github, sha=OTHER_SHA))

    assert response.status_code == 202
    [callback] = github.accepted()
    assert callback.body["state"] == "rejected"
    assert f"no submitted changelog of payments-api has commit {OTHER_SHA}" in callback.body["comment"]
    delivery = GitHubDelivery.objects.get()
    assert (delivery.state, delivery.reason, delivery.decision, delivery.service) == (
        "rejected",
        "no_changelog",
        None,
        cast.payments_api,
    )
    assert not GateDecision.objects.exists()
    [requested] = events("github:protection_rule_requested")
    assert (requested.target_type, requested.target_id) == ("releasegate.githubdelivery", str(delivery.pk))
    assert json.loads(requested.data)["reason"] == "no_changelog"


@pytest.mark.usefixtures("transactional_db", "eager_celery", "cast")
def test_a_repository_no_service_claims_is_rejected_and_recorded(github: FakeGitHub) -> None:
    response = deliver(rule(github, repository_url="https://github.com/bank/unknown-api"))

    assert response.status_code == 202
    [callback] = github.accepted()
    assert callback.body["state"] == "rejected"
    assert (
        "no service in Release Gate has the repository https://github.com/bank/unknown-api" in callback.body["comment"]
    )
    delivery = GitHubDelivery.objects.get()
    assert (delivery.reason, delivery.service, delivery.decision, delivery.status) == (
        "no_service",
        None,
        None,
        "answered",
    )
    assert json.loads(events("github:protection_rule_requested")[0].data)["reason"] == "no_service"


@pytest.mark.usefixtures("transactional_db", "eager_celery", "payments_repo")
def test_an_environment_that_is_not_gated_is_rejected_without_asking_the_gate(cast: Cast, github: FakeGitHub) -> None:
    ready_changelog(cast)

    deliver(rule(github, environment="staging"))

    [callback] = github.accepted()
    assert callback.body["environment_name"] == "staging"
    assert callback.body["state"] == "rejected"
    assert 'environment "staging" is not gated by Release Gate' in callback.body["comment"]
    assert GitHubDelivery.objects.get().reason == "environment_not_gated"
    assert not GateDecision.objects.exists()


@pytest.mark.usefixtures("transactional_db", "eager_celery", "payments_repo")
def test_github_environment_names_map_to_gate_environments_without_regard_to_case(
    cast: Cast, github: FakeGitHub, settings: Any
) -> None:
    settings.GITHUB_GATED_ENVIRONMENTS = {"prod-eu": "production"}
    ready_changelog(cast)

    deliver(rule(github, environment="Prod-EU"))

    [callback] = github.accepted()
    assert (callback.body["environment_name"], callback.body["state"]) == ("Prod-EU", "approved")
    assert GateDecision.objects.get().environment == "production"


@pytest.mark.usefixtures("transactional_db", "eager_celery", "cast")
def test_a_commit_several_services_claim_is_rejected_as_ambiguous(cast: Cast, github: FakeGitHub) -> None:
    from tests.factories import changelog_make

    for service in (cast.payments_api, cast.transfers_api):  # a monorepo
        service.repository_url = REPOSITORY_URL
        service.save(update_fields=["repository_url"])
        changelog_make(service=service, submitted=True)

    deliver(rule(github))

    [callback] = github.accepted()
    assert "several services (payments-api, transfers-api)" in callback.body["comment"]
    assert GitHubDelivery.objects.get().reason == "ambiguous_changelog"
    assert not GateDecision.objects.exists()


# Authentication and input


@pytest.mark.parametrize(
    "signature",
    [
        pytest.param("", id="missing"),
        pytest.param(sign(b"{}"), id="of-another-body"),
        pytest.param("SIGNED", id="wrong-secret"),
        pytest.param("sha1=0123456789abcdef0123456789abcdef01234567", id="sha1"),
        pytest.param("sha256=zz\u00e9", id="garbage"),
    ],
)
@pytest.mark.usefixtures("transactional_db", "eager_celery", "payments_repo")
def test_a_bad_signature_is_refused_with_401_and_leaves_nothing_behind(github: FakeGitHub, signature: str) -> None:
    body = json.dumps(rule(github)).encode()
    if signature == "SIGNED":
        signature = sign(body, secret="not-the-secret")
    audit_before = AuditEvent.objects.count()

    response = deliver(body, signature=signature)

    assert response.status_code == 401
    assert response.json()["code"] == "github_signature_invalid"
    assert not GitHubDelivery.objects.exists()
    assert not GateDecision.objects.exists()
    assert not User.objects.filter(username="svc-github-app").exists()
    assert AuditEvent.objects.count() == audit_before
    assert github.token_requests == github.callbacks == []


@pytest.mark.usefixtures("db", "payments_repo")
def test_a_tampered_body_is_refused(github: FakeGitHub) -> None:
    body = json.dumps(rule(github)).encode()
    tampered = body.replace(b'"production"', b'"Production"', 1)

    assert deliver(tampered, signature=sign(body)).status_code == 401


@pytest.mark.usefixtures("db")
def test_the_endpoint_is_off_without_a_webhook_secret(settings: Any) -> None:
    settings.GITHUB_WEBHOOK_SECRET = ""

    response = deliver(b"{}", signature=sign(b"{}", secret=""))

    assert response.status_code == 404
    assert response.json()["code"] == "github_not_configured"


@pytest.mark.usefixtures("db")
def test_the_endpoint_needs_no_token_and_refuses_one_it_does_not_need(github: FakeGitHub, cast: Cast) -> None:
    """A pipeline's token is not GitHub's signature: it does not get a request through."""
    body = json.dumps(rule(github)).encode()
    response = cast.pipeline.client().post(URL, data=body, content_type="application/json")

    assert response.status_code == 401
    assert response.json()["code"] == "github_signature_invalid"


@pytest.mark.usefixtures("transactional_db", "eager_celery")
def test_a_ping_is_acknowledged_and_nothing_else(github: FakeGitHub) -> None:
    response = deliver({"zen": "Design for failure.", "hook_id": 1}, event="ping")

    assert response.status_code == 200
    assert response.json()["received"] == "ignored"
    assert not GitHubDelivery.objects.exists()
    assert github.token_requests == github.callbacks == []


@pytest.mark.usefixtures("transactional_db", "eager_celery", "payments_repo")
def test_other_actions_are_acknowledged_and_nothing_else(github: FakeGitHub) -> None:
    response = deliver(rule(github, action="completed"))

    assert response.status_code == 200
    assert response.json()["received"] == "ignored"
    assert not GitHubDelivery.objects.exists()
    assert github.callbacks == []


@pytest.mark.usefixtures("db")
def test_a_ping_with_a_bad_signature_is_still_refused(github: FakeGitHub) -> None:
    assert deliver({"zen": "x"}, event="ping", signature=sign(b"other")).status_code == 401


@pytest.mark.usefixtures("db", "payments_repo")
def test_a_callback_url_outside_the_configured_api_is_refused(github: FakeGitHub) -> None:
    payload = rule(github)
    payload["deployment_callback_url"] = "https://attacker.example/repos/bank/payments-api/actions/runs/1/x"

    response = deliver(payload)

    assert response.status_code == 400
    assert response.json()["code"] == "github_callback_url_invalid"
    assert not GitHubDelivery.objects.exists()


@pytest.mark.usefixtures("db", "payments_repo")
def test_a_signed_payload_that_is_not_what_github_sends_is_invalid_input(github: FakeGitHub) -> None:
    payload = rule(github)
    payload["deployment"]["sha"] = "main"

    response = deliver(payload)

    assert response.status_code == 400
    assert response.json()["code"] == "invalid_input"
    assert "deployment.sha" in response.json()["fields"]
    assert deliver(b"not json").json()["code"] == "malformed_request"
    assert deliver(rule(github), delivery="../../etc").json()["code"] == "github_delivery_id_invalid"
    assert not GitHubDelivery.objects.exists()


# Idempotency and retries


@pytest.mark.usefixtures("transactional_db", "eager_celery", "payments_repo")
def test_the_same_delivery_twice_is_evaluated_and_answered_once(cast: Cast, github: FakeGitHub) -> None:
    ready_changelog(cast)
    payload = rule(github)

    first = deliver(payload, delivery="d-0001")
    again = deliver(payload, delivery="d-0001")

    assert (first.status_code, again.status_code) == (202, 200)
    assert again.json()["received"] == "duplicate"
    assert again.json()["decision"] == first.json()["decision"]
    assert again.json()["answer_status"] == "answered"
    assert GateDecision.objects.count() == 1
    assert GitHubDelivery.objects.count() == 1
    assert len(github.token_requests) == len(github.callbacks) == 1
    assert len(events("github:protection_rule_requested")) == 1


@pytest.mark.usefixtures("transactional_db", "eager_celery", "payments_repo")
def test_a_signed_body_replayed_under_a_new_delivery_id_is_refused_recorded_and_not_answered(
    cast: Cast, github: FakeGitHub
) -> None:
    ready_changelog(cast)
    body = json.dumps(rule(github)).encode()
    first = deliver(body, delivery="d-0001")
    audit_before = AuditEvent.objects.count()

    replayed = deliver(body, delivery="d-0002")  # captured on the way, sent again under a new id

    assert first.status_code == 202
    assert replayed.status_code == 409
    assert replayed.json()["code"] == "github_delivery_replayed"
    assert GateDecision.objects.count() == 1
    assert list(GitHubDelivery.objects.values_list("delivery_id", flat=True)) == ["d-0001"]
    assert len(github.callbacks) == 1
    [refused] = events("github:delivery_refused")
    data = json.loads(refused.data)
    assert (data["delivery"], data["first_delivery"], data["refused"]) == ("d-0002", "d-0001", "replayed")
    assert data["body_sha256"] == hashlib.sha256(body).hexdigest()
    assert (refused.target_type, refused.target_id) == (
        "releasegate.githubdelivery",
        str(GitHubDelivery.objects.get().pk),
    )
    assert refused.actor == "service_account:svc-github-app"
    assert AuditEvent.objects.count() == audit_before + 1


@pytest.mark.usefixtures("transactional_db", "eager_celery", "payments_repo")
def test_a_delivery_id_seen_before_with_another_signed_body_is_refused(cast: Cast, github: FakeGitHub) -> None:
    ready_changelog(cast)
    deliver(rule(github), delivery="d-0001")

    other = deliver(rule(github), delivery="d-0001")

    assert other.status_code == 409
    assert other.json()["code"] == "github_delivery_replayed"
    assert GateDecision.objects.count() == 1
    assert len(github.callbacks) == 1
    assert len(events("github:delivery_refused")) == 1


@pytest.mark.parametrize(
    ("created", "code"),
    [
        pytest.param(timedelta(hours=-2), "github_delivery_too_old", id="too-old"),
        pytest.param(timedelta(minutes=10), "github_delivery_dated_in_future", id="in-the-future"),
    ],
)
@pytest.mark.usefixtures("transactional_db", "eager_celery", "payments_repo")
def test_a_delivery_outside_the_age_limit_is_refused_recorded_and_not_evaluated(
    cast: Cast, github: FakeGitHub, settings: Any, created: timedelta, code: str
) -> None:
    settings.GITHUB_DELIVERY_MAX_AGE_SECONDS = 3600
    ready_changelog(cast)

    response = deliver(rule(github, created_at=timezone.now() + created), delivery="d-0003")

    assert response.status_code == 400
    assert response.json()["code"] == code
    assert not GitHubDelivery.objects.exists()
    assert not GateDecision.objects.exists()
    assert github.callbacks == []
    [refused] = events("github:delivery_refused")
    assert (refused.target_type, refused.target_id) == ("github.delivery", "d-0003")
    assert json.loads(refused.data)["code"] == code


@pytest.mark.usefixtures("transactional_db", "eager_celery", "payments_repo")
def test_a_delivery_within_the_age_limit_is_evaluated(cast: Cast, github: FakeGitHub) -> None:
    ready_changelog(cast)

    response = deliver(rule(github, created_at=timezone.now() - timedelta(minutes=50)))

    assert response.status_code == 202
    assert response.json()["state"] == "approved"


@pytest.mark.usefixtures("transactional_db", "eager_celery", "payments_repo")
def test_a_callback_that_fails_twice_is_retried_until_github_accepts_it(cast: Cast, github: FakeGitHub) -> None:
    ready_changelog(cast)
    github.fail_callbacks = 2

    response = deliver(rule(github))

    assert response.status_code == 202
    assert [callback.status for callback in github.callbacks] == [500, 500, 204]
    assert {json.dumps(callback.body, sort_keys=True) for callback in github.callbacks} == {
        json.dumps(github.callbacks[0].body, sort_keys=True)
    }  # the same answer every time
    assert len(github.token_requests) == 3
    delivery = GitHubDelivery.objects.get()
    assert (delivery.status, delivery.attempts) == ("answered", 3)
    assert delivery.last_error == "callback: HTTP 500 Internal Server Error: Server Error"
    assert len(events("github:protection_rule_answered")) == 1


@pytest.mark.usefixtures("transactional_db", "eager_celery", "payments_repo")
def test_a_callback_that_keeps_failing_ends_failed_logged_and_audited(
    cast: Cast, github: FakeGitHub, settings: Any, caplog: pytest.LogCaptureFixture
) -> None:
    settings.GITHUB_CALLBACK_MAX_ATTEMPTS = 3
    github.fail_callbacks = 100
    github.failure_status = 502

    payload = rule(github)
    with caplog.at_level(logging.ERROR, logger="releasegate.github"):
        response = deliver(payload)

    assert response.status_code == 202  # GitHub's question was taken; only the answer failed
    assert [callback.status for callback in github.callbacks] == [502, 502, 502]
    delivery = GitHubDelivery.objects.get()
    assert (delivery.status, delivery.attempts, delivery.answered_at) == ("failed", 3, None)
    assert "giving up" in caplog.text
    assert delivery.delivery_id in caplog.text
    [failed] = events("github:protection_rule_answer_failed")
    assert json.loads(failed.data)["last_error"] == "callback: HTTP 502 Bad Gateway: Server Error"

    github_answers_flush.delay()  # a failed answer is never sent again
    redelivered = deliver(payload, delivery=delivery.delivery_id)  # nor on GitHub's redelivery
    assert redelivered.json()["received"] == "duplicate"
    assert len(github.callbacks) == 3


@pytest.mark.usefixtures("transactional_db", "eager_celery", "payments_repo")
def test_a_jwt_github_refuses_is_a_failed_attempt(cast: Cast, github: FakeGitHub, settings: Any) -> None:
    settings.GITHUB_CALLBACK_MAX_ATTEMPTS = 2
    settings.GITHUB_APP_ID = "Iv23liSomeOtherApp"

    deliver(rule(github))

    assert github.callbacks == []
    assert len(github.rejected_jwts) == 2
    delivery = GitHubDelivery.objects.get()
    assert delivery.status == "failed"
    assert delivery.last_error.startswith("installation token: HTTP 401 Unauthorized")


@pytest.mark.usefixtures("db", "eager_celery", "payments_repo")
def test_an_answer_left_pending_is_sent_by_the_flush(cast: Cast, github: FakeGitHub) -> None:
    """In a test transaction nothing commits, so the hand-over after commit never happens: like
    a broker that was down when the delivery was recorded."""
    ready_changelog(cast)
    deliver(rule(github))
    assert GitHubDelivery.objects.get().status == "pending"
    assert github.callbacks == []

    github_answers_flush.delay()

    assert GitHubDelivery.objects.get().status == "answered"
    assert [callback.body["state"] for callback in github.callbacks] == ["approved"]


@pytest.mark.usefixtures("db", "payments_repo")
def test_an_approval_whose_decision_expired_before_github_took_it_goes_out_as_a_rejection(
    cast: Cast, github: FakeGitHub
) -> None:
    ready_changelog(cast)
    deliver(rule(github))
    delivery = GitHubDelivery.objects.get()
    assert delivery.state == "approved"

    time_passes(timedelta(hours=2))
    github_answer_attempt(delivery_id=delivery.pk)

    [callback] = github.callbacks
    assert callback.body["state"] == "rejected"
    assert f"the allow decision {delivery.decision_id} expired" in callback.body["comment"]
    delivery.refresh_from_db()
    assert (delivery.status, delivery.state, delivery.reason) == ("answered", "rejected", "decision_expired")


# A real worker on a real broker


@pytest.mark.usefixtures("payments_repo")
def test_a_worker_retries_a_failed_callback_after_the_back_off(
    cast: Cast, github: FakeGitHub, app_key: rsa.RSAPrivateKey, private_broker: PrivateRedis, tmp_path: Path
) -> None:
    ready_changelog(cast)
    github.fail_callbacks = 1
    private_broker.start()
    log = tmp_path / "worker.log"
    env = {
        "GITHUB_APP_ID": APP_ID,
        "GITHUB_WEBHOOK_SECRET": SECRET,
        "GITHUB_APP_PRIVATE_KEY": pem(app_key),
        "GITHUB_API_URL": github.url,
        "GITHUB_CALLBACK_RETRY_BASE_SECONDS": "1",
    }
    with publishing_to(private_broker.url), celery_worker(private_broker.url, log=log, env=env):
        assert deliver(rule(github)).status_code == 202

        wait_for(
            lambda: GitHubDelivery.objects.filter(status="answered").exists(),
            what="the worker's retry",
            log=log,
        )

    assert [callback.status for callback in github.callbacks] == [500, 204]
    assert github.callbacks[1].at - github.callbacks[0].at >= 1  # Celery's countdown, not an immediate re-run
    assert github.callbacks[1].body["state"] == "approved"
    assert GitHubDelivery.objects.get().attempts == 2


# The GitHub App's identity


@pytest.mark.usefixtures("transactional_db", "eager_celery", "payments_repo")
def test_the_github_app_acts_as_a_service_account_created_once(github: FakeGitHub) -> None:
    deliver(rule(github))
    deliver(rule(github))

    account = User.objects.get(username="svc-github-app")
    assert account.is_service_account
    assert not account.has_usable_password()
    [created] = [event for event in events("service_account:created") if event.target_id == str(account.pk)]
    assert created.actor == "system:releasegate"


# The pieces


def test_the_signature_matches_githubs_documented_example() -> None:
    assert github_signature("It's a Secret to Everybody", b"Hello, World!") == (
        "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    )


def test_the_app_jwt_is_rs256_over_githubs_claims_and_verifies_with_the_public_key(app_key: rsa.RSAPrivateKey) -> None:
    now = datetime(2026, 11, 27, 9, 0, 0, tzinfo=UTC)

    token = github_app_jwt(now=now, app_id=APP_ID, private_key=app_key)

    header, claims, signature = token.split(".")
    assert all(
        set(part) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
        for part in (header, claims, signature)
    )
    assert json.loads(b64url_decode(header)) == {"alg": "RS256", "typ": "JWT"}
    t = int(now.timestamp())
    assert jwt_verify(token, app_key.public_key(), app_id=APP_ID, now=t) == {
        "iat": t - 60,
        "exp": t + 540,
        "iss": APP_ID,
    }
    with pytest.raises(JwtRejectedError, match="expired"):
        jwt_verify(token, app_key.public_key(), app_id=APP_ID, now=t + 541)
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    with pytest.raises(JwtRejectedError, match="bad signature"):
        jwt_verify(token, other.public_key(), app_id=APP_ID, now=t)
    forged = f"{header}.{claims[:-2]}AA.{signature}"
    with pytest.raises((JwtRejectedError, ValueError)):
        jwt_verify(forged, app_key.public_key(), app_id=APP_ID, now=t)


def test_the_private_key_is_read_from_a_file_or_a_one_line_secret(
    app_key: rsa.RSAPrivateKey, settings: Any, tmp_path: Path
) -> None:
    key_file = tmp_path / "github-app.pem"
    key_file.write_text(pem(app_key))
    settings.GITHUB_APP_PRIVATE_KEY, settings.GITHUB_APP_PRIVATE_KEY_FILE = "", str(key_file)
    assert github_private_key().public_key().public_numbers() == app_key.public_key().public_numbers()

    settings.GITHUB_APP_PRIVATE_KEY = pem(app_key).replace("\n", "\\n")
    assert github_private_key().public_key().public_numbers() == app_key.public_key().public_numbers()


@pytest.mark.parametrize(
    ("url", "key"),
    [
        ("https://github.com/Bank/Payments-API", "github.com/bank/payments-api"),
        ("https://github.com/bank/payments-api/", "github.com/bank/payments-api"),
        ("https://github.com/bank/payments-api.git", "github.com/bank/payments-api"),
        ("http://user@GITHUB.COM:443/bank/payments-api.git/", "github.com/bank/payments-api"),
        ("https://ghe.bank.example:8443/bank/payments-api", "ghe.bank.example:8443/bank/payments-api"),
        ("not a url", ""),
        ("https://github.com:abc/bank/payments-api", ""),
    ],
)
def test_repository_urls_are_compared_without_case_slash_or_git_suffix(url: str, key: str) -> None:
    assert repository_key(url) == key


def _import_settings(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return import_settings(env, code="import releasegate.settings as s; print(s.GITHUB_GATED_ENVIRONMENTS)")


def test_the_integration_needs_its_secret_and_key_together() -> None:
    only_id = _import_settings({"GITHUB_APP_ID": "123"})
    assert only_id.returncode != 0
    assert "GITHUB_APP_ID and GITHUB_WEBHOOK_SECRET must be set together" in only_id.stderr
    no_key = _import_settings({"GITHUB_APP_ID": "123", "GITHUB_WEBHOOK_SECRET": "s"})
    assert no_key.returncode != 0
    assert "GITHUB_APP_PRIVATE_KEY" in no_key.stderr
    missing_file = _import_settings(
        {"GITHUB_APP_ID": "123", "GITHUB_WEBHOOK_SECRET": "s", "GITHUB_APP_PRIVATE_KEY_FILE": "/nonexistent.pem"}
    )
    assert "GITHUB_APP_PRIVATE_KEY_FILE is not a file" in missing_file.stderr
    complete = _import_settings({"GITHUB_APP_ID": "123", "GITHUB_WEBHOOK_SECRET": "s", "GITHUB_APP_PRIVATE_KEY": "PEM"})
    assert complete.returncode == 0, complete.stderr
    assert complete.stdout.strip() == "{'production': 'production'}"


def test_gated_github_environments_must_map_to_gated_environments() -> None:
    mapped = _import_settings({"GITHUB_GATED_ENVIRONMENTS": "Production, prod-eu=production"})
    assert mapped.returncode == 0, mapped.stderr
    assert mapped.stdout.strip() == "{'production': 'production', 'prod-eu': 'production'}"
    wrong = _import_settings({"GITHUB_GATED_ENVIRONMENTS": "staging"})
    assert wrong.returncode != 0
    assert "GITHUB_GATED_ENVIRONMENTS entry 'staging'" in wrong.stderr
