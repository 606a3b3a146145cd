"""The audit trail in the admin: readable, never writable (the models and triggers refuse
writes anyway; this keeps the buttons away)."""

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from audit.models import AuditAlarm, AuditEvent, Checkpoint


class AddOnlyAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    """For records that are never edited or deleted: a change is a new record (policies,
    freezes, overrides). Every app's admin builds on these two."""

    actions = None

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class ReadOnlyAdmin(AddOnlyAdmin):
    """For records only the services write (events, decisions, approvals): readable, never
    writable through the admin."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class ReadOnlyInline(admin.TabularInline):  # type: ignore[type-arg]
    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin):
    list_display = ("id", "created_at", "actor", "action", "target_type", "target_id", "request_id")
    list_filter = ("action", "target_type")
    search_fields = ("actor", "target_id", "request_id")
    date_hierarchy = "created_at"
    show_full_result_count = False


@admin.register(Checkpoint)
class CheckpointAdmin(ReadOnlyAdmin):
    list_display = ("tree_size", "created_at", "key_id")
    readonly_fields = ("tree_size", "root_hex", "signed_note", "key_id", "created_at")
    exclude = ("root_hash", "frontier", "last_txid", "last_event_id")

    @admin.display(description="root hash")
    def root_hex(self, obj: Checkpoint) -> str:
        return bytes(obj.root_hash).hex()


@admin.register(AuditAlarm)
class AuditAlarmAdmin(ReadOnlyAdmin):
    """Alarms are raised by the service and resolved with ``manage.py audit_alarm_resolve``
    (audited); while one is open the gate denies (docs/audit.md)."""

    list_display = ("kind", "raised_at", "last_seen_at", "occurrences", "resolved_at", "resolved_by")
    list_filter = ("kind", ("resolved_at", admin.EmptyFieldListFilter))
    readonly_fields = (
        "kind",
        "detail",
        "raised_at",
        "last_seen_at",
        "occurrences",
        "resolved_at",
        "resolved_by",
        "resolution",
    )
