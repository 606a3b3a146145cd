"""Admin for the catalog (audited through services) and a read-only view of changelogs.
Changelogs change only through the API and the approver pages, never by editing rows."""

from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from changelogs import services
from changelogs.models import Changelog, ChangelogRevision, Domain, Journey, Service


class AuditedCatalogAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    actions = None  # bulk delete would skip the audited service

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        services.catalog_save(acting_user=request.user, instance=obj)

    def delete_model(self, request: HttpRequest, obj: Any) -> None:
        services.catalog_delete(acting_user=request.user, instance=obj)


@admin.register(Domain)
class DomainAdmin(AuditedCatalogAdmin):
    list_display = ("slug", "name", "owning_squad")
    search_fields = ("slug", "name", "owning_squad")


@admin.register(Service)
class ServiceAdmin(AuditedCatalogAdmin):
    list_display = ("slug", "name", "domain", "repository_url")
    list_filter = ("domain",)
    search_fields = ("slug", "name")


@admin.register(Journey)
class JourneyAdmin(AuditedCatalogAdmin):
    list_display = ("journey_id", "name", "domain", "critical")
    list_filter = ("domain", "critical")
    search_fields = ("journey_id", "name")


class ReadOnlyAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    actions = None

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class RevisionInline(admin.TabularInline):  # type: ignore[type-arg]
    model = ChangelogRevision
    fk_name = "changelog"
    fields = ("number", "status", "artifact_digest", "content_hash", "submitted_by", "submitted_at")
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Changelog)
class ChangelogAdmin(ReadOnlyAdmin):
    list_display = ("id", "service", "kind", "status", "created_by", "created_at")
    list_filter = ("status", "kind", "service__domain")
    search_fields = ("id", "service__slug", "revisions__artifact_digest")
    inlines = [RevisionInline]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Changelog]:
        return super().get_queryset(request).select_related("service", "created_by")
