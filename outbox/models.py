import uuid

from django.db import models


class Message(models.Model):
    """A Celery task to publish once the transaction that wrote this row commits. Published
    rows are deleted; a row still here after ``OUTBOX_FLUSH_AFTER_SECONDS`` was not published
    (the broker was down or hung, the process died) and the beat flush publishes it."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    task = models.CharField(max_length=200, help_text="The Celery task's registered name.")
    args = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(db_index=True)
    attempts = models.PositiveIntegerField(default=0, help_text="Failed attempts to publish.")
    last_error = models.TextField(blank=True)

    class Meta:
        ordering = ["created_at"]

    def __str__(self) -> str:
        return f"{self.task}{tuple(self.args)}"
