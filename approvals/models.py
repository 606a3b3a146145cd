"""Approvals, hotfix retrospectives, and the notification outbox."""

import uuid

from django.conf import settings
from django.db import models


class Decision(models.TextChoices):
    APPROVED = "approved", "Approved"
    REJECTED = "rejected", "Rejected"


class Approval(models.Model):
    """A signing authority's decision on one submitted revision. It signs that revision's
    content hash: once the content changes, it no longer counts. Never edited."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    changelog = models.ForeignKey("changelogs.Changelog", on_delete=models.PROTECT, related_name="approvals")
    revision = models.ForeignKey("changelogs.ChangelogRevision", on_delete=models.PROTECT, related_name="approvals")
    content_hash = models.CharField(max_length=64, help_text="The revision's content hash this decision signs.")
    decision = models.CharField(max_length=8, choices=Decision.choices)
    reason = models.TextField(blank=True)
    approver = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    authorities = models.JSONField(help_text="The authorities the approver held for the domain when deciding.")
    retrospective = models.BooleanField(default=False, help_text="Given after a hotfix went out on one approval.")
    decided_at = models.DateTimeField()
    expires_at = models.DateTimeField()

    class Meta:
        ordering = ["decided_at", "id"]
        indexes = [models.Index(fields=["changelog", "revision"], name="approval_changelog_revision")]

    def __str__(self) -> str:
        return f"{self.decision} by {self.approver_id} of {self.changelog_id}"


class ApprovalSignature(models.Model):
    """The approver's own signature over what they decided: a WebAuthn assertion by a passkey
    a second administrator confirmed as theirs, over the challenge derived from the changelog,
    revision, content hash, decision and reason (identity.challenge). Kept byte for byte, with
    the passkey's public key, so that anyone can check it offline (tlog/verifier.py)."""

    approval = models.OneToOneField(Approval, on_delete=models.PROTECT, related_name="signature")
    passkey = models.ForeignKey("identity.Passkey", on_delete=models.PROTECT, related_name="+")
    credential_id = models.CharField(max_length=1400, help_text="base64url")
    authenticator_data = models.TextField(help_text="base64url, as the authenticator gave it")
    client_data_json = models.TextField(help_text="base64url, as the browser gave it")
    signature = models.TextField(help_text="base64url")
    public_key_pem = models.TextField(help_text="The passkey's public key (SubjectPublicKeyInfo PEM).")
    challenge = models.CharField(max_length=64, help_text="hex: what the signature covers (identity.challenge).")
    rp_id = models.CharField(max_length=253)

    def __str__(self) -> str:
        return f"signature of {self.approval_id}"


class GrantKind(models.TextChoices):
    AUTHORITY = "authority", "A signing authority on a domain"
    MEMBERSHIP = "membership", "Membership of a group that holds signing authority"


class GrantStatus(models.TextChoices):
    PENDING = "pending", "Waiting for a second administrator"
    ACTIVE = "active", "In force"
    REFUSED = "refused", "Refused or withdrawn before it took effect"
    REVOKED = "revoked", "Revoked"


GRANT_OPEN = (GrantStatus.PENDING, GrantStatus.ACTIVE)


class AuthorityGrant(models.Model):
    """Who may sign for a domain, and who said so. A grant takes effect only when a second
    administrator confirms it; an approval counts only on an authority that neither its
    approver's own request nor their own confirmation put in force (approvals/rules.py).

    Two kinds: an authority (sign_off, security_sign_off, data_sign_off) on a domain for a
    person or a group; and a person's membership of a group that holds authority (joining
    such a group is being made a signing authority). Never edited but to move on in its
    life (pending → active → revoked, or pending → refused); each step is an audit event.
    Active grants are mirrored into django-guardian's object permissions, which decide what
    a signing authority may see and who is notified; what counts is decided from grants."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    kind = models.CharField(max_length=16, choices=GrantKind.choices)
    domain = models.ForeignKey("changelogs.Domain", on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    authority = models.CharField(max_length=32, blank=True, help_text="For an authority grant.")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="authority_grants"
    )
    group = models.ForeignKey("auth.Group", on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    subject = models.CharField(
        max_length=200, help_text='What is granted, as one key: "authority:<domain>:<authority>:user:<id>", …'
    )
    status = models.CharField(max_length=16, choices=GrantStatus.choices, default=GrantStatus.PENDING)
    reason = models.CharField(max_length=500)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        help_text="Empty for authorities held before grants needed a second administrator.",
    )
    requested_at = models.DateTimeField()
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        help_text="Who confirmed (or refused) it: never the one who asked.",
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    revoked_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-requested_at"]
        constraints = [
            models.CheckConstraint(
                name="grant_authority_targets_one",
                condition=~models.Q(kind="authority")
                | (
                    models.Q(domain__isnull=False)
                    & ~models.Q(authority="")
                    & (
                        models.Q(user__isnull=False, group__isnull=True)
                        | models.Q(user__isnull=True, group__isnull=False)
                    )
                ),
            ),
            models.CheckConstraint(
                name="grant_membership_targets_both",
                condition=~models.Q(kind="membership")
                | models.Q(domain__isnull=True, authority="", user__isnull=False, group__isnull=False),
            ),
            # One grant in force or waiting for each thing granted.
            models.UniqueConstraint(
                fields=["subject"], condition=models.Q(status__in=["pending", "active"]), name="grant_once"
            ),
        ]
        indexes = [models.Index(fields=["status", "kind"], name="grant_status_kind")]

    def __str__(self) -> str:
        return self.describe()

    @staticmethod
    def subject_of(
        *, kind: str, domain_id: int | None = None, authority: str = "", user_id: int | None, group_id: int | None
    ) -> str:
        if kind == GrantKind.MEMBERSHIP:
            return f"membership:group:{group_id}:user:{user_id}"
        grantee = f"group:{group_id}" if group_id else f"user:{user_id}"
        return f"authority:{domain_id}:{authority}:{grantee}"

    def describe(self) -> str:
        if self.kind == GrantKind.MEMBERSHIP:
            return f"{self.user} joins group {self.group}"
        grantee = f"group {self.group}" if self.group_id else str(self.user)
        return f"{self.authority} on {self.domain} for {grantee}"


class RetrospectiveStatus(models.TextChoices):
    OPEN = "open", "Open"
    COMPLETED = "completed", "Completed"
    OVERDUE = "overdue", "Overdue"


class Retrospective(models.Model):
    """What every hotfix owes after going out on one approval: its tier's full approvals and its
    post-implementation review, by a deadline. Overdue ones are exceptions and block the
    service's next deployments."""

    changelog = models.OneToOneField("changelogs.Changelog", on_delete=models.PROTECT, related_name="retrospective")
    # The changelog's service (which never changes), so that the gate finds a service's overdue
    # retrospectives through an index instead of joining every overdue one in the bank to its
    # changelog on every check.
    service = models.ForeignKey("changelogs.Service", on_delete=models.PROTECT, related_name="+")
    opened_at = models.DateTimeField()
    due_at = models.DateTimeField()
    status = models.CharField(max_length=16, choices=RetrospectiveStatus.choices, default=RetrospectiveStatus.OPEN)
    completed_at = models.DateTimeField(null=True, blank=True)
    overdue_at = models.DateTimeField(null=True, blank=True)
    escalated_at = models.DateTimeField(
        null=True, blank=True, help_text="When it was escalated to the second level (RETROSPECTIVE_ESCALATION_EMAILS)."
    )
    approved_at = models.DateTimeField(
        null=True, blank=True, help_text="When the tier's full approvals were in (the review may still be owed)."
    )

    class Meta:
        ordering = ["due_at"]
        indexes = [
            models.Index(fields=["status", "due_at"], name="retrospective_status_due"),
            models.Index(fields=["service", "status"], name="retrospective_service_status"),
        ]

    def __str__(self) -> str:
        return f"retrospective of {self.changelog_id} ({self.status})"


class PostImplementationReview(models.Model):
    """A hotfix's post-implementation review (PIR): what happened, whether the fix worked, and
    what follows. Attached once to the retrospective, after the deployment, by a person; never
    edited. A hotfix closes only with it (PR-09)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    retrospective = models.OneToOneField(Retrospective, on_delete=models.PROTECT, related_name="review")
    summary = models.TextField(help_text="What happened, what the hotfix changed and whether it worked.")
    follow_up = models.TextField(blank=True, help_text="What follows: the lasting fix, actions, owners.")
    written_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    written_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"post-implementation review of {self.retrospective}"


class Channel(models.TextChoices):
    EMAIL = "email", "E-mail"
    WEBHOOK = "webhook", "Webhook"


class DeliveryStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    SENT = "sent", "Sent"
    FAILED = "failed", "Failed"


class Notification(models.Model):
    """The outbox: written in the transaction of the change it announces, delivered after
    commit by Celery with retries. Nothing is lost when the broker is down: pending rows are
    picked up again by the flush task. The id is the delivery id receivers deduplicate on."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    event = models.CharField(max_length=64, help_text='e.g. "changelog.submitted", "retrospective.overdue".')
    channel = models.CharField(max_length=16, choices=Channel.choices)
    recipients = models.JSONField(default=list, blank=True, help_text="E-mail addresses, for e-mail.")
    subject = models.CharField(max_length=200, blank=True)
    payload = models.JSONField()
    status = models.CharField(max_length=16, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField()
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField()
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["created_at"]
        indexes = [models.Index(fields=["status", "next_attempt_at"], name="notification_due")]

    def __str__(self) -> str:
        return f"{self.event} via {self.channel} ({self.status})"
