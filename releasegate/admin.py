from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html_join

from audit.admin import AddOnlyAdmin, ReadOnlyAdmin
from audit.models import PackJob, PackKind, PackStatus
from changelogs.models import Domain
from releasegate.errors import ApplicationError
from releasegate.freezes import freeze_create, freeze_override_approve
from releasegate.models import (
    ApiToken,
    Deployment,
    FreezeOverride,
    FreezeWindow,
    GateDecision,
    GitHubDelivery,
    User,
)
from releasegate.packs import pack_request_for
from releasegate.services import api_token_revoke

admin.site.site_header = "Release Gate"
admin.site.site_title = "Release Gate"


@admin.register(User)
class ReleaseGateUserAdmin(UserAdmin):  # type: ignore[type-arg]
    list_display = ("username", "email", "is_service_account", "is_staff", "is_active")
    list_filter = ("is_service_account", "is_staff", "is_superuser", "is_active", "groups")
    fieldsets = (*UserAdmin.fieldsets, ("Pipeline", {"fields": ("is_service_account",)}))  # type: ignore[misc]


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    """Tokens are issued by `manage.py create_service_account` (shown once); here they can be
    seen and revoked, never read back."""

    list_display = ("prefix", "name", "service_account", "created_at", "expires_at", "revoked_at", "last_used_at")
    list_filter = ("revoked_at",)
    search_fields = ("prefix", "name", "service_account__username")
    readonly_fields = (*list_display, "created_by", "revoked_by")
    exclude = ("token_hash",)
    actions = ["revoke"]

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.action(description="Revoke the selected tokens", permissions=["change"])
    def revoke(self, request: HttpRequest, queryset: QuerySet[ApiToken]) -> None:
        for token in queryset:
            try:
                api_token_revoke(acting_user=request.user, token=token)
            except ApplicationError as error:
                self.message_user(request, f"{token.prefix}: {error.message}", messages.WARNING)
            else:
                self.message_user(request, f"{token.prefix} revoked.")


@admin.register(GateDecision)
class GateDecisionAdmin(ReadOnlyAdmin):
    list_display = ("evaluated_at", "service", "environment", "outcome", "artifact_digest", "requested_by", "policy")
    list_filter = ("outcome", "environment", "service__domain")
    search_fields = ("artifact_digest", "id")
    date_hierarchy = "evaluated_at"


@admin.register(Deployment)
class DeploymentAdmin(ReadOnlyAdmin):
    list_display = ("reported_at", "service", "environment", "status", "artifact_digest", "unauthorised", "reported_by")
    list_filter = ("unauthorised", "status", "environment", "service__domain")
    search_fields = ("artifact_digest", "idempotency_key", "pipeline_run_url")


@admin.register(GitHubDelivery)
class GitHubDeliveryAdmin(ReadOnlyAdmin):
    """What GitHub asked and what Release Gate answered; failed answers first to look at."""

    list_display = ("delivery_id", "repository", "environment", "sha", "state", "status", "attempts")
    list_filter = ("status", "state", "environment")
    search_fields = ("delivery_id", "repository", "sha")


@admin.register(FreezeWindow)
class FreezeWindowAdmin(AddOnlyAdmin):
    """Freezes are added through the audited service and never edited; end one early by adding
    an override for the changes that must go out, or wait for its end."""

    list_display = ("__str__", "domain", "starts_at", "ends_at", "reason", "created_by")
    fields = ("domain", "starts_at", "ends_at", "reason")

    def save_model(self, request: HttpRequest, obj: FreezeWindow, form: Any, change: bool) -> None:
        created = freeze_create(
            acting_user=request.user, domain=obj.domain, starts_at=obj.starts_at, ends_at=obj.ends_at, reason=obj.reason
        )
        obj.pk = created.pk


@admin.register(FreezeOverride)
class FreezeOverrideAdmin(AddOnlyAdmin):
    """A signing authority of the change's domain lets one change through a freeze."""

    list_display = ("freeze", "changelog", "approved_by", "reason", "created_at")
    fields = ("freeze", "changelog", "reason")
    raw_id_fields = ("changelog",)

    def save_model(self, request: HttpRequest, obj: FreezeOverride, form: Any, change: bool) -> None:
        try:
            created = freeze_override_approve(
                acting_user=request.user, freeze=obj.freeze, changelog=obj.changelog, reason=obj.reason
            )
        except ApplicationError as error:
            raise DjangoPermissionDenied(error.message) from error
        obj.pk = created.pk


class PackRequestForm(forms.Form):
    kind = forms.ChoiceField(choices=PackKind.choices)
    changelog = forms.UUIDField(required=False, help_text="For a changelog pack: the changelog's id.")
    start = forms.DateTimeField(required=False, help_text="Population: from, UTC (e.g. 2026-10-01 00:00).")
    end = forms.DateTimeField(required=False, help_text="Population: to (exclusive), UTC.")
    domain = forms.ModelChoiceField(queryset=Domain.objects.all(), required=False, to_field_name="slug")
    sample_size = forms.IntegerField(initial=25, min_value=0, max_value=1000, required=False)
    seed = forms.IntegerField(required=False, min_value=0, help_text="Leave empty for a new random seed.")


@admin.register(PackJob)
class PackJobAdmin(ReadOnlyAdmin):
    """Evidence packs for auditors: ask for one, follow its build, download it when done."""

    list_display = ("created_at", "kind", "params", "status", "progress", "stage", "requested_by", "downloads")
    list_filter = ("kind", "status")
    change_list_template = "releasegate/packjob_changelist.html"

    def get_urls(self) -> list[URLPattern]:
        return [
            path("request/", self.admin_site.admin_view(self.request_view), name="releasegate_pack_request"),
            *super().get_urls(),
        ]

    @admin.display(description="files")
    def downloads(self, job: PackJob) -> str:
        if job.status != PackStatus.DONE:
            return "—"
        return format_html_join(
            " ", '<a href="/api/v1/packs/{}/files/{}">{}</a>', ((job.pk, name, name) for name in sorted(job.files))
        )

    def request_view(self, request: HttpRequest) -> HttpResponse:
        if not (request.user.is_superuser or request.user.has_perm("audit.view_auditevent")):
            raise DjangoPermissionDenied("Evidence packs are for auditors.")
        form = PackRequestForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            data = form.cleaned_data
            try:
                _job, created = pack_request_for(
                    acting_user=request.user,
                    kind=data["kind"],
                    changelog=data["changelog"],
                    start=data["start"],
                    end=data["end"],
                    domain=data["domain"].slug if data["domain"] else "",
                    sample_size=data["sample_size"] if data["sample_size"] is not None else 25,
                    seed=data["seed"],
                )
            except ApplicationError as error:
                form.add_error(None, error.message)
            else:
                self.message_user(request, "Pack requested." if created else "This pack is already being built.")
                return HttpResponseRedirect(reverse("admin:audit_packjob_changelist"))
        context = {**self.admin_site.each_context(request), "title": "Request an evidence pack", "form": form}
        return TemplateResponse(request, "releasegate/pack_request.html", context)
