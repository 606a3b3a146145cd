"""Identities: people and pipelines.

Pipelines are users too (``is_service_account``), so that object permissions, audit actors
and ownership work the same for both; a service account never has a usable password and
authenticates only with API tokens.
"""

import uuid

from django.contrib.auth.models import AbstractUser
from django.db import models

from core.ids import uuid7
from releasegate.tokens import ALL_SCOPES


def all_token_scopes() -> list[str]:
    """Every scope: what the tokens issued before scopes existed could do, and keep."""
    return list(ALL_SCOPES)


class User(AbstractUser):
    is_service_account = models.BooleanField(
        default=False,
        help_text="A pipeline identity: authenticates with API tokens only, never logs in.",
    )

    @property
    def audit_actor(self) -> str:
        kind = "service_account" if self.is_service_account else "user"
        return f"{kind}:{self.username}"


class ApiToken(models.Model):
    """A bearer token of a service account. Only its SHA-256 is stored; the token itself is
    shown once. The prefix is public: it finds the row and lets secret scanners spot leaks."""

    service_account = models.ForeignKey(
        User, on_delete=models.PROTECT, related_name="api_tokens", limit_choices_to={"is_service_account": True}
    )
    name = models.CharField(max_length=100, help_text="What the token is for, e.g. the pipeline name.")
    prefix = models.CharField(max_length=16, unique=True)
    token_hash = models.CharField(max_length=64, help_text="SHA-256 of the whole token, hex.")
    created_at = models.DateTimeField()
    created_by = models.ForeignKey(User, on_delete=models.PROTECT, related_name="+", null=True, blank=True)
    expires_at = models.DateTimeField()
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoked_by = models.ForeignKey(User, on_delete=models.PROTECT, related_name="+", null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    scopes = models.JSONField(
        help_text="What the token may do (releasegate.tokens.TokenScope), chosen when it is issued."
    )

    class Meta:
        verbose_name = "API token"

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.name})"


class GateOutcome(models.TextChoices):
    ALLOW = "allow", "Allow"
    DENY = "deny", "Deny"


class GateDecision(models.Model):
    """One answer of the gate, with who asked and why. Never edited."""

    id = models.UUIDField(primary_key=True, default=uuid7, editable=False)
    service = models.ForeignKey("changelogs.Service", on_delete=models.PROTECT, related_name="+")
    environment = models.CharField(max_length=50)
    artifact_digest = models.CharField(max_length=71)
    changelog = models.ForeignKey("changelogs.Changelog", on_delete=models.PROTECT, null=True, related_name="decisions")
    revision = models.ForeignKey("changelogs.ChangelogRevision", on_delete=models.PROTECT, null=True, related_name="+")
    outcome = models.CharField(max_length=8, choices=GateOutcome.choices)
    reasons = models.JSONField()
    policy = models.CharField(max_length=100, help_text='The rules applied, e.g. "domain:payments@v3".')
    requested_by = models.ForeignKey(User, on_delete=models.PROTECT, related_name="+")
    token_prefix = models.CharField(max_length=16, blank=True, help_text="The API token used, if any.")
    evaluated_at = models.DateTimeField()
    valid_until = models.DateTimeField(help_text="A deployment is covered by an allow decision until then.")
    duration_ms = models.FloatField(help_text="How long the evaluation took (for the latency metric).")

    class Meta:
        ordering = ["-evaluated_at"]
        indexes = [
            models.Index(
                fields=["service", "environment", "artifact_digest", "outcome", "valid_until"], name="decision_coverage"
            ),
            models.Index(fields=["evaluated_at"], name="decision_evaluated_at"),
        ]

    def __str__(self) -> str:
        return f"{self.outcome} {self.artifact_digest[:19]} ({self.evaluated_at:%Y-%m-%d %H:%M})"


class FreezeWindow(models.Model):
    """A period in which production changes stop, for one domain or everywhere."""

    domain = models.ForeignKey(
        "changelogs.Domain",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        help_text="Empty for a global freeze.",
    )
    starts_at = models.DateTimeField()
    ends_at = models.DateTimeField()
    reason = models.CharField(max_length=500)
    created_by = models.ForeignKey(User, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["-starts_at"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(ends_at__gt=models.F("starts_at")), name="freeze_ends_after_start"
            )
        ]
        # The gate asks on every check which freezes are active: those not yet ended are few.
        indexes = [models.Index(fields=["ends_at"], name="freeze_ends_at")]

    def __str__(self) -> str:
        scope = self.domain.slug if self.domain_id else "global"  # type: ignore[union-attr]
        return f"freeze {scope} {self.starts_at:%Y-%m-%d %H:%M} - {self.ends_at:%Y-%m-%d %H:%M}"


class FreezeOverride(models.Model):
    """A signing authority's approval to deploy one changelog during a freeze."""

    freeze = models.ForeignKey(FreezeWindow, on_delete=models.PROTECT, related_name="overrides")
    changelog = models.ForeignKey("changelogs.Changelog", on_delete=models.PROTECT, related_name="+")
    approved_by = models.ForeignKey(User, on_delete=models.PROTECT, related_name="+")
    reason = models.CharField(max_length=1000)
    created_at = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["freeze", "changelog"], name="override_once_per_change")]

    def __str__(self) -> str:
        return f"override of {self.freeze_id} for {self.changelog_id}"


class DeploymentStatus(models.TextChoices):
    STARTED = "started", "Started"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    ROLLED_BACK = "rolled_back", "Rolled back"


class SmokeStatus(models.TextChoices):
    PASSED = "passed", "Passed"
    FAILED = "failed", "Failed"


class NotCovered(models.TextChoices):
    """Why no allow decision covers a deployment report (releasegate/deployments.py, docs/gate.md)."""

    NO_ALLOW_DECISION = "no_allow_decision", "No allow decision for this service, environment and digest"
    NOT_VALID_AT_START = "not_valid_at_start", "No allow decision was valid when the deployment started"
    REPORTED_LATE = "reported_late", "Reported too long after the deployment started"
    CHANGELOG_NOT_APPROVED = "changelog_not_approved", "The changelog is no longer approved (rejected, deployed…)"
    REVISION_SUPERSEDED = "revision_superseded", "The approved revision was superseded"
    UNCOVERED_DEPLOYMENT = "uncovered_deployment", "A later report of a deployment nothing covered"
    OUT_OF_ORDER = "out_of_order", "Does not follow the deployment's previous report"
    DATA_CHANGE_EXECUTOR_UNNAMED = (
        "data_change_executor_unnamed",
        "The change has data changes and the report does not name who executed them",
    )
    DATA_CHANGE_EXECUTOR_APPROVED = (
        "data_change_executor_approved",
        "Whoever executed the data changes is one of the change's approvers",
    )


class Deployment(models.Model):
    """A pipeline's report of what it deployed, attached to the changelog whose digest it
    carries whatever the decision. ``unauthorised`` when no allow decision covers it
    (releasegate/deployments.py says which do, ``not_covered_because`` why not)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    idempotency_key = models.CharField(max_length=200)
    reported_by = models.ForeignKey(User, on_delete=models.PROTECT, related_name="+")
    service = models.ForeignKey("changelogs.Service", on_delete=models.PROTECT, related_name="+")
    environment = models.CharField(max_length=50)
    artifact_digest = models.CharField(max_length=71)
    status = models.CharField(max_length=16, choices=DeploymentStatus.choices)
    pipeline_run_url = models.URLField(max_length=500, blank=True)
    data_change_executor = models.CharField(
        max_length=254,
        blank=True,
        help_text="Who executed the change's data changes (username or e-mail), as the report names them.",
    )
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    decision = models.ForeignKey(
        GateDecision, on_delete=models.PROTECT, null=True, blank=True, related_name="deployments"
    )
    changelog = models.ForeignKey(
        "changelogs.Changelog", on_delete=models.PROTECT, null=True, blank=True, related_name="deployments"
    )
    unauthorised = models.BooleanField(default=False)
    not_covered_because = models.CharField(
        max_length=32, choices=NotCovered.choices, blank=True, help_text="Empty when an allow decision covers it."
    )
    reported_at = models.DateTimeField()
    request_fingerprint = models.CharField(max_length=64, help_text="SHA-256 of the report, to spot a reused key.")
    smoke_status = models.CharField(
        max_length=16,
        choices=SmokeStatus.choices,
        blank=True,
        help_text="The production smoke test's verdict (the latest reported); empty until one is reported.",
    )

    class Meta:
        ordering = ["-reported_at"]
        constraints = [
            models.UniqueConstraint(fields=["reported_by", "idempotency_key"], name="deployment_idempotency_key")
        ]
        indexes = [
            models.Index(fields=["unauthorised", "reported_at"], name="deployment_unauthorised"),
            models.Index(fields=["service", "environment", "started_at"], name="deployment_service_env"),
        ]

    def __str__(self) -> str:
        return f"{self.service_id} {self.environment} {self.status} {self.artifact_digest[:19]}"

    @property
    def not_covered_reason(self) -> str | None:
        return self.not_covered_because or None


class GitHubAnswer(models.TextChoices):
    APPROVED = "approved", "Approved"
    REJECTED = "rejected", "Rejected"


class GitHubAnswerStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    ANSWERED = "answered", "Answered"
    FAILED = "failed", "Failed"


class GitHubDelivery(models.Model):
    """One ``deployment_protection_rule`` question from GitHub and the answer to it
    (releasegate/github.py). Written with the gate's decision; the answer is then sent to
    ``callback_url`` by Celery until GitHub accepts it (``answered``) or the attempts run out
    (``failed``). A redelivery (GitHub's same delivery id and body) finds this row and changes
    nothing; the same signed body under another delivery id is a replay, refused and audited:
    ``replay_key`` is over what the signature covers, not the delivery id header."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    delivery_id = models.CharField(max_length=100, unique=True, help_text="GitHub's X-GitHub-Delivery.")
    replay_key = models.CharField(
        max_length=64,
        unique=True,
        null=True,
        blank=True,
        help_text="SHA-256 over the installation, the deployment and the body's SHA-256 (all signed); "
        "empty for deliveries received before it was kept.",
    )
    body_sha256 = models.CharField(max_length=64, blank=True, help_text="SHA-256 of the signed body, hex.")
    deployment_created_at = models.DateTimeField(
        null=True, blank=True, help_text="When GitHub created the deployment (the payload's own time)."
    )
    event = models.CharField(
        max_length=64, blank=True, help_text="What started the deployment (push, workflow_dispatch…), from the payload."
    )
    repository = models.CharField(max_length=300, help_text="owner/name on GitHub.")
    repository_url = models.CharField(max_length=500, help_text="The repository's html_url.")
    repository_id = models.BigIntegerField(null=True, blank=True)
    sha = models.CharField(max_length=64, help_text="The commit GitHub is deploying.")
    environment = models.CharField(max_length=255, help_text="The GitHub environment, as GitHub named it.")
    deployment_id = models.BigIntegerField(null=True, blank=True)
    installation_id = models.BigIntegerField()
    callback_url = models.CharField(max_length=1000, help_text="Where GitHub takes the answer.")
    service = models.ForeignKey("changelogs.Service", on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    decision = models.ForeignKey(
        GateDecision,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="github_deliveries",
        help_text="Empty when the gate was not asked (see reason).",
    )
    state = models.CharField(max_length=16, choices=GitHubAnswer.choices)
    reason = models.CharField(
        max_length=32, blank=True, help_text="Why it was rejected without the gate (no_service, no_changelog…)."
    )
    comment = models.TextField(help_text="What GitHub shows with the answer.")
    status = models.CharField(max_length=16, choices=GitHubAnswerStatus.choices, default=GitHubAnswerStatus.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField()
    last_error = models.TextField(blank=True)
    received_at = models.DateTimeField()
    answered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "GitHub delivery"
        verbose_name_plural = "GitHub deliveries"
        ordering = ["-received_at"]
        indexes = [models.Index(fields=["status", "next_attempt_at"], name="github_delivery_due")]

    def __str__(self) -> str:
        return f"{self.repository}@{self.sha[:12]} → {self.environment}: {self.state} ({self.status})"


class AccessReviewStatus(models.TextChoices):
    OPEN = "open", "Open"
    CLOSED = "closed", "Closed"


class AccessReviewItemStatus(models.TextChoices):
    PENDING = "pending", "Waiting for re-confirmation"
    RECONFIRMED = "reconfirmed", "Re-confirmed"
    REVOKED = "revoked", "Revoked: not re-confirmed by the deadline"
    ENDED = "ended", "Ended otherwise during the review"


class AccessReview(models.Model):
    """A periodic review of who may sign (releasegate/access_review.py): every grant in force
    at its opening must be re-confirmed by the deadline, or it is revoked."""

    opened_at = models.DateTimeField()
    deadline = models.DateTimeField()
    opened_by = models.ForeignKey("releasegate.User", on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    status = models.CharField(max_length=16, choices=AccessReviewStatus.choices, default=AccessReviewStatus.OPEN)
    closed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-opened_at"]
        # One review open at a time, even when two administrators open one at once.
        constraints = [
            models.UniqueConstraint(fields=["status"], condition=models.Q(status="open"), name="access_review_one_open")
        ]

    def __str__(self) -> str:
        return f"access review of {self.opened_at:%Y-%m-%d} (until {self.deadline:%Y-%m-%d})"


class AccessReviewItem(models.Model):
    review = models.ForeignKey(AccessReview, on_delete=models.PROTECT, related_name="items")
    grant = models.ForeignKey("approvals.AuthorityGrant", on_delete=models.PROTECT, related_name="+")
    status = models.CharField(
        max_length=16, choices=AccessReviewItemStatus.choices, default=AccessReviewItemStatus.PENDING
    )
    decided_by = models.ForeignKey(
        "releasegate.User", on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    decided_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["review", "id"]
        constraints = [models.UniqueConstraint(fields=["review", "grant"], name="access_review_item_once")]

    def __str__(self) -> str:
        return f"{self.grant} ({self.status})"


class SmokeTest(models.Model):
    """A production smoke test of the critical journeys, reported against a deployment after it
    succeeded (PR-19): the file kept byte for byte under its SHA-256, what its parser made of it,
    and whether every critical journey passed. Never edited."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    deployment = models.ForeignKey(Deployment, on_delete=models.PROTECT, related_name="smoke_tests")
    file_name = models.CharField(max_length=255)
    format = models.CharField(max_length=32)
    sha256 = models.CharField(max_length=64)
    storage_key = models.CharField(max_length=200)
    summary = models.JSONField()
    journeys = models.JSONField(help_text="Each critical journey's outcome in the file (missing: not run).")
    failed_journeys = models.JSONField(help_text="The critical journeys that did not pass.")
    passed = models.BooleanField()
    reported_by = models.ForeignKey(User, on_delete=models.PROTECT, related_name="+")
    reported_at = models.DateTimeField()

    class Meta:
        ordering = ["reported_at", "id"]

    def __str__(self) -> str:
        return f"smoke test of {self.deployment_id} ({'passed' if self.passed else 'failed'})"
