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


class RetrospectiveStatus(models.TextChoices):
    OPEN = "open", "Open"
    COMPLETED = "completed", "Completed"
    OVERDUE = "overdue", "Overdue"


class Retrospective(models.Model):
    """What a hotfix owes after going out on one approval: its tier's full approvals by a
    deadline. Overdue ones are exceptions and block the service's next deployments."""

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

    class Meta:
        ordering = ["due_at"]
        indexes = [
            models.Index(fields=["status", "due_at"], name="retrospective_status_due"),
            models.Index(fields=["service", "status"], name="retrospective_service_status"),
        ]

    def __str__(self) -> str:
        return f"retrospective of {self.changelog_id} ({self.status})"


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
