"""GitHub deployment protection rule: GitHub asks, the gate decides, Release Gate answers.

GitHub Actions pauses a job that targets an environment with our rule enabled and POSTs a
``deployment_protection_rule`` webhook (action ``requested``) to Release Gate. Here:

1. ``github_signature_verify`` checks ``X-Hub-Signature-256`` over the raw body before anything
   else looks at it (HMAC-SHA256 with ``GITHUB_WEBHOOK_SECRET``, constant-time comparison).
2. ``github_protection_rule_request`` maps the payload to a question for the gate: the GitHub
   environment to a gated environment (``GITHUB_GATED_ENVIRONMENTS``), the repository to the
   service whose ``repository_url`` it is, and ``deployment.sha`` to the service's submitted
   changelog revision with that ``source_revision``; ``releasegate.gate.gate_check`` decides
   for the ``svc-github-app`` service account. The delivery (``X-GitHub-Delivery``, unique) is
   stored with the answer and audited, in one transaction; the same delivery again changes
   nothing. The same signed body under another delivery id is a replay, and a deployment
   GitHub created longer ago than ``GITHUB_DELIVERY_MAX_AGE_SECONDS`` is too old: both are
   refused and audited, not evaluated or answered (``github_delivery_receive``). Anything that
   cannot be mapped is rejected with a comment that says why.
3. After commit a Celery task (``releasegate.tasks``) answers GitHub: it authenticates as the
   GitHub App (an RS256 JWT signed with the App's private key), exchanges that for an
   installation access token and POSTs ``{environment_name, state, comment}`` to the payload's
   ``deployment_callback_url``. A failed attempt is retried with back-off until GitHub accepts
   or ``GITHUB_CALLBACK_MAX_ATTEMPTS`` is reached; beat's flush picks up answers whose hand-over
   was lost, as for notifications (approvals/notifications.py).

Fails closed: an environment that is not gated, a repository no service claims, a commit no
submitted changelog names, or an allow decision that expired before GitHub took the answer are
all rejections. docs/github.md has the set-up and the reasoning.
"""

import base64
import hashlib
import hmac
import json
import logging
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from uuid import UUID

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from django.conf import settings
from django.db import IntegrityError, transaction

import audit
from audit.clock import business_now
from audit.services import SYSTEM
from changelogs.models import ChangelogRevision, RevisionStatus, Service
from core.errors import ApplicationError, Conflict, InvalidInput, NotFound, field_error
from outbox.attempts import Attempt, AttemptOutcome, attempt_claim, attempt_failed, attempts_hand_over_due
from outbox.services import outbox_put
from releasegate.audit_actions import GateAction
from releasegate.gate import gate_check
from releasegate.models import (
    GateDecision,
    GateOutcome,
    GitHubAnswer,
    GitHubAnswerStatus,
    GitHubDelivery,
    User,
)
from releasegate.services import service_account_create, service_account_username
from tlog.canonical import canonical_json, sha256_hex

logger = logging.getLogger(__name__)

PROTECTION_RULE_EVENT = "deployment_protection_rule"
SIGNATURE_PREFIX = "sha256="
# The service account GitHub's questions are asked as (username svc-github-app).
GITHUB_ACCOUNT_NAME = "github-app"
HTTP_TIMEOUT_SECONDS = 10
ANSWER_TASK = "releasegate.tasks.github_answer_deliver"
USER_AGENT = "ReleaseGate-GitHubApp/1"
API_VERSION = "2022-11-28"
# GitHub shows at most this much of a comment.
COMMENT_MAX = 1024
# A JWT is valid from a minute ago (clock drift, as GitHub recommends) for nine minutes: inside
# GitHub's ten-minute limit even when our clock runs a little ahead of GitHub's.
JWT_BACKDATE_SECONDS = 60
JWT_LIFETIME_SECONDS = 9 * 60
_ERROR_MAX = 1000


class GitHubError(StrEnum):
    SIGNATURE_INVALID = "github_signature_invalid"
    NOT_CONFIGURED = "github_not_configured"
    DELIVERY_ID_INVALID = "github_delivery_id_invalid"
    CALLBACK_URL_INVALID = "github_callback_url_invalid"
    DELIVERY_REPLAYED = "github_delivery_replayed"
    DELIVERY_TOO_OLD = "github_delivery_too_old"
    DELIVERY_DATED_IN_FUTURE = "github_delivery_dated_in_future"


class GitHubReason(StrEnum):
    """Why a deployment was rejected without (or after) asking the gate; the gate's own reasons
    are on the decision."""

    ENVIRONMENT_NOT_GATED = "environment_not_gated"
    NO_SERVICE = "no_service"
    NO_CHANGELOG = "no_changelog"
    AMBIGUOUS_CHANGELOG = "ambiguous_changelog"
    DECISION_EXPIRED = "decision_expired"


# GitHub's clock and ours are both NTP-synced: a deployment created further ahead of our clock
# than this is not GitHub's doing.
DELIVERY_CLOCK_SKEW = timedelta(minutes=5)


class SignatureInvalid(ApplicationError):
    """The delivery is not signed with our webhook secret: nobody we know sent it."""

    status_code = 401


# Verifying GitHub's deliveries


def github_signature(secret: str, body: bytes) -> str:
    """``X-Hub-Signature-256`` as GitHub computes it: ``sha256=`` + hex HMAC-SHA256 of the body."""
    return SIGNATURE_PREFIX + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def github_signature_verify(*, body: bytes, signature: str) -> None:
    """Raise unless the raw body carries our secret's signature. Called before the body is
    parsed; nothing about the request is trusted until it passes."""
    secret = settings.GITHUB_WEBHOOK_SECRET
    if not secret:
        raise NotFound(GitHubError.NOT_CONFIGURED, "The GitHub integration is not configured (GITHUB_WEBHOOK_SECRET).")
    expected = github_signature(secret, body).encode("ascii")
    # compare_digest over bytes: a header with non-ASCII characters is a mismatch, not an error.
    if not signature or not hmac.compare_digest(expected, signature.strip().encode("utf-8", "replace")):
        raise SignatureInvalid(
            GitHubError.SIGNATURE_INVALID, "X-Hub-Signature-256 is missing or does not match the webhook secret."
        )


# Mapping a deployment to a question for the gate


def repository_key(url: str) -> str:
    """A repository URL as a comparison key: host (with a port other than 80 and 443) and path,
    lower-case, without the scheme, credentials, trailing slashes or ``.git``. "" when it is
    no URL."""
    parts = urlsplit(url.strip())
    host = (parts.hostname or "").lower()
    try:
        port = parts.port
    except ValueError:  # "host:abc"
        return ""
    if not host:
        return ""
    port_suffix = f":{port}" if port and port not in {80, 443} else ""
    path = parts.path.lower().rstrip("/")
    path = path.removesuffix(".git").rstrip("/")
    return f"{host}{port_suffix}{path}"


def service_list_for_repository(*, repository_url: str) -> list[Service]:
    """The services whose ``repository_url`` is this repository (usually one)."""
    key = repository_key(repository_url)
    if not key or "/" not in key:
        return []
    name = key.rsplit("/", 1)[1]
    candidates = Service.objects.filter(repository_url__icontains=name).select_related("domain").order_by("slug")
    return [service for service in candidates if repository_key(service.repository_url) == key]


def gated_environment(github_environment: str) -> str | None:
    """The gate environment a GitHub environment stands for, or None when it is not gated.
    GitHub compares environment names without regard to case; so do we."""
    mapping: Mapping[str, str] = settings.GITHUB_GATED_ENVIRONMENTS
    return mapping.get(github_environment.strip().lower())


def github_app_account() -> User:
    """The service account GitHub's questions are asked as, created on first use: a real
    identity so that decisions and audit events say who asked."""
    username = service_account_username(GITHUB_ACCOUNT_NAME)
    account = User.objects.filter(username=username).first()
    if account is None:
        try:
            with transaction.atomic():
                account = service_account_create(acting_user=SYSTEM, name=GITHUB_ACCOUNT_NAME, services=[])
        except (IntegrityError, ApplicationError):  # created meanwhile by a concurrent delivery
            account = User.objects.get(username=username)
    if not account.is_service_account or account.has_usable_password():
        raise RuntimeError(f"{username} exists but is not a service account; refusing to act as it")
    return account


def _require_callback_under_api(callback_url: str) -> None:
    """The installation token goes only to the GitHub API we are configured for."""
    api = urlsplit(settings.GITHUB_API_URL)
    callback = urlsplit(callback_url)
    same_origin = (callback.scheme.lower(), callback.netloc.lower()) == (api.scheme.lower(), api.netloc.lower())
    if not same_origin or not callback.path.startswith(api.path.rstrip("/") + "/"):
        message = f"deployment_callback_url is not on the configured GitHub API ({settings.GITHUB_API_URL})."
        raise InvalidInput(
            GitHubError.CALLBACK_URL_INVALID,
            message,
            fields={"deployment_callback_url": [field_error(GitHubError.CALLBACK_URL_INVALID, message)]},
        )


@dataclass(frozen=True)
class Answer:
    state: str
    comment: str
    reason: str = ""
    service: Service | None = None
    decision: GateDecision | None = None


def _gate_comment(decision: GateDecision, revision: ChangelogRevision) -> str:
    what = f"{decision.service.slug} changelog {revision.changelog_id} revision {revision.number}"
    if decision.outcome == GateOutcome.ALLOW:
        until = f"{decision.valid_until:%Y-%m-%d %H:%M} UTC"
        return (
            f"Release Gate approved {what}: every check passed "
            f"(decision {decision.pk}, policy {decision.policy}, valid until {until})."
        )
    lines = [f"Release Gate rejected {what} (decision {decision.pk}):"]
    lines += [f"- {reason['code']}: {reason['message']}" for reason in decision.reasons]
    return "\n".join(lines)


def _answer(
    *,
    actor: User,
    services: list[Service],
    environment: str,
    repository: str,
    sha: str,
) -> Answer:
    gate_environment = gated_environment(environment)
    service = services[0] if len(services) == 1 else None
    if gate_environment is None:
        gated = ", ".join(sorted(settings.GITHUB_GATED_ENVIRONMENTS)) or "none"
        return Answer(
            GitHubAnswer.REJECTED,
            f'Release Gate rejected: environment "{environment}" is not gated by Release Gate (gated: {gated}). '
            "Remove the Release Gate rule from this environment, or have it added to GITHUB_GATED_ENVIRONMENTS.",
            GitHubReason.ENVIRONMENT_NOT_GATED,
            service,
        )
    if not services:
        return Answer(
            GitHubAnswer.REJECTED,
            f"Release Gate rejected: no service in Release Gate has the repository {repository} as its repository URL.",
            GitHubReason.NO_SERVICE,
        )
    revisions = list(
        ChangelogRevision.objects.filter(
            changelog__service__in=services, source_revision=sha, status=RevisionStatus.SUBMITTED
        )
        .select_related("changelog", "changelog__service")
        .order_by("-submitted_at", "-created_at")
    )
    matched = sorted({revision.changelog.service.slug for revision in revisions})
    if len(matched) > 1:
        return Answer(
            GitHubAnswer.REJECTED,
            f"Release Gate rejected: commit {sha} is the source revision of submitted changelogs of several "
            f"services ({', '.join(matched)}); it cannot tell which one this deployment is.",
            GitHubReason.AMBIGUOUS_CHANGELOG,
            service,
        )
    if not revisions:
        names = ", ".join(s.slug for s in services)
        return Answer(
            GitHubAnswer.REJECTED,
            f"Release Gate rejected: no submitted changelog of {names} has commit {sha} as its source revision "
            "(artifact.source_revision, the full commit id).",
            GitHubReason.NO_CHANGELOG,
            service,
        )
    revision = revisions[0]  # the newest submission wins when a commit was submitted twice
    decision = gate_check(
        acting_user=actor,
        service=revision.changelog.service,
        environment=gate_environment,
        digest=revision.artifact_digest,
        changelog_id=revision.changelog_id,
    )
    state = GitHubAnswer.APPROVED if decision.outcome == GateOutcome.ALLOW else GitHubAnswer.REJECTED
    return Answer(state, _gate_comment(decision, revision), "", revision.changelog.service, decision)


def github_replay_key(*, installation_id: int, deployment_id: int, body_sha256: str) -> str:
    """What a delivery is, by what GitHub's signature covers: the installation and deployment
    it is about and the signed body's SHA-256. ``X-GitHub-Delivery`` is not signed, so it is no
    key to anything: a captured body sent again under a new delivery id has the same key."""
    return sha256_hex(
        canonical_json({"installation": installation_id, "deployment": deployment_id, "body": body_sha256})
    )


@dataclass(frozen=True)
class Received:
    """What became of a signed ``deployment_protection_rule`` delivery: ``evaluated`` (new: asked
    and answered after commit), ``duplicate`` (GitHub's redelivery of one seen before: nothing done
    again) or ``refused`` (a replay, or too old: nothing evaluated or answered, the refusal
    audited); ``delivery`` is the stored one, for a refusal the one it replays, if any."""

    outcome: str
    delivery: GitHubDelivery | None
    refusal: ApplicationError | None = None


def _seen(delivery_id: str, replay_key: str) -> tuple[GitHubDelivery | None, bool]:
    """A stored delivery with this key or this delivery id, and whether it is the same
    delivery again (GitHub's redelivery: same id, same signed body)."""
    stored = GitHubDelivery.objects.filter(replay_key=replay_key).first()
    if stored is not None:
        return stored, stored.delivery_id == delivery_id
    stored = GitHubDelivery.objects.filter(delivery_id=delivery_id).first()
    if stored is not None:
        # A row kept before replay keys were: its redelivery is recognised by the id alone.
        return stored, stored.replay_key is None
    return None, False


def _refuse(
    *, error: ApplicationError, reason: str, delivery_id: str, replayed: GitHubDelivery | None, data: dict[str, Any]
) -> Received:
    """Every refusal about authority is recorded (THREATS.md): the audit event is written in the
    request's transaction, which the API commits with the refusal."""
    target: GitHubDelivery | tuple[str, str] = replayed if replayed else ("github.delivery", delivery_id)
    audit.record(
        actor=github_app_account(),
        action=GateAction.GITHUB_DELIVERY_REFUSED,
        target=target,
        data={**data, "delivery": delivery_id, "refused": reason, "code": error.code},
    )
    logger.warning("GitHub delivery %s refused (%s): %s", delivery_id, reason, error.message)
    return Received("refused", replayed, error)


@transaction.atomic
def github_delivery_receive(
    *,
    delivery_id: str,
    body_sha256: str,
    deployment_created_at: datetime,
    environment: str,
    event: str,
    repository: str,
    repository_url: str,
    repository_id: int | None,
    sha: str,
    deployment_id: int,
    installation_id: int,
    callback_url: str,
    now: datetime | None = None,
) -> Received:
    """Take a signed delivery: refuse a replay or a stale one (audited), recognise GitHub's
    redelivery, else record the question and the answer to it (sent after commit)."""
    now = now or business_now()
    key = github_replay_key(installation_id=installation_id, deployment_id=deployment_id, body_sha256=body_sha256)
    facts = {
        "replay_key": key,
        "body_sha256": body_sha256,
        "installation_id": installation_id,
        "deployment_id": deployment_id,
        "deployment_created_at": deployment_created_at,
        "repository": repository,
        "sha": sha,
        "environment": environment,
    }
    stored, same = _seen(delivery_id, key)
    if stored is None:
        age = now - deployment_created_at
        if age > timedelta(seconds=settings.GITHUB_DELIVERY_MAX_AGE_SECONDS):
            error = InvalidInput(
                GitHubError.DELIVERY_TOO_OLD,
                f"GitHub created this deployment at {deployment_created_at:%Y-%m-%d %H:%M:%S} UTC, more than "
                f"{settings.GITHUB_DELIVERY_MAX_AGE_SECONDS} s ago; re-run the job to ask again.",
            )
            return _refuse(error=error, reason="too_old", delivery_id=delivery_id, replayed=None, data=facts)
        if -age > DELIVERY_CLOCK_SKEW:
            error = InvalidInput(
                GitHubError.DELIVERY_DATED_IN_FUTURE,
                f"The deployment is dated {deployment_created_at:%Y-%m-%d %H:%M:%S} UTC, ahead of this server's clock.",
            )
            return _refuse(error=error, reason="dated_in_future", delivery_id=delivery_id, replayed=None, data=facts)
        _require_callback_under_api(callback_url)
        actor = github_app_account()
        delivery = GitHubDelivery(
            delivery_id=delivery_id,
            replay_key=key,
            body_sha256=body_sha256,
            deployment_created_at=deployment_created_at,
            event=event,
            repository=repository,
            repository_url=repository_url,
            repository_id=repository_id,
            sha=sha,
            environment=environment,
            deployment_id=deployment_id,
            installation_id=installation_id,
            callback_url=callback_url,
            state=GitHubAnswer.REJECTED,
            status=GitHubAnswerStatus.PENDING,
            next_attempt_at=now,
            received_at=now,
        )
        try:
            # Claim the delivery id and the replay key first: a concurrent copy of the same
            # delivery waits here for our commit and then finds the row instead of evaluating
            # a second time.
            with transaction.atomic():
                delivery.save(force_insert=True)
        except IntegrityError:
            stored, same = _seen(delivery_id, key)
        else:
            _evaluate(delivery, actor=actor, installation_id=installation_id, event=event)
            return Received("evaluated", delivery)
    if stored is not None and same:
        return Received("duplicate", stored)
    replayed = Conflict(
        GitHubError.DELIVERY_REPLAYED,
        f"This signed delivery was received before as {stored.delivery_id if stored else 'another delivery'}; "
        "it is not evaluated or answered again.",
    )
    facts["first_delivery"] = stored.delivery_id if stored else None
    return _refuse(error=replayed, reason="replayed", delivery_id=delivery_id, replayed=stored, data=facts)


def _evaluate(delivery: GitHubDelivery, *, actor: User, installation_id: int, event: str) -> None:
    """Ask the gate (or reject without it), record the answer, send it after commit."""
    answer = _answer(
        actor=actor,
        services=service_list_for_repository(repository_url=delivery.repository_url),
        environment=delivery.environment,
        repository=delivery.repository_url or delivery.repository,
        sha=delivery.sha,
    )
    delivery.state = answer.state
    delivery.comment = _truncate(answer.comment, COMMENT_MAX)
    delivery.reason = answer.reason
    delivery.service = answer.service
    delivery.decision = answer.decision
    delivery.save(update_fields=["state", "comment", "reason", "service", "decision"])
    audit.record(
        actor=actor,
        action=GateAction.GITHUB_RULE_REQUESTED,
        target=delivery,
        data={
            **_audit_data(delivery),
            "installation_id": installation_id,
            "event": event,
            "replay_key": delivery.replay_key,
            "body_sha256": delivery.body_sha256,
            "deployment_created_at": delivery.deployment_created_at,
        },
    )
    # Published after the commit by the single outbox, with short timeouts; what does not go
    # is published by its flush.
    outbox_put(task=ANSWER_TASK, args=[str(delivery.pk)])


def _audit_data(delivery: GitHubDelivery) -> dict[str, Any]:
    return {
        "delivery": delivery.delivery_id,
        "repository": delivery.repository,
        "sha": delivery.sha,
        "environment": delivery.environment,
        "deployment_id": delivery.deployment_id,
        "service": delivery.service.slug if delivery.service else None,
        "decision": str(delivery.decision_id) if delivery.decision_id else None,
        "state": delivery.state,
        "reason": delivery.reason,
        "comment": delivery.comment,
    }


def _truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


# Answering GitHub


class GitHubCallError(Exception):
    """One call to GitHub's API that did not succeed; the message goes to ``last_error``."""


def github_answer_attempt(
    *, delivery_id: UUID | str, now: datetime | None = None, only_when_due: bool = True
) -> Attempt:
    """Make one attempt to give GitHub the stored answer, and record its outcome, under the
    row's lock (``outbox.attempts.attempt_claim``: two workers never answer at once)."""
    now = now or business_now()
    with transaction.atomic():
        pending = GitHubDelivery.objects.filter(status=GitHubAnswerStatus.PENDING)
        delivery: GitHubDelivery | None = attempt_claim(pending, pk=delivery_id, now=now, only_when_due=only_when_due)
        if delivery is None:
            return Attempt(AttemptOutcome.SKIPPED)
        _expire_stale_approval(delivery, now)

        error = _send_answer(delivery, now=now)

        delivery.attempts += 1
        actor = github_app_account()
        if error is None:
            delivery.status = GitHubAnswerStatus.ANSWERED
            delivery.answered_at = now
            delivery.save(update_fields=["status", "answered_at", "attempts", "state", "comment", "reason"])
            audit.record(
                actor=actor,
                action=GateAction.GITHUB_RULE_ANSWERED,
                target=delivery,
                data={**_audit_data(delivery), "attempts": delivery.attempts},
            )
            return Attempt(AttemptOutcome.SENT)

        attempted = attempt_failed(
            delivery,
            error,
            now=now,
            max_attempts=settings.GITHUB_CALLBACK_MAX_ATTEMPTS,
            retry_base=settings.GITHUB_CALLBACK_RETRY_BASE_SECONDS,
            what=f"GitHub delivery {delivery.delivery_id} ({delivery.repository} {delivery.sha} to "
            f"{delivery.environment}): answer {delivery.state}",
            also_save=["state", "comment", "reason"],  # _expire_stale_approval may have changed them
        )
        if attempted.outcome == AttemptOutcome.FAILED:
            audit.record(
                actor=actor,
                action=GateAction.GITHUB_RULE_ANSWER_FAILED,
                target=delivery,
                data={**_audit_data(delivery), "attempts": delivery.attempts, "last_error": delivery.last_error},
            )
        return attempted


def github_answers_dispatch_due(*, now: datetime | None = None, limit: int = 500) -> int:
    """Hand every pending answer whose attempt is due to Celery again (beat's flush)."""
    pending = GitHubDelivery.objects.filter(status=GitHubAnswerStatus.PENDING)
    return attempts_hand_over_due(pending, task=ANSWER_TASK, now=now or business_now(), limit=limit)


def _expire_stale_approval(delivery: GitHubDelivery, now: datetime) -> None:
    """An approval goes out only while its allow decision is valid: an answer that reaches
    GitHub late (a long outage, a lost retry picked up by the flush) must not let a deployment
    through on a decision the gate itself would no longer count. It becomes a rejection."""
    if delivery.state != GitHubAnswer.APPROVED or delivery.decision_id is None:
        return
    valid_until = GateDecision.objects.values_list("valid_until", flat=True).get(pk=delivery.decision_id)
    if valid_until >= now:
        return
    delivery.state = GitHubAnswer.REJECTED
    delivery.reason = GitHubReason.DECISION_EXPIRED
    delivery.comment = _truncate(
        f"Release Gate rejected: the allow decision {delivery.decision_id} expired at "
        f"{valid_until:%Y-%m-%d %H:%M} UTC before GitHub accepted the answer. Re-run the job to ask again.",
        COMMENT_MAX,
    )


# Talking to GitHub's API


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def jwt_rs256(claims: Mapping[str, Any], private_key: rsa.RSAPrivateKey) -> str:
    """A compact JWS (RFC 7515) with RS256 over ``claims``: three base64url parts without padding."""
    header = {"alg": "RS256", "typ": "JWT"}
    segments = [
        _b64url(json.dumps(part, separators=(",", ":"), sort_keys=True).encode("utf-8")) for part in (header, claims)
    ]
    signing_input = ".".join(segments).encode("ascii")
    signature = private_key.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())
    return f"{segments[0]}.{segments[1]}.{_b64url(signature)}"


def github_app_jwt(*, now: datetime, app_id: str, private_key: rsa.RSAPrivateKey) -> str:
    """The JWT that authenticates as the GitHub App (``iss`` is its client id or app id)."""
    issued = int(now.timestamp()) - JWT_BACKDATE_SECONDS
    return jwt_rs256(
        {"iat": issued, "exp": issued + JWT_BACKDATE_SECONDS + JWT_LIFETIME_SECONDS, "iss": app_id}, private_key
    )


def github_private_key() -> rsa.RSAPrivateKey:
    pem = settings.GITHUB_APP_PRIVATE_KEY
    if not pem and settings.GITHUB_APP_PRIVATE_KEY_FILE:
        try:
            pem = Path(settings.GITHUB_APP_PRIVATE_KEY_FILE).read_text(encoding="ascii")
        except (OSError, UnicodeDecodeError) as error:
            raise GitHubCallError(f"cannot read GITHUB_APP_PRIVATE_KEY_FILE: {error}") from None
    if not pem:
        raise GitHubCallError("neither GITHUB_APP_PRIVATE_KEY nor GITHUB_APP_PRIVATE_KEY_FILE is set")
    if "\n" not in pem and "\\n" in pem:  # a PEM pasted into a one-line secret store
        pem = pem.replace("\\n", "\n")
    try:
        key = serialization.load_pem_private_key(pem.encode("ascii"), password=None)
    except (ValueError, TypeError, UnicodeEncodeError) as error:
        raise GitHubCallError(f"the GitHub App private key is not a PEM private key: {error}") from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise GitHubCallError("the GitHub App private key is not an RSA key")
    return key


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A redirect would carry the token somewhere nobody configured: a 3xx is a failed call."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


github_opener = urllib.request.build_opener(_NoRedirects)


def github_request(url: str, *, method: str, bearer: str, payload: Any = None, what: str) -> urllib.request.Request:
    """A call to GitHub's API as GitHub asks to be called (its media type and API version),
    with ``payload`` as the JSON body unless None; only to an http(s) URL."""
    if urlsplit(url).scheme not in {"http", "https"}:
        raise GitHubCallError(f"{what}: not an http(s) URL")
    return urllib.request.Request(  # noqa: S310 - the scheme is checked above
        url,
        data=json.dumps(payload).encode("utf-8") if payload is not None else None,
        method=method,
        headers={
            "Accept": "application/vnd.github+json",
            "Authorization": f"Bearer {bearer}",
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            "X-GitHub-Api-Version": API_VERSION,
        },
    )


def _post_json(url: str, *, payload: Mapping[str, Any], bearer: str, what: str) -> tuple[int, bytes]:
    request = github_request(url, method="POST", bearer=bearer, payload=payload, what=what)
    try:
        with github_opener.open(request, timeout=HTTP_TIMEOUT_SECONDS) as response:
            return int(response.status), response.read(65536)
    except urllib.error.HTTPError as error:
        with error:
            detail = _github_message(error.read(4096))
        raise GitHubCallError(f"{what}: HTTP {error.code} {error.reason}{detail}") from None
    except (urllib.error.URLError, OSError) as error:  # refused, unreachable, TLS, timeout
        reason = getattr(error, "reason", error)
        raise GitHubCallError(f"{what}: {type(error).__name__}: {reason}") from None


def _github_message(body: bytes) -> str:
    """GitHub's ``message`` from an error body, for ``last_error`` (never a success body:
    that would be where a token is)."""
    try:
        message = json.loads(body).get("message")
    except (ValueError, AttributeError):
        return ""
    return f": {str(message)[:300]}" if message else ""


def github_installation_token(*, installation_id: int, repository_id: int | None, now: datetime) -> str:
    """An installation access token for the installation that asked, narrowed to the one
    repository and to what answering needs (deployments: write)."""
    app_id = settings.GITHUB_APP_ID
    if not app_id:
        raise GitHubCallError("GITHUB_APP_ID is not set")
    jwt = github_app_jwt(now=now, app_id=app_id, private_key=github_private_key())
    request: dict[str, Any] = {"permissions": {"deployments": "write"}}
    if repository_id is not None:
        request["repository_ids"] = [repository_id]
    url = f"{settings.GITHUB_API_URL}/app/installations/{int(installation_id)}/access_tokens"
    status, body = _post_json(url, payload=request, bearer=jwt, what="installation token")
    if status != 201:
        raise GitHubCallError(f"installation token: HTTP {status}, expected 201")
    try:
        token = json.loads(body)["token"]
    except (ValueError, KeyError, TypeError):
        raise GitHubCallError("installation token: the answer carries no token") from None
    if not isinstance(token, str) or not token:
        raise GitHubCallError("installation token: the answer carries no token")
    return token


def _send_answer(delivery: GitHubDelivery, *, now: datetime) -> str | None:
    """Give GitHub the answer once; None on success, otherwise what went wrong."""
    try:
        _require_callback_under_api(delivery.callback_url)
    except InvalidInput as error:
        return error.message
    try:
        token = github_installation_token(
            installation_id=delivery.installation_id, repository_id=delivery.repository_id, now=now
        )
        status, _ = _post_json(
            delivery.callback_url,
            payload={"environment_name": delivery.environment, "state": delivery.state, "comment": delivery.comment},
            bearer=token,
            what="callback",
        )
    except GitHubCallError as error:
        return str(error)
    except Exception as error:  # whatever else the outside world throws is an attempt that failed
        return f"{type(error).__name__}: {error}"
    if not 200 <= status < 300:  # urllib raises for these; kept so that the rule stands written here
        return f"callback: HTTP {status}"
    return None
