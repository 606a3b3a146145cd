"""The audit trail: events appended in the transaction of the change they record, and the
Merkle log over them (leaves, perfect-subtree nodes, signed checkpoints).

All four tables are append-only: the models refuse updates and deletes, the admin is
read-only, and database triggers refuse UPDATE, DELETE and TRUNCATE (see audit/triggers.py).
"""

from typing import Any, NoReturn

from django.conf import settings
from django.db import models
from django.db.models.functions import Now


class AppendOnlyError(Exception):
    pass


class AppendOnlyQuerySet(models.QuerySet[Any]):
    def update(self, **kwargs: Any) -> NoReturn:
        raise AppendOnlyError(f"{self.model.__name__} rows are append-only and cannot be updated")

    def delete(self) -> NoReturn:
        raise AppendOnlyError(f"{self.model.__name__} rows are append-only and cannot be deleted")

    def bulk_update(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise AppendOnlyError(f"{self.model.__name__} rows are append-only and cannot be updated")

    def update_or_create(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise AppendOnlyError(f"{self.model.__name__} rows are append-only and cannot be updated")


class AppendOnlyModel(models.Model):
    objects = AppendOnlyQuerySet.as_manager()

    class Meta:
        abstract = True

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self._state.adding:
            raise AppendOnlyError(f"{type(self).__name__} rows are append-only and cannot be updated")
        kwargs["force_insert"] = True
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise AppendOnlyError(f"{type(self).__name__} rows are append-only and cannot be deleted")


class AuditEvent(AppendOnlyModel):
    """One state change or decision. ``data`` is canonical JSON text, kept as the exact bytes
    that the leaf hash covers."""

    id = models.BigAutoField(primary_key=True)
    created_at = models.DateTimeField(db_default=Now(), help_text="Database clock, UTC.")
    actor = models.CharField(max_length=200, help_text='Who acted, e.g. "user:alice" or "service_account:payments-ci".')
    actor_id = models.BigIntegerField(
        null=True, blank=True, help_text="The account's id at the time; no foreign key, so it survives deletion."
    )
    action = models.CharField(
        max_length=100, help_text='What happened, shaped "subject:action", e.g. "changelog:submitted".'
    )
    target_type = models.CharField(max_length=100)
    target_id = models.CharField(max_length=100)
    data = models.TextField(help_text="Canonical JSON of what changed.")
    request_id = models.CharField(max_length=64, blank=True)
    # PostgreSQL: the writing transaction's id, set by a trigger; the sequencer orders by it.
    txid = models.BigIntegerField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["id"]
        indexes = [
            models.Index(fields=["target_type", "target_id"], name="audit_event_target"),
            models.Index(fields=["actor"], name="audit_event_actor"),
            # No index on action: every audited write would maintain it, and an action tag
            # selects a large share of the log anyway (auditors narrow it by time or target).
            models.Index(fields=["created_at"], name="audit_event_created_at"),
            models.Index(fields=["txid", "id"], name="audit_event_txid_id"),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.action} {self.target_type}:{self.target_id} by {self.actor}"


class AuditLeaf(AppendOnlyModel):
    """The event at a position of the Merkle log. Positions are dense: 0, 1, 2…"""

    leaf_index = models.BigIntegerField(primary_key=True)
    event = models.OneToOneField(AuditEvent, on_delete=models.PROTECT, related_name="leaf")
    leaf_hash = models.BinaryField(max_length=32)

    class Meta:
        ordering = ["leaf_index"]

    def __str__(self) -> str:
        return f"leaf {self.leaf_index}"


class AuditNode(AppendOnlyModel):
    """The hash of a complete subtree: level L, index I covers leaves [I·2^L, (I+1)·2^L).
    Stored as the log grows so that any proof needs a handful of lookups, not a rescan."""

    pk = models.CompositePrimaryKey("level", "index")
    level = models.PositiveSmallIntegerField()
    index = models.BigIntegerField()
    hash = models.BinaryField(max_length=32)

    def __str__(self) -> str:
        return f"node {self.level}/{self.index}"


class Checkpoint(AppendOnlyModel):
    """A signed statement of the log's size and root, in the C2SP tlog-checkpoint format.
    Also the sequencer's state: its frontier and how far it has read."""

    tree_size = models.BigIntegerField(unique=True)
    root_hash = models.BinaryField(max_length=32)
    frontier = models.JSONField(help_text="Right edge of the tree (hex hashes), to append in O(log n).")
    last_txid = models.BigIntegerField(null=True, blank=True)
    last_event_id = models.BigIntegerField(null=True, blank=True)
    signed_note = models.TextField()
    key_id = models.CharField(max_length=8, help_text="Hex id of the signing key.")
    created_at = models.DateTimeField(db_default=Now())

    class Meta:
        ordering = ["tree_size"]
        get_latest_by = "tree_size"

    def __str__(self) -> str:
        return f"checkpoint {self.tree_size}"


class AlarmKind(models.TextChoices):
    ROLLED_BACK = "rolled_back", "The log is shorter than what the sequencer signed"
    FORKED = "forked", "The log's head differs from what the sequencer signed"
    CHECKPOINT_INVALID = "checkpoint_invalid", "The latest checkpoint does not verify"
    FRONTIER_MISMATCH = "frontier_mismatch", "The stored frontier does not reproduce the signed root"
    NOT_AN_EXTENSION = "not_an_extension", "The log does not extend the last checkpoint the sequencer signed"
    LEAVES_PAST_CHECKPOINT = "leaves_past_checkpoint", "Leaves past the latest checkpoint"
    POSITION_MOVED = "position_moved", "The sequencer's position does not match the last leaf"
    STATE_MISSING = "state_missing", "The sequencer's state file is missing"
    STORE_FAILED = "store_failed", "The sequencer could not store the next batch"
    VERIFICATION_FAILED = "verification_failed", "audit_verify found a divergence"
    WITNESS_REFUSED = "witness_refused", "A witness refused the log's checkpoint"


class AuditAlarm(models.Model):
    """The audit log cannot be trusted as stored: raised by the sequencer (which then signs
    nothing), by audit_verify or by a witness's refusal; resolved by an operator. While one is
    open the gate denies (``AUDIT_ALARM_DENIES_GATE``). One open alarm per kind: a repeat
    counts on it instead of adding rows."""

    kind = models.CharField(max_length=32, choices=AlarmKind.choices)
    detail = models.TextField()
    raised_at = models.DateTimeField()
    last_seen_at = models.DateTimeField()
    occurrences = models.PositiveIntegerField(default=1)
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    resolution = models.TextField(blank=True, help_text="What the operator found and did.")

    class Meta:
        ordering = ["-raised_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["kind"], condition=models.Q(resolved_at__isnull=True), name="audit_alarm_one_open_per_kind"
            )
        ]

    def __str__(self) -> str:
        state = "resolved" if self.resolved_at else "open"
        return f"audit alarm {self.kind} ({state})"


class WitnessCosignature(AppendOnlyModel):
    """A witness's C2SP tlog-cosignature on one of the log's checkpoints."""

    checkpoint = models.ForeignKey(Checkpoint, on_delete=models.PROTECT, related_name="cosignatures")
    witness = models.CharField(max_length=200, help_text="The witness's key name.")
    signature_line = models.TextField(help_text="The note signature line, as the witness sent it.")
    signed_at = models.DateTimeField(help_text="The cosignature's own timestamp.")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["checkpoint", "witness"], name="witness_cosigns_once")]
        indexes = [models.Index(fields=["witness", "-signed_at"], name="witness_latest")]

    def __str__(self) -> str:
        return f"{self.witness} on checkpoint {self.checkpoint_id}"
