from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import flatten_fieldsets
from django.contrib.auth.admin import GroupAdmin, UserAdmin
from django.contrib.auth.models import Group
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.db import transaction
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils import timezone

from approvals.step_up import step_up_verify
from audit.admin import AddOnlyAdmin, ReadOnlyAdmin
from changelogs.selectors import domain_list_with_authority
from core.actors import actor_of
from core.errors import ApplicationError
from identity.sessions import signing_session_require
from releasegate import access_review
from releasegate.freezes import freeze_create, freeze_override_approve
from releasegate.models import (
    AccessReview,
    AccessReviewItem,
    AccessReviewStatus,
    ApiToken,
    Deployment,
    FreezeOverride,
    FreezeWindow,
    GateDecision,
    GitHubDelivery,
    User,
)
from releasegate.services import (
    api_token_revoke,
    group_save,
    signing_groups,
    user_access_save,
)

admin.site.site_header = "Release Gate"
admin.site.site_title = "Release Gate"


class StepUpAdminMixin:
    """A change to who may do what is confirmed with the administrator's own password
    (approvals/step_up.py: counted, locked out, audited). The form gets a "your password"
    field; a wrong one keeps the form open and changes nothing."""

    step_up_fieldset = ("Confirm", {"fields": ("your_password",), "description": "Your own password."})

    def get_form(self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any) -> Any:
        # The model's fields, without the form's own password field.
        fields = kwargs.get("fields") or flatten_fieldsets(self.get_fieldsets(request, obj))
        kwargs["fields"] = [name for name in fields if name != "your_password"]
        base = super().get_form(request, obj, change=change, **kwargs)  # type: ignore[misc]

        class StepUpForm(base):  # type: ignore[misc, valid-type]
            your_password = forms.CharField(
                widget=forms.PasswordInput, label="Your password", help_text="Changes to rights are a signature."
            )

            def clean(self) -> Any:
                cleaned = super().clean()
                try:
                    # The proof the service asks for (core.actors.StepUp), carried to save_related.
                    request.step_up_proof = step_up_verify(  # type: ignore[attr-defined]
                        request=request, user=actor_of(request), password=cleaned.get("your_password", "")
                    )
                except ApplicationError as error:
                    raise forms.ValidationError(error.message, code=error.code) from error
                return cleaned

        return StepUpForm

    def get_fieldsets(self, request: HttpRequest, obj: Any = None) -> Any:
        return (*super().get_fieldsets(request, obj), self.step_up_fieldset)  # type: ignore[misc]


@admin.register(User)
class ReleaseGateUserAdmin(StepUpAdminMixin, UserAdmin):  # type: ignore[type-arg]
    """People and their rights. Every save goes through releasegate.services.user_access_save,
    which records each change of flags, groups and permissions with old and new values.
    Groups that hold signing authority are not offered: joining one is being made a signing
    authority, which a second administrator confirms on the signing authorities page."""

    list_display = ("username", "email", "is_service_account", "is_staff", "is_active")
    list_filter = ("is_service_account", "is_staff", "is_superuser", "is_active", "groups")
    fieldsets = (*UserAdmin.fieldsets, ("Pipeline", {"fields": ("is_service_account",)}))  # type: ignore[misc]
    actions = None  # bulk delete would bypass the audited service

    def formfield_for_manytomany(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        if db_field.name == "groups":
            kwargs["queryset"] = Group.objects.exclude(pk__in=signing_groups())
            kwargs["help_text"] = "Groups that hold signing authority are joined on the signing authorities page."
        return super().formfield_for_manytomany(db_field, request, **kwargs)

    def save_model(self, request: HttpRequest, obj: User, form: Any, change: bool) -> None:
        pass  # saved with its groups and permissions in save_related, by the audited service

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        user_access_save(
            acting_user=actor_of(request),
            user=form.instance,
            step_up=request.step_up_proof,  # type: ignore[attr-defined]
            groups=form.cleaned_data.get("groups", form.instance.groups.all() if form.instance.pk else []),
            user_permissions=form.cleaned_data.get(
                "user_permissions", form.instance.user_permissions.all() if form.instance.pk else []
            ),
        )
        for formset in formsets:
            self.save_formset(request, form, formset, change=change)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # deactivate instead: an account is named by the audit trail forever


admin.site.unregister(Group)


@admin.register(Group)
class ReleaseGateGroupAdmin(StepUpAdminMixin, GroupAdmin):
    """Groups and the permissions they give, saved through releasegate.services.group_save
    (old and new permissions recorded)."""

    actions = None

    def get_fieldsets(self, request: HttpRequest, obj: Any = None) -> Any:
        return ((None, {"fields": ("name", "permissions")}), self.step_up_fieldset)

    def save_model(self, request: HttpRequest, obj: Group, form: Any, change: bool) -> None:
        pass  # saved with its permissions in save_related, by the audited service

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        group_save(
            acting_user=actor_of(request),
            group=form.instance,
            permissions=form.cleaned_data["permissions"],
            step_up=request.step_up_proof,  # type: ignore[attr-defined]
        )

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


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
                api_token_revoke(acting_user=actor_of(request), token=token)
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
            acting_user=actor_of(request),
            domain=obj.domain,
            starts_at=obj.starts_at,
            ends_at=obj.ends_at,
            reason=obj.reason,
        )
        obj.pk = created.pk


@admin.register(FreezeOverride)
class FreezeOverrideAdmin(StepUpAdminMixin, AddOnlyAdmin):
    """A signing authority of the change's domain lets one change through a freeze, with a
    reason and their password, under the independence rules of an approval."""

    list_display = ("freeze", "changelog", "approved_by", "reason", "created_at")
    fields = ("freeze", "changelog", "reason")

    def get_fieldsets(self, request: HttpRequest, obj: Any = None) -> Any:
        return ((None, {"fields": self.fields}), self.step_up_fieldset)

    def _signs_somewhere(self, request: HttpRequest) -> bool:
        # Signing authorities override freezes; the service checks the change's own domain.
        user = request.user
        return bool(user.is_authenticated and domain_list_with_authority(user=user).exists())

    def has_module_permission(self, request: HttpRequest) -> bool:
        return super().has_module_permission(request) or self._signs_somewhere(request)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return super().has_view_permission(request, obj) or self._signs_somewhere(request)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return super().has_add_permission(request) or self._signs_somewhere(request)

    raw_id_fields = ("changelog",)

    def save_model(self, request: HttpRequest, obj: FreezeOverride, form: Any, change: bool) -> None:
        try:
            created = freeze_override_approve(
                acting_user=actor_of(request),
                freeze=obj.freeze,
                changelog=obj.changelog,
                reason=obj.reason,
                step_up=request.step_up_proof,  # type: ignore[attr-defined]
            )
        except ApplicationError as error:
            raise DjangoPermissionDenied(error.message) from error
        obj.pk = created.pk


@admin.register(AccessReview)
class AccessReviewAdmin(ReadOnlyAdmin):
    """The access review page: the report of who may sign (CSV, signed PDF) for auditors, and
    the open review's items for the domains' owners to re-confirm."""

    list_display = ("__str__", "status", "opened_by", "closed_at")
    change_list_template = "releasegate/access_review.html"

    def get_urls(self) -> list[URLPattern]:
        wrap = self.admin_site.admin_view
        return [
            path("report.csv", wrap(self.report_csv), name="releasegate_access_report_csv"),
            path("report.pdf", wrap(self.report_pdf), name="releasegate_access_report_pdf"),
            *super().get_urls(),
        ]

    @staticmethod
    def _may_read(request: HttpRequest) -> None:
        user: Any = request.user
        if not (user.is_superuser or user.has_perm("audit.view_auditevent")):
            raise DjangoPermissionDenied("The access report is for auditors and administrators.")

    def report_csv(self, request: HttpRequest) -> HttpResponse:
        self._may_read(request)
        report = access_review.full_report()
        access_review.report_downloaded_record(acting_user=actor_of(request), kind="csv", report=report)
        response = HttpResponse(access_review.report_csv(report), content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = 'attachment; filename="access-review.csv"'
        return response

    def report_pdf(self, request: HttpRequest) -> HttpResponse:
        self._may_read(request)
        report = access_review.full_report()
        access_review.report_downloaded_record(acting_user=actor_of(request), kind="pdf", report=report)
        pdf = access_review.report_pdf(report, generated_at=timezone.now())
        response = HttpResponse(pdf, content_type="application/pdf")
        response["Content-Disposition"] = 'attachment; filename="access-review.pdf"'
        return response

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # Auditors and administrators, and the domains' owners, who re-confirm authorities.
        user: Any = request.user
        if not (user.is_active and user.is_authenticated):
            return False
        if user.is_superuser or user.has_perm("audit.view_auditevent"):
            return True
        return bool(domain_list_with_authority(user=user).exists())

    def has_module_permission(self, request: HttpRequest) -> bool:
        return self.has_view_permission(request)

    def changelist_view(self, request: HttpRequest, extra_context: Any = None) -> Any:
        if not self.has_view_permission(request):
            raise DjangoPermissionDenied("The access review is for auditors, administrators and domain owners.")
        review = AccessReview.objects.filter(status=AccessReviewStatus.OPEN).first()
        if request.method == "POST":
            try:
                with transaction.atomic():
                    if request.POST.get("open") and review is None:
                        if not request.user.has_perm("approvals.change_authoritygrant"):
                            raise DjangoPermissionDenied("Administrators open access reviews.")
                        access_review.review_open(acting_user=actor_of(request))
                    elif request.POST.get("item") and review is not None:
                        item = AccessReviewItem.objects.filter(review=review, pk=request.POST["item"]).first()
                        if item is None:
                            raise Http404("No such item.")
                        signing_session_require(request)  # re-confirming authority is a signature
                        access_review.review_item_reconfirm(acting_user=actor_of(request), item=item)
            except ApplicationError as error:
                self.message_user(request, error.message, messages.ERROR)
            return HttpResponseRedirect(reverse("admin:releasegate_accessreview_changelist"))
        context = {
            **self.admin_site.each_context(request),
            "title": "Access review",
            "report": access_review.full_report(),
            "review": review,
            "items": access_review.review_items_for(user=actor_of(request), review=review) if review else [],
            "may_open": request.user.has_perm("approvals.change_authoritygrant"),
        }
        return TemplateResponse(request, "releasegate/access_review.html", context)
