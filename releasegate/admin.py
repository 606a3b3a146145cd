from typing import Any

from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest

from releasegate.errors import ApplicationError
from releasegate.freezes import freeze_create, freeze_override_approve
from releasegate.models import ApiToken, Deployment, FreezeOverride, FreezeWindow, GateDecision, User
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


class ReadOnlyAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    actions = None

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


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


@admin.register(FreezeWindow)
class FreezeWindowAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    """Freezes are added through the audited service and never edited; end one early by adding
    an override for the changes that must go out, or wait for its end."""

    list_display = ("__str__", "domain", "starts_at", "ends_at", "reason", "created_by")
    fields = ("domain", "starts_at", "ends_at", "reason")
    actions = None

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def save_model(self, request: HttpRequest, obj: FreezeWindow, form: Any, change: bool) -> None:
        created = freeze_create(
            acting_user=request.user, domain=obj.domain, starts_at=obj.starts_at, ends_at=obj.ends_at, reason=obj.reason
        )
        obj.pk = created.pk


@admin.register(FreezeOverride)
class FreezeOverrideAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    """A signing authority of the change's domain lets one change through a freeze."""

    list_display = ("freeze", "changelog", "approved_by", "reason", "created_at")
    fields = ("freeze", "changelog", "reason")
    raw_id_fields = ("changelog",)
    actions = None

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def save_model(self, request: HttpRequest, obj: FreezeOverride, form: Any, change: bool) -> None:
        try:
            created = freeze_override_approve(
                acting_user=request.user, freeze=obj.freeze, changelog=obj.changelog, reason=obj.reason
            )
        except ApplicationError as error:
            raise DjangoPermissionDenied(error.message) from error
        obj.pk = created.pk
