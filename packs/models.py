"""The evidence pack job: a request for a pack, its build's lease and progress, and the files
it made. The model moved here from the audit app with its table (``audit_packjob``) and its
audit events' target type (``audit.packjob``), so neither stored rows nor audit bytes change.
"""

import uuid

from django.conf import settings
from django.db import models

# Pack events name their job as they did before the model moved: the audit log's bytes and an
# auditor's queries by target type stay the same.
AUDIT_TARGET_TYPE = "audit.packjob"


class PackKind(models.TextChoices):
    CHANGELOG = "changelog", "Changelog pack"
    POPULATION = "population", "Population pack"


class PackStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"


class PackJob(models.Model):
    """A request for an evidence pack and its build. The files are visible only once the job is
    done: a build that dies half way leaves nothing anyone can download, and is retried."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    kind = models.CharField(max_length=16, choices=PackKind.choices)
    params = models.JSONField(help_text="What the pack covers: a changelog, or a period, domain and sample.")
    params_key = models.CharField(
        max_length=64, help_text="SHA-256 of kind and params: the same request, the same job."
    )
    status = models.CharField(max_length=16, choices=PackStatus.choices, default=PackStatus.QUEUED)
    progress = models.PositiveSmallIntegerField(default=0, help_text="Percent.")
    stage = models.CharField(max_length=100, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField()
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    files = models.JSONField(default=dict, blank=True, help_text="name -> {storage_key, sha256, size, media_type}")
    # One builder at a time (issue 19): a delivery builds only while it holds an unexpired lease,
    # renewed at every stage; a second delivery walks away, and a lease that ran out (a worker
    # killed, a database blip) lets the next delivery take the job over.
    lease_owner = models.CharField(max_length=64, blank=True, help_text="The delivery building it now.")
    lease_expires_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        # The table keeps the name it had when the model lived in the audit app.
        db_table = "audit_packjob"
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["params_key", "status"], name="packjob_params_status")]

    def __str__(self) -> str:
        return f"{self.kind} pack {self.id} ({self.status})"


def audit_target(job: PackJob) -> tuple[str, str]:
    """The job as an audit event's target."""
    return AUDIT_TARGET_TYPE, str(job.pk)
