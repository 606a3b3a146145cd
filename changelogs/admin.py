"""Admin for the catalog (audited through services) and a read-only view of changelogs.
Changelogs change only through the API and the approver pages, never by editing rows."""

import json
from typing import Any

from django import forms
from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from audit.admin import AddOnlyAdmin, ReadOnlyAdmin, ReadOnlyInline
from changelogs import services
from changelogs.models import Changelog, ChangelogRevision, Domain, Evidence, Journey, Policy, Service
from changelogs.policy import PolicyError, PolicyRules
from changelogs.selectors import VIEW_CHANGELOG, changelog_list_visible
from core.actors import actor_of


class AuditedCatalogAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    actions = None  # bulk delete would skip the audited service

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        services.catalog_save(acting_user=actor_of(request), instance=obj)

    def delete_model(self, request: HttpRequest, obj: Any) -> None:
        services.catalog_delete(acting_user=actor_of(request), instance=obj)


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


class RevisionInline(ReadOnlyInline):
    model = ChangelogRevision
    fk_name = "changelog"
    fields = ("number", "status", "artifact_digest", "content_hash", "submitted_by", "submitted_at")
    readonly_fields = fields


class EvidenceInline(ReadOnlyInline):
    model = Evidence
    fk_name = "changelog"
    fields = ("kind", "format", "file_name", "sha256", "verdict", "environment", "uploaded_by", "uploaded_at")
    readonly_fields = fields


@admin.register(Changelog)
class ChangelogAdmin(ReadOnlyAdmin):
    list_display = ("id", "service", "kind", "status", "created_by", "created_at")
    list_filter = ("status", "kind", "service__domain")
    search_fields = ("id", "service__slug", "revisions__artifact_digest")
    inlines = [RevisionInline, EvidenceInline]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Changelog]:
        """Auditors and administrators see every changelog; requesters and approvers those of
        their services and domains (what the API shows them too)."""
        queryset = super().get_queryset(request).select_related("service", "created_by")
        if request.user.is_superuser or request.user.has_perm(VIEW_CHANGELOG):
            return queryset
        return queryset.filter(pk__in=changelog_list_visible(user=actor_of(request)).values("pk"))

    def has_module_permission(self, request: HttpRequest) -> bool:
        return super().has_module_permission(request) or self.has_view_permission(request)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        """A requester reads their services' changelogs here, an approver their domains':
        without this a requester's admin said "You don't have permission to view or edit
        anything." """
        if super().has_view_permission(request, obj):
            return True
        if not (request.user.is_active and request.user.is_staff):
            return False
        visible = changelog_list_visible(user=request.user)
        return visible.filter(pk=obj.pk).exists() if obj is not None else visible.exists()


class PolicyForm(forms.ModelForm):  # type: ignore[type-arg]
    rules = forms.JSONField(
        initial=PolicyRules().to_json,
        help_text="Missing keys take the defaults shown. Saving always makes a new version.",
        widget=forms.Textarea(attrs={"rows": 24, "cols": 90, "style": "font-family: monospace"}),
    )

    class Meta:
        model = Policy
        fields = ("domain", "service", "rules", "reason")

    def clean_rules(self) -> Any:
        rules = self.cleaned_data["rules"]
        try:
            PolicyRules.from_json(rules)
        except PolicyError as error:
            raise forms.ValidationError(str(error)) from error
        return rules


@admin.register(Policy)
class PolicyAdmin(AddOnlyAdmin):
    """Policies are versioned: 'add' makes the next version of a domain's (or service's)
    rules through the audited service; nothing is ever edited or deleted."""

    form = PolicyForm
    list_display = ("__str__", "domain", "service", "version", "created_by", "created_at", "reason")
    list_filter = ("domain",)

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> tuple[str, ...]:
        return ("domain", "service", "version", "rules_text", "reason", "created_by", "created_at") if obj else ()

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return self.get_readonly_fields(request, obj) if obj else ("domain", "service", "rules", "reason")

    @admin.display(description="rules")
    def rules_text(self, obj: Policy) -> str:
        return json.dumps(obj.rules, indent=2, sort_keys=True)

    def save_model(self, request: HttpRequest, obj: Policy, form: Any, change: bool) -> None:
        created = services.policy_create(
            acting_user=actor_of(request),
            domain=form.cleaned_data["domain"],
            service=form.cleaned_data["service"],
            rules=form.cleaned_data["rules"],
            reason=form.cleaned_data["reason"],
        )
        obj.pk = created.pk
