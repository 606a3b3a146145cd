"""The catalog (domains, services, journeys) and the changelogs that production changes carry.

A changelog's content lives on its revisions. A draft revision is edited in place; once
submitted its content is frozen and hashed, and any later edit starts a new revision, so an
approval of an earlier revision can never be carried over to changed content.
"""

import uuid

from django.conf import settings
from django.core.validators import RegexValidator
from django.db import models

JOURNEY_ID_PATTERN = r"^[A-Z][A-Z0-9]{1,9}-[0-9]{1,6}$"
DIGEST_PATTERN = r"^sha256:[0-9a-f]{64}$"


class Domain(models.Model):
    """A business domain, mirroring a squad: payments, transfers, registration…"""

    slug = models.SlugField(max_length=64, unique=True)
    name = models.CharField(max_length=200)
    owning_squad = models.CharField(max_length=200)

    class Meta:
        ordering = ["slug"]
        # The authority matrix: granted per domain to users or groups (django-guardian).
        permissions = [
            ("sign_off", "Signing authority: may approve production changes of the domain"),
            ("security_sign_off", "May give the security sign-off for changes with security impact"),
            ("data_sign_off", "May give the data sign-off for changes with data changes"),
        ]

    def __str__(self) -> str:
        return self.name


class Service(models.Model):
    """A deployable service; pipelines act on services they hold ``manage_changelogs`` for."""

    slug = models.SlugField(max_length=64, unique=True)
    name = models.CharField(max_length=200)
    domain = models.ForeignKey(Domain, on_delete=models.PROTECT, related_name="services")
    repository_url = models.URLField(max_length=500, blank=True)

    class Meta:
        ordering = ["slug"]
        permissions = [
            ("manage_changelogs", "Can create, edit and submit changelogs and evidence for the service"),
        ]

    def __str__(self) -> str:
        return self.slug


class Journey(models.Model):
    """A customer journey of a domain, with a stable id that tests carry (``PAY-001``)."""

    journey_id = models.CharField(
        max_length=20,
        unique=True,
        validators=[RegexValidator(JOURNEY_ID_PATTERN, "A journey id looks like PAY-001.")],
    )
    domain = models.ForeignKey(Domain, on_delete=models.PROTECT, related_name="journeys")
    name = models.CharField(max_length=200)
    critical = models.BooleanField(default=False)

    class Meta:
        ordering = ["journey_id"]

    def __str__(self) -> str:
        return f"{self.journey_id} {self.name}"


class ChangelogKind(models.TextChoices):
    TRAIN = "train", "Deployment train"
    HOTFIX = "hotfix", "Hotfix"


class ChangelogStatus(models.TextChoices):
    DRAFT = "draft", "Draft"
    SUBMITTED = "submitted", "Submitted"
    APPROVED = "approved", "Approved"
    REJECTED = "rejected", "Rejected"
    DEPLOYED = "deployed", "Deployed"
    ROLLED_BACK = "rolled_back", "Rolled back"
    CLOSED = "closed", "Closed"


class RevisionStatus(models.TextChoices):
    DRAFT = "draft", "Draft"
    SUBMITTED = "submitted", "Submitted"
    SUPERSEDED = "superseded", "Superseded"


class RiskTier(models.TextChoices):
    LOW = "low", "Low"
    MEDIUM = "medium", "Medium"
    HIGH = "high", "High"
    CRITICAL = "critical", "Critical"


class Changelog(models.Model):
    """One production deployment of one service."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    service = models.ForeignKey(Service, on_delete=models.PROTECT, related_name="changelogs")
    kind = models.CharField(max_length=16, choices=ChangelogKind.choices)
    status = models.CharField(max_length=16, choices=ChangelogStatus.choices, default=ChangelogStatus.DRAFT)
    current_revision = models.OneToOneField(
        "ChangelogRevision",
        on_delete=models.PROTECT,
        related_name="+",
        null=True,
        help_text="The revision being drafted, or the latest submitted one. Set on creation.",
    )
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField()

    class Meta:
        ordering = ["-created_at", "id"]
        indexes = [
            models.Index(fields=["service", "status"], name="changelog_service_status"),
            models.Index(fields=["created_at"], name="changelog_created_at"),
        ]

    def __str__(self) -> str:
        return f"{self.service.slug} {self.kind} {self.id}"


class ChangelogRevision(models.Model):
    """The content of a changelog at one point. Frozen once submitted."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    changelog = models.ForeignKey(Changelog, on_delete=models.PROTECT, related_name="revisions")
    number = models.PositiveIntegerField()
    status = models.CharField(max_length=16, choices=RevisionStatus.choices, default=RevisionStatus.DRAFT)
    content = models.JSONField(help_text="The changelog content as validated; see docs/changelog.md.")
    # Copied out of ``content`` so that the gate and GitHub lookups are indexed.
    artifact_digest = models.CharField(max_length=71)
    source_revision = models.CharField(max_length=64, blank=True)
    content_hash = models.CharField(
        max_length=64, blank=True, help_text="SHA-256 of the canonical content, set on submit."
    )
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField()
    submitted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+", null=True, blank=True
    )
    submitted_at = models.DateTimeField(null=True, blank=True)
    # What the policy said when the revision was submitted (approvers and auditors see it).
    readiness_at_submit = models.JSONField(null=True, blank=True)

    class Meta:
        ordering = ["changelog", "number"]
        constraints = [
            models.UniqueConstraint(fields=["changelog", "number"], name="revision_number_unique"),
            models.CheckConstraint(
                condition=models.Q(status="draft") | ~models.Q(content_hash=""),
                name="revision_submitted_has_hash",
            ),
        ]
        indexes = [
            models.Index(fields=["artifact_digest", "status"], name="revision_digest_status"),
            models.Index(fields=["source_revision"], name="revision_source_revision"),
            # Recent submissions whose commit authors are still to be read (releasegate/github_commits.py).
            models.Index(fields=["submitted_at"], name="revision_submitted_at"),
        ]

    def __str__(self) -> str:
        return f"{self.changelog_id} r{self.number}"


class CommitAuthorsStatus(models.TextChoices):
    READ = "read", "Read from the source host"
    INCOMPLETE = "incomplete", "Read in part (more commits than can be listed)"
    RETRY = "retry", "Not read yet: an attempt failed and will be retried"
    FAILED = "failed", "Could not be read"


class CommitAuthorsSource(models.TextChoices):
    COMPARE = "compare", "The commits since the service's previous deployed revision"
    PULL_REQUEST = "pull_request", "The commits of the pull request linked in the changelog"
    COMMIT = "commit", "The head commit (source_revision)"


class CommitAuthors(models.Model):
    """The authors and co-authors of the commits a submitted revision deploys, as the source
    host (GitHub) says, read in the background after submission (releasegate/github_commits.py).
    Beside the pipeline's own declaration (``content["commit_authors"]``), which it may omit:
    both are excluded from approving (changelogs.selectors.commit_authors_of)."""

    revision = models.OneToOneField(ChangelogRevision, on_delete=models.PROTECT, related_name="commit_authors_read")
    status = models.CharField(max_length=16, choices=CommitAuthorsStatus.choices)
    source = models.CharField(max_length=16, choices=CommitAuthorsSource.choices, blank=True)
    repository = models.CharField(max_length=300, blank=True, help_text="owner/name on the source host.")
    base = models.CharField(max_length=64, blank=True, help_text="The previous deployed revision, for compare.")
    head = models.CharField(max_length=64, blank=True, help_text="The revision's source_revision.")
    pull_request = models.PositiveIntegerField(null=True, blank=True)
    commits = models.JSONField(default=list, blank=True, help_text="The commit ids read.")
    authors = models.JSONField(
        default=list, blank=True, help_text='[{"name", "email", "login", "role": "author" | "co_author"}]'
    )
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField()
    read_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name_plural = "commit authors"
        indexes = [models.Index(fields=["status", "next_attempt_at"], name="commit_authors_due")]

    def __str__(self) -> str:
        return f"commit authors of {self.revision_id} ({self.status})"


class EvidenceKind(models.TextChoices):
    SANITY = "sanity", "Staging sanity tests"
    PERFORMANCE = "performance", "Performance results"
    SECURITY = "security", "Security results"
    DOCUMENT = "document", "Document"


class Verdict(models.TextChoices):
    PASS = "pass", "Pass"
    FAIL = "fail", "Fail"
    INFO = "info", "Information"


class Evidence(models.Model):
    """An uploaded file, kept byte for byte under its SHA-256, with what its parser made of it.
    Immutable. It belongs to the revisions it is attached to; a new revision carries it on."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    changelog = models.ForeignKey(Changelog, on_delete=models.PROTECT, related_name="evidence")
    revisions = models.ManyToManyField(ChangelogRevision, related_name="evidence")
    added_in_revision = models.PositiveIntegerField()
    kind = models.CharField(max_length=16, choices=EvidenceKind.choices)
    format = models.CharField(max_length=32)
    file_name = models.CharField(max_length=255)
    size = models.PositiveBigIntegerField()
    sha256 = models.CharField(max_length=64)
    media_type = models.CharField(max_length=100)
    storage_key = models.CharField(max_length=200, help_text="Content-addressed: sha256/ab/cd/<hash>.")
    tool = models.CharField(max_length=100, blank=True)
    environment = models.CharField(max_length=50, blank=True)
    artifact_digest = models.CharField(
        max_length=71,
        blank=True,
        help_text="The artifact the evidence was produced against (sha256:…), as the upload named it.",
    )
    declared_journeys = models.JSONField(default=list, blank=True)
    parser_version = models.CharField(max_length=50)
    summary = models.JSONField()
    verdict = models.CharField(max_length=8, choices=Verdict.choices)
    uploaded_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    uploaded_at = models.DateTimeField()

    class Meta:
        verbose_name_plural = "evidence"
        ordering = ["uploaded_at", "id"]
        indexes = [models.Index(fields=["sha256"], name="evidence_sha256")]

    def __str__(self) -> str:
        return f"{self.kind} {self.file_name} ({self.sha256[:12]})"


class Policy(models.Model):
    """One version of the rules for a domain, or for one service of it (an override). Never
    edited: a change is a new version, so every decision can name the rules it applied."""

    domain = models.ForeignKey(Domain, on_delete=models.PROTECT, related_name="policies")
    service = models.ForeignKey(
        Service,
        on_delete=models.PROTECT,
        related_name="policies",
        null=True,
        blank=True,
        help_text="Empty for the domain's policy; set to override it for one service.",
    )
    version = models.PositiveIntegerField()
    rules = models.JSONField(help_text="See changelogs/policy.py: PolicyRules. Missing keys take the defaults.")
    reason = models.CharField(max_length=500)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField()

    class Meta:
        verbose_name_plural = "policies"
        ordering = ["domain", "service", "-version"]
        constraints = [
            models.UniqueConstraint(
                fields=["domain", "version"], condition=models.Q(service__isnull=True), name="policy_domain_version"
            ),
            models.UniqueConstraint(
                fields=["service", "version"], condition=models.Q(service__isnull=False), name="policy_service_version"
            ),
        ]

    def __str__(self) -> str:
        scope = self.service.slug if self.service_id else self.domain.slug  # type: ignore[union-attr]
        return f"{scope} v{self.version}"
