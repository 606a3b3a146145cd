"""The approver's pages in the admin: the queue, a change on one screen, the decision with the
password asked again, and the authority matrix. Views stay thin: selectors and services do
the work, and a refused action is a 403, never a silent no-op."""

from typing import Any
from uuid import UUID

from django import forms
from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.db import transaction
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils import timezone

from approvals import selectors, services
from approvals.models import Approval, Decision, Notification, Retrospective
from approvals.rules import Authority
from audit.admin import ReadOnlyAdmin
from changelogs import selectors as changelog_selectors
from changelogs.models import Changelog, Domain, RevisionStatus
from releasegate.errors import ApplicationError


def _visible_changelog(request: HttpRequest, changelog_id: UUID) -> Changelog:
    changelog = changelog_selectors.changelog_list_visible(user=request.user).filter(pk=changelog_id).first()
    if changelog is None:
        raise Http404("No such changelog.")
    return changelog


def _may_decide(user: Any, changelog: Changelog) -> bool:
    revision = changelog.current_revision
    if revision is None or revision.status != RevisionStatus.SUBMITTED:
        return False
    if not selectors.authorities_of(user=user, domain=changelog.service.domain):
        return False
    if user.pk in selectors.requester_ids(changelog=changelog):
        return False
    if revision.evidence.filter(uploaded_by=user).exists():
        return False
    authors = {author.lower() for author in revision.content.get("commit_authors", [])}
    if {user.username.lower(), (user.email or "").lower()} & authors:
        return False
    return not Approval.objects.filter(revision=revision, approver=user).exists()


class DecisionForm(forms.Form):
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 4, "cols": 80}), required=False, max_length=5000)
    password = forms.CharField(
        widget=forms.PasswordInput, help_text="Your password again: this decision is a signature."
    )


class AuthorityForm(forms.Form):
    domain = forms.ModelChoiceField(queryset=Domain.objects.all())
    authority = forms.ChoiceField(choices=[(a.value, a.value) for a in Authority])
    user = forms.ModelChoiceField(
        queryset=get_user_model().objects.filter(is_service_account=False, is_active=True), required=False
    )
    group = forms.ModelChoiceField(queryset=Group.objects.all(), required=False)
    action = forms.ChoiceField(choices=[("grant", "Grant"), ("revoke", "Revoke")])


@admin.register(Approval)
class ApprovalAdmin(ReadOnlyAdmin):
    """Every recorded decision, read-only; plus the approver pages under it."""

    list_display = ("changelog", "decision", "approver", "retrospective", "decided_at", "expires_at")
    list_filter = ("decision", "retrospective")

    def get_urls(self) -> list[URLPattern]:
        wrap = self.admin_site.admin_view
        return [
            path("queue/", wrap(self.queue_view), name="approvals_queue"),
            path("queue/<uuid:changelog_id>/", wrap(self.detail_view), name="approvals_detail"),
            path("queue/<uuid:changelog_id>/<str:decision>/", wrap(self.decide_view), name="approvals_decide"),
            path("authorities/", wrap(self.authorities_view), name="approvals_authorities"),
            *super().get_urls(),
        ]

    def queue_view(self, request: HttpRequest) -> HttpResponse:
        queue = list(selectors.queue_for(user=request.user))
        context = {**self.admin_site.each_context(request), "title": "Waiting for my sign-off", "queue": queue}
        return TemplateResponse(request, "approvals/queue.html", context)

    def detail_view(self, request: HttpRequest, changelog_id: UUID) -> HttpResponse:
        changelog = _visible_changelog(request, changelog_id)
        revision = changelog_selectors.revision_current(changelog=changelog)
        state = selectors.approval_state_of(changelog=changelog, now=timezone.now())
        context = {
            **self.admin_site.each_context(request),
            "title": f"{changelog.service.slug} {revision.content['artifact']['version']} ({changelog.kind})",
            "changelog": changelog,
            "revision": revision,
            "content": revision.content,
            "evidence": changelog_selectors.evidence_list(revision=revision),
            "readiness": changelog_selectors.readiness_of(changelog=changelog),
            "state": state,
            "approvals": selectors.approval_list(changelog=changelog),
            "may_decide": _may_decide(request.user, changelog),
        }
        return TemplateResponse(request, "approvals/detail.html", context)

    def decide_view(self, request: HttpRequest, changelog_id: UUID, decision: str) -> HttpResponse:
        if decision not in Decision.values:
            raise Http404("No such decision.")
        changelog = changelog_selectors.changelog_list_visible(user=request.user).filter(pk=changelog_id).first()
        if changelog is None or not _may_decide(request.user, changelog):
            raise DjangoPermissionDenied("You may not decide on this change.")
        form = DecisionForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            if not request.user.check_password(form.cleaned_data["password"]):
                form.add_error("password", "That is not your password; nothing was recorded.")
            else:
                try:
                    with transaction.atomic():
                        locked = changelog_selectors.changelog_lock(changelog=changelog)
                        services.approval_decide(
                            acting_user=request.user,
                            changelog=locked,
                            decision=decision,
                            reason=form.cleaned_data["reason"],
                        )
                except ApplicationError as error:
                    form.add_error(None, error.message)
                else:
                    self.message_user(
                        request, f"Your decision ({decision}) is recorded and signed into the audit trail."
                    )
                    return HttpResponseRedirect(reverse("admin:approvals_detail", args=[changelog.pk]))
        context = {
            **self.admin_site.each_context(request),
            "title": f"{'Approve' if decision == Decision.APPROVED else 'Reject'} {changelog.service.slug}",
            "changelog": changelog,
            "revision": changelog.current_revision,
            "decision": decision,
            "form": form,
        }
        return TemplateResponse(request, "approvals/decide.html", context)

    def authorities_view(self, request: HttpRequest) -> HttpResponse:
        if not request.user.has_perm("changelogs.change_domain"):
            raise DjangoPermissionDenied("Only administrators manage signing authorities.")
        form = AuthorityForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            data = form.cleaned_data
            operation = services.authority_grant if data["action"] == "grant" else services.authority_revoke
            try:
                operation(
                    acting_user=request.user,
                    domain=data["domain"],
                    authority=data["authority"],
                    user=data["user"],
                    group=data["group"],
                )
            except ApplicationError as error:
                form.add_error(None, error.message)
            else:
                self.message_user(request, "Done; the change is in the audit trail.", messages.SUCCESS)
                return HttpResponseRedirect(reverse("admin:approvals_authorities"))
        matrix = [(domain, selectors.authority_grants(domain=domain)) for domain in Domain.objects.all()]
        context = {
            **self.admin_site.each_context(request),
            "title": "Signing authorities",
            "matrix": matrix,
            "form": form,
        }
        return TemplateResponse(request, "approvals/authorities.html", context)


@admin.register(Retrospective)
class RetrospectiveAdmin(ReadOnlyAdmin):
    list_display = ("changelog", "status", "opened_at", "due_at", "completed_at", "overdue_at")
    list_filter = ("status",)


@admin.register(Notification)
class NotificationAdmin(ReadOnlyAdmin):
    list_display = ("event", "channel", "status", "attempts", "created_at", "sent_at", "last_error")
    list_filter = ("event", "channel", "status")


admin.site.index_template = "approvals/admin_index.html"
