"""Incidents in the admin: the records (read-only: they change through the audited services),
and the data an administrator keeps (PagerDuty service mapping, the gate rule per domain, the
root-cause taxonomy, DORA threshold versions), each save audited in its transaction."""

import re
from datetime import timedelta
from typing import Any

from django.contrib import admin
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.db import models, transaction
from django.forms.models import model_to_dict
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import URLPattern, path
from django.utils import timezone

import audit
from audit.admin import ReadOnlyAdmin, ReadOnlyInline
from changelogs.models import Domain
from core.actors import actor_of
from incidents.models import (
    DoraReport,
    DoraThresholdVersion,
    InboundEvent,
    Incident,
    IncidentGatePolicy,
    PagerDutyService,
    Postmortem,
    PostmortemAction,
    RootCauseTag,
    SuspectVerdict,
    TimelineEvent,
)

# URLs are https: Django 6's default, asked for now (Django 5.2 warns otherwise).
HTTPS_URLS: dict[Any, dict[str, Any]] = {models.URLField: {"assume_scheme": "https"}}


class AuditedDataAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    """Settings kept as data: each save and delete is audited with what it now says."""

    formfield_overrides = HTTPS_URLS

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        with transaction.atomic():
            super().save_model(request, obj, form, change)
            audit.record(
                actor=actor_of(request),
                action=f"{obj._meta.model_name}:{'changed' if change else 'added'}",
                target=obj,
                data={k: v for k, v in model_to_dict(obj).items() if k != "id"},
            )

    def delete_model(self, request: HttpRequest, obj: Any) -> None:
        with transaction.atomic():
            audit.record(
                actor=actor_of(request), action=f"{obj._meta.model_name}:deleted", target=obj, data={"was": str(obj)}
            )
            super().delete_model(request, obj)


@admin.register(PagerDutyService)
class PagerDutyServiceAdmin(AuditedDataAdmin):
    formfield_overrides = HTTPS_URLS
    list_display = ("pagerduty_id", "name", "service")
    search_fields = ("pagerduty_id", "name", "service__slug")


@admin.register(IncidentGatePolicy)
class IncidentGatePolicyAdmin(AuditedDataAdmin):
    formfield_overrides = HTTPS_URLS
    list_display = ("domain", "enabled", "min_severity")


@admin.register(RootCauseTag)
class RootCauseTagAdmin(AuditedDataAdmin):
    formfield_overrides = HTTPS_URLS
    list_display = ("slug", "name", "active")
    list_filter = ("active",)


@admin.register(DoraThresholdVersion)
class DoraThresholdVersionAdmin(AuditedDataAdmin):
    formfield_overrides = HTTPS_URLS
    list_display = ("version", "created_at")

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # a version is never edited: a change is a new version

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        from django.utils import timezone

        from incidents.dora import Thresholds

        Thresholds.from_json({**obj.thresholds, "version": obj.version})  # refuses unknown names
        obj.created_at = obj.created_at or timezone.now()
        super().save_model(request, obj, form, change)

    exclude = ("created_at",)


class TimelineInline(ReadOnlyInline):
    formfield_overrides = HTTPS_URLS
    model = TimelineEvent
    fields = ("at", "kind", "summary", "source", "actor")
    readonly_fields = fields


class VerdictInline(ReadOnlyInline):
    formfield_overrides = HTTPS_URLS
    model = SuspectVerdict
    fields = ("deployment", "changelog", "verdict", "reason", "decided_by", "decided_at")
    readonly_fields = fields


class DoraReportInline(ReadOnlyInline):
    formfield_overrides = HTTPS_URLS
    model = DoraReport
    fields = ("kind", "due_at", "sent_at", "reference")
    readonly_fields = fields


@admin.register(Incident)
class IncidentAdmin(ReadOnlyAdmin):
    formfield_overrides = HTTPS_URLS
    list_display = ("reference", "title", "severity", "status", "started_at", "resolved_at", "source")
    list_filter = ("status", "severity", "source", "security", "planned", "services__domain")
    search_fields = ("reference", "title", "external_id")
    date_hierarchy = "started_at"
    inlines = [TimelineInline, VerdictInline, DoraReportInline]

    def get_urls(self) -> list[URLPattern]:
        figures = path("figures/", self.admin_site.admin_view(self.figures_view), name="incidents_figures")
        return [figures, *super().get_urls()]

    def figures_view(self, request: HttpRequest) -> HttpResponse:
        """The learning report's figures and charts (as SVG) for a period and a domain."""
        from incidents.apis import figures_of
        from incidents.report import FIGURE_ROWS, drawings_svg

        if not self.has_view_permission(request):
            raise DjangoPermissionDenied
        try:
            days = min(max(int(request.GET.get("days", "30")), 1), 730)
        except ValueError:
            days = 30
        end = timezone.now()
        domain = request.GET.get("domain") or None
        if domain and not Domain.objects.filter(slug=domain).exists():
            domain = None
        figures = figures_of({"start": end - timedelta(days=days), "end": end, "domain": domain})
        charts = [re.sub(r"^.*?(<svg)", r"\1", svg, flags=re.DOTALL) for svg in drawings_svg(figures)]
        context = {
            **self.admin_site.each_context(request),
            "figures": figures,
            "scope": domain or "all services",
            "days": days,
            "domains": Domain.objects.order_by("slug"),
            "rows": [(label, "n/a" if figures[key] is None else figures[key]) for label, key in FIGURE_ROWS],
            "charts": charts,
        }
        return TemplateResponse(request, "admin/incidents/figures.html", context)


class ActionInline(ReadOnlyInline):
    formfield_overrides = HTTPS_URLS
    model = PostmortemAction
    fields = ("kind", "description", "owner", "due_date", "ticket_url", "status")
    readonly_fields = fields


@admin.register(Postmortem)
class PostmortemAdmin(ReadOnlyAdmin):
    formfield_overrides = HTTPS_URLS
    list_display = ("incident", "status", "due_at", "completed_at")
    list_filter = ("status",)
    inlines = [ActionInline]


@admin.register(InboundEvent)
class InboundEventAdmin(ReadOnlyAdmin):
    formfield_overrides = HTTPS_URLS
    list_display = ("received_at", "source", "event_type", "event_id", "outcome", "incident")
    list_filter = ("source", "outcome", "event_type")
    search_fields = ("event_id",)
