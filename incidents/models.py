"""Incidents, what they were caused by, their postmortems and their DORA classification.

An incident belongs to services (and through them to domains) and to the customer journeys it
hit. It is opened by a person or a pipeline through the API, or by PagerDuty or another tool
through a signed webhook (incidents/pagerduty.py); each event of its life is on its timeline.
The deployments before it are its suspects (incidents/selectors.py); a person confirms one as
its cause or not related, with a reason: a confirmed cause is a failed change.
"""

from django.conf import settings
from django.db import models

from core.ids import uuid7
from incidents.rules import Severity


class ImpactBucket(models.TextChoices):
    UNDER_10 = "under_10", "Under 10 % of active users"
    FROM_10_TO_25 = "10_25", "10-25 % of active users"
    FROM_25_TO_50 = "25_50", "25-50 % of active users"
    OVER_50 = "over_50", "Over 50 % of active users"


class IncidentStatus(models.TextChoices):
    OPEN = "open", "Open"
    MITIGATED = "mitigated", "Mitigated"
    RESOLVED = "resolved", "Resolved"
    CLOSED = "closed", "Closed"


class IncidentSource(models.TextChoices):
    MANUAL = "manual", "Recorded in Release Gate"
    PAGERDUTY = "pagerduty", "PagerDuty"
    WEBHOOK = "webhook", "Signed webhook"


class Incident(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid7, editable=False)
    reference = models.CharField(max_length=32, unique=True, help_text="INC-00042; what a hotfix names.")
    title = models.CharField(max_length=300)
    description = models.TextField(blank=True)
    services = models.ManyToManyField("changelogs.Service", related_name="incidents")
    journeys = models.ManyToManyField("changelogs.Journey", related_name="incidents", blank=True)
    planned = models.BooleanField(default=False, help_text="Maintenance that caused degradation.")
    security = models.BooleanField(default=False, help_text="A security incident.")
    severity = models.CharField(max_length=16, choices=[(s.value, s.value.title()) for s in Severity])
    impact = models.CharField(max_length=16, choices=ImpactBucket.choices, blank=True)
    impact_rationale = models.TextField(blank=True, help_text="How the impact bucket was determined.")
    status = models.CharField(max_length=16, choices=IncidentStatus.choices, default=IncidentStatus.OPEN)
    detected_at = models.DateTimeField()
    started_at = models.DateTimeField()
    mitigated_at = models.DateTimeField(null=True, blank=True)
    resolved_at = models.DateTimeField(null=True, blank=True)
    closed_at = models.DateTimeField(null=True, blank=True)
    source = models.CharField(max_length=16, choices=IncidentSource.choices, default=IncidentSource.MANUAL)
    external_id = models.CharField(max_length=200, blank=True, help_text="The source's id (PagerDuty's PGR0VU2).")
    external_url = models.URLField(max_length=500, blank=True)
    # When the source last set the status and the severity (its own clock): an event older than
    # that arrived out of order and goes on the timeline without undoing the newer state.
    source_status_at = models.DateTimeField(null=True, blank=True)
    source_severity_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+", null=True)
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField()

    class Meta:
        ordering = ["-started_at", "-id"]
        permissions = [("classify_incident", "May classify incidents under DORA and mark reports sent")]
        constraints = [
            models.UniqueConstraint(
                fields=["source", "external_id"],
                condition=~models.Q(external_id=""),
                name="incident_external_id_once",
            ),
            models.CheckConstraint(
                condition=models.Q(detected_at__gte=models.F("started_at")), name="detected_after_start"
            ),
        ]
        indexes = [models.Index(fields=["status", "severity"], name="incident_status_severity")]

    def __str__(self) -> str:
        return f"{self.reference} {self.title}"

    @property
    def duration(self):  # type: ignore[no-untyped-def]  # timedelta | None
        end = self.resolved_at or self.mitigated_at
        return end - self.started_at if end else None


class TimelineEvent(models.Model):
    """One event of an incident's life, from Release Gate or from the tool that reported it."""

    incident = models.ForeignKey(Incident, on_delete=models.PROTECT, related_name="timeline")
    at = models.DateTimeField(help_text="When it happened (the source's time).")
    kind = models.CharField(max_length=64, help_text="incident.triggered, status, note…")
    summary = models.TextField()
    source = models.CharField(max_length=16, choices=IncidentSource.choices)
    actor = models.CharField(max_length=200, blank=True)
    recorded_at = models.DateTimeField()

    class Meta:
        ordering = ["at", "id"]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M} {self.kind}"


class InboundEvent(models.Model):
    """An event received from PagerDuty or another tool: its id is unique per source, so a
    redelivery changes nothing; the SHA-256 of the signed body tells a redelivery (same body)
    from a reuse of the id (another body: refused)."""

    source = models.CharField(max_length=16, choices=IncidentSource.choices)
    event_id = models.CharField(max_length=200)
    event_type = models.CharField(max_length=64)
    body_sha256 = models.CharField(max_length=64)
    occurred_at = models.DateTimeField()
    incident = models.ForeignKey(Incident, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    outcome = models.CharField(max_length=32, help_text="applied, stale (older than what the incident shows), ignored")
    received_at = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["source", "event_id"], name="inbound_event_once")]

    def __str__(self) -> str:
        return f"{self.source}:{self.event_id}"


class PagerDutyService(models.Model):
    """Which Release Gate service a PagerDuty service stands for: set by an administrator."""

    pagerduty_id = models.CharField(max_length=32, unique=True, help_text="PagerDuty's service id, e.g. PF9KMXH.")
    name = models.CharField(max_length=200, blank=True)
    service = models.ForeignKey("changelogs.Service", on_delete=models.PROTECT, related_name="+")

    class Meta:
        verbose_name = "PagerDuty service mapping"

    def __str__(self) -> str:
        return f"{self.pagerduty_id} → {self.service_id}"


class IncidentGatePolicy(models.Model):
    """Per domain: from which severity an unresolved incident stops the domain's non-hotfix
    changes. Without a row, high and above."""

    domain = models.OneToOneField("changelogs.Domain", on_delete=models.PROTECT, related_name="+")
    enabled = models.BooleanField(default=True)
    min_severity = models.CharField(
        max_length=16, choices=[(s.value, s.value.title()) for s in Severity], default=Severity.HIGH
    )

    class Meta:
        verbose_name_plural = "incident gate policies"

    def __str__(self) -> str:
        return f"{self.domain_id}: {self.min_severity if self.enabled else 'off'}"


class Verdict(models.TextChoices):
    CAUSED_BY = "caused_by", "Caused by this change"
    NOT_RELATED = "not_related", "Not related"


class SuspectVerdict(models.Model):
    """A person's verdict on one suspect deployment of an incident."""

    incident = models.ForeignKey(Incident, on_delete=models.PROTECT, related_name="verdicts")
    deployment = models.ForeignKey("releasegate.Deployment", on_delete=models.PROTECT, related_name="+")
    changelog = models.ForeignKey("changelogs.Changelog", on_delete=models.PROTECT, null=True, related_name="+")
    verdict = models.CharField(max_length=16, choices=Verdict.choices)
    reason = models.TextField()
    decided_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    decided_at = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["incident", "deployment"], name="verdict_once_per_suspect")]

    def __str__(self) -> str:
        return f"{self.incident_id} {self.verdict} {self.deployment_id}"


# --- Postmortems ---------------------------------------------------------------------------------


class RootCauseTag(models.Model):
    """The taxonomy of root causes: data an administrator edits."""

    slug = models.SlugField(max_length=64, unique=True)
    name = models.CharField(max_length=200)
    active = models.BooleanField(default=True)

    class Meta:
        ordering = ["slug"]

    def __str__(self) -> str:
        return self.name


class PostmortemStatus(models.TextChoices):
    DRAFT = "draft", "Draft"
    COMPLETED = "completed", "Completed"


class Postmortem(models.Model):
    incident = models.OneToOneField(Incident, on_delete=models.PROTECT, related_name="postmortem")
    status = models.CharField(max_length=16, choices=PostmortemStatus.choices, default=PostmortemStatus.DRAFT)
    due_at = models.DateTimeField(null=True, blank=True)
    customer_impact = models.TextField(blank=True)
    impact_determination = models.TextField(blank=True, help_text="How the customer impact was determined.")
    components_impacted = models.TextField(blank=True, help_text="Services and infrastructure components impacted.")
    root_cause = models.TextField(blank=True)
    tags = models.ManyToManyField(RootCauseTag, blank=True, related_name="postmortems")
    chronology = models.JSONField(default=list, help_text="[{at, text}], prefilled from the timeline.")
    participants = models.JSONField(default=list)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+", null=True)
    created_at = models.DateTimeField()
    completed_at = models.DateTimeField(null=True, blank=True)
    overdue_notified_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"postmortem of {self.incident_id} ({self.status})"


class ActionKind(models.TextChoices):
    SHORT_TERM = "short_term", "Short-term fix"
    LONG_TERM = "long_term", "Long-term fix"


class ActionStatus(models.TextChoices):
    OPEN = "open", "Open"
    DONE = "done", "Done"
    CANCELLED = "cancelled", "Cancelled"


class PostmortemAction(models.Model):
    postmortem = models.ForeignKey(Postmortem, on_delete=models.PROTECT, related_name="actions")
    kind = models.CharField(max_length=16, choices=ActionKind.choices)
    description = models.TextField()
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    due_date = models.DateField()
    ticket_url = models.URLField(max_length=500, blank=True, help_text="The bank's backlog ticket.")
    status = models.CharField(max_length=16, choices=ActionStatus.choices, default=ActionStatus.OPEN)
    created_at = models.DateTimeField()
    overdue_notified_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["due_date", "id"]

    def __str__(self) -> str:
        return f"{self.kind} {self.description[:40]}"


# --- DORA ----------------------------------------------------------------------------------------


class DoraThresholdVersion(models.Model):
    """A version of the materiality thresholds (incidents.dora.Thresholds as JSON). Never
    edited: a change is a new version. Without any, the built-in defaults."""

    version = models.CharField(max_length=64, unique=True)
    thresholds = models.JSONField()
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.version


class DoraClassification(models.Model):
    incident = models.OneToOneField(Incident, on_delete=models.PROTECT, related_name="dora")
    criteria = models.JSONField(help_text="incidents.dora.Criteria as recorded.")
    met = models.JSONField(help_text="The materiality thresholds met.")
    major = models.BooleanField()
    why = models.TextField()
    thresholds_version = models.CharField(max_length=64)
    classified_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    classified_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.incident_id} {'major' if self.major else 'not major'}"


class DoraReport(models.Model):
    """One notification owed to the authority for a major incident."""

    incident = models.ForeignKey(Incident, on_delete=models.PROTECT, related_name="dora_reports")
    kind = models.CharField(
        max_length=16, choices=[("initial", "Initial"), ("intermediate", "Intermediate"), ("final", "Final")]
    )
    due_at = models.DateTimeField()
    sent_at = models.DateTimeField(null=True, blank=True)
    reference = models.CharField(max_length=200, blank=True, help_text="The authority's reference for the report.")
    sent_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, related_name="+")
    overdue_notified_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["due_at"]
        constraints = [models.UniqueConstraint(fields=["incident", "kind"], name="dora_report_once")]

    def __str__(self) -> str:
        return f"{self.incident_id} {self.kind} due {self.due_at:%Y-%m-%d %H:%M}"
