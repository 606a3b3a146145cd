from typing import Any

from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin
from django.db.models import QuerySet
from django.http import HttpRequest

from releasegate.errors import ApplicationError
from releasegate.models import ApiToken, User
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
