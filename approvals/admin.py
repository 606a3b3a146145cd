"""The approver's pages in the admin: the queue, a change on one screen, the decision with the
password asked again, and the authority matrix. Views stay thin: selectors and services do
the work, and a refused action is a 403, never a silent no-op."""

import functools
import json
from collections.abc import Callable
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
from approvals.errors import ApprovalError
from approvals.models import (
    Approval,
    AuthorityGrant,
    Decision,
    GrantStatus,
    Notification,
    PostImplementationReview,
    Retrospective,
)
from approvals.rules import Authority
from approvals.step_up import step_up_verify
from audit.admin import ReadOnlyAdmin
from changelogs import selectors as changelog_selectors
from changelogs.models import Changelog, Domain, RevisionStatus
from core.actors import ActingUser, actor_of
from core.errors import ApplicationError, PermissionDenied
from identity.services import signs_with_passkey


def _visible_changelog(request: HttpRequest, changelog_id: UUID) -> Changelog:
    changelog = changelog_selectors.changelog_list_visible(user=actor_of(request)).filter(pk=changelog_id).first()
    if changelog is None:
        raise Http404("No such changelog.")
    return changelog


def _may_decide_as_person(user: ActingUser, changelog: Changelog) -> bool:
    """Who the user is allows them to decide on this change: authority for the domain, and
    not their own change (the service checks all of it again, under lock)."""
    revision = changelog.current_revision
    if revision is None or not selectors.authorities_of(user=user, domain=changelog.service.domain):
        return False
    if user.pk in selectors.requester_ids(changelog=changelog):
        return False
    if revision.evidence.filter(uploaded_by=user).exists():
        return False
    return not changelog_selectors.commit_authors_of(revision=revision).excludes(
        username=user.username, email=user.email or ""
    )


def _may_decide(user: ActingUser, changelog: Changelog) -> bool:
    revision = changelog.current_revision
    if revision is None or revision.status != RevisionStatus.SUBMITTED:
        return False
    if not _may_decide_as_person(user, changelog):
        return False
    return not Approval.objects.filter(revision=revision, approver=user).exists()


class DecisionForm(forms.Form):
    # What the approver was shown: the decision signs exactly this revision and content hash.
    revision = forms.IntegerField(widget=forms.HiddenInput, min_value=1)
    content_hash = forms.RegexField(r"^[0-9a-f]{64}$", widget=forms.HiddenInput)
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 4, "cols": 80}), required=False, max_length=5000)
    password = forms.CharField(
        widget=forms.PasswordInput, help_text="Your password again: this decision is a signature."
    )
    # Filled by identity/static/identity/passkeys.js: the WebAuthn assertion of the approver's
    # passkey over the challenge derived from this decision (identity.challenge).
    assertion = forms.CharField(widget=forms.HiddenInput, required=False, max_length=20000)

    def clean_reason(self) -> str:
        # A browser posts a text area's line breaks as CRLF, while the page's script signs the
        # text area's value (LF): the reason is kept, and signed, with LF.
        reason: str = self.cleaned_data["reason"]
        return reason.replace("\r\n", "\n")

    def clean_assertion(self) -> dict[str, Any] | None:
        text = self.cleaned_data["assertion"]
        if not text:
            return None
        try:
            value = json.loads(text)
        except ValueError:
            value = None
        if not isinstance(value, dict):
            raise forms.ValidationError("The passkey's signature is not a WebAuthn credential.")
        return value


def non_atomic(view: Any) -> Any:
    """An admin view outside the request's transaction: a refused decision must leave its
    record and its failed-password count behind (approvals/step_up.py); the view runs each
    write in a transaction of its own."""

    @functools.wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        response: HttpResponse = view(request, *args, **kwargs)
        return response

    return transaction.non_atomic_requests(wrapped)


# What apps above approvals add to a change's pages, as template context: incidents (which sit
# above approvals in the layers) registers the incidents a change caused or answers.
change_context_extras: list[Callable[[Changelog], dict[str, Any]]] = []


def change_context(changelog: Changelog, revision: Any) -> dict[str, Any]:
    """Everything an approver reads before signing one revision."""
    previous = changelog_selectors.revision_previous_submitted(revision=revision)
    extras: dict[str, Any] = {}
    for extra in change_context_extras:
        extras.update(extra(changelog))
    return {
        **extras,
        "changelog": changelog,
        "revision": revision,
        "content": revision.content,
        "evidence": changelog_selectors.evidence_briefs(changelog=changelog, revision=revision),
        "readiness": changelog_selectors.readiness_of(changelog=changelog, revision=revision),
        "previous": previous,
        "changes_since_previous": (
            changelog_selectors.revision_changes_between(before=previous, after=revision) if previous else None
        ),
    }


class GrantRequestForm(forms.Form):
    form = forms.CharField(widget=forms.HiddenInput, initial="request")
    domain = forms.ModelChoiceField(queryset=Domain.objects.all())
    authority = forms.ChoiceField(choices=[(a.value, a.value) for a in Authority])
    user = forms.ModelChoiceField(
        queryset=get_user_model().objects.filter(is_service_account=False, is_active=True), required=False
    )
    group = forms.ModelChoiceField(queryset=Group.objects.all(), required=False)
    reason = forms.CharField(max_length=500)
    password = forms.CharField(widget=forms.PasswordInput, help_text="Your password again.")


class MembershipRequestForm(forms.Form):
    form = forms.CharField(widget=forms.HiddenInput, initial="membership")
    group = forms.ModelChoiceField(queryset=Group.objects.all(), help_text="A group that holds signing authority.")
    user = forms.ModelChoiceField(queryset=get_user_model().objects.filter(is_service_account=False, is_active=True))
    reason = forms.CharField(max_length=500)
    password = forms.CharField(widget=forms.PasswordInput, help_text="Your password again.")


class GrantDecisionForm(forms.Form):
    form = forms.CharField(widget=forms.HiddenInput, initial="decide")
    grant = forms.UUIDField(widget=forms.HiddenInput)
    decision = forms.ChoiceField(choices=[("confirm", "Confirm"), ("refuse", "Refuse"), ("revoke", "Revoke")])
    password = forms.CharField(widget=forms.PasswordInput)


GRANT_DECISIONS = {"confirm": services.grant_confirm, "refuse": services.grant_refuse, "revoke": services.grant_revoke}


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
            path(
                "queue/<uuid:changelog_id>/<str:decision>/",
                wrap(non_atomic(self.decide_view)),
                name="approvals_decide",
            ),
            path("authorities/", wrap(non_atomic(self.authorities_view)), name="approvals_authorities"),
            *super().get_urls(),
        ]

    def queue_view(self, request: HttpRequest) -> HttpResponse:
        queue = list(selectors.queue_for(user=actor_of(request)))
        context = {**self.admin_site.each_context(request), "title": "Waiting for my sign-off", "queue": queue}
        return TemplateResponse(request, "approvals/queue.html", context)

    def detail_view(self, request: HttpRequest, changelog_id: UUID) -> HttpResponse:
        changelog = _visible_changelog(request, changelog_id)
        revision = changelog_selectors.revision_current(changelog=changelog)
        state = selectors.approval_state_of(changelog=changelog, now=timezone.now())
        context = {
            **self.admin_site.each_context(request),
            **change_context(changelog, revision),
            "title": f"{changelog.service.slug} {revision.content['artifact']['version']} ({changelog.kind})",
            "state": state,
            "approvals": selectors.approval_list(changelog=changelog),
            "may_decide": _may_decide(actor_of(request), changelog),
        }
        return TemplateResponse(request, "approvals/detail.html", context)

    def decide_view(self, request: HttpRequest, changelog_id: UUID, decision: str) -> HttpResponse:
        """The confirm page: the whole content once more, the reason, the password. The form
        carries the revision and content hash shown; when the change was revised meanwhile,
        nothing is recorded and the page shows what changed, field by field."""
        if decision not in Decision.values:
            raise Http404("No such decision.")
        changelog = _visible_changelog(request, changelog_id)
        if request.method == "POST" and not _may_decide_as_person(actor_of(request), changelog):
            # A forged post: the page offers no buttons to this person. Refused and recorded.
            refused = PermissionDenied(ApprovalError.NO_SIGNING_AUTHORITY, "You may not decide on this change.")
            services.approval_refusal_record(
                acting_user=actor_of(request), changelog=changelog, decision=decision, seen=None, error=refused
            )
            raise DjangoPermissionDenied(refused.message)
        if request.method != "POST" and not _may_decide(actor_of(request), changelog):
            raise DjangoPermissionDenied("You may not decide on this change.")
        form = DecisionForm(request.POST or None)
        changes = None
        if request.method == "POST" and form.is_valid():
            seen = services.Seen(revision=form.cleaned_data["revision"], content_hash=form.cleaned_data["content_hash"])
            try:
                step_up = step_up_verify(
                    request=request, user=actor_of(request), password=form.cleaned_data["password"]
                )
                with transaction.atomic():
                    services.approval_decide(
                        acting_user=actor_of(request),
                        changelog=changelog,
                        decision=decision,
                        reason=form.cleaned_data["reason"],
                        seen=seen,
                        step_up=step_up,
                        assertion=form.cleaned_data["assertion"],
                    )
            except ApplicationError as error:
                services.approval_refusal_record(
                    acting_user=actor_of(request), changelog=changelog, decision=decision, seen=seen, error=error
                )
                if error.code == ApprovalError.CONTENT_CHANGED:
                    # A fresh form for the current revision: the approver reads what changed
                    # and the content now shown, and decides again (password again).
                    changes = self._changes_since(changelog, seen)
                    form = DecisionForm(initial={"reason": form.cleaned_data["reason"]})
                else:
                    form.add_error(None, error.message)
            else:
                signed = " and signed with your passkey" if form.cleaned_data["assertion"] else ""
                self.message_user(request, f"Your decision ({decision}) is recorded{signed}, in the audit trail.")
                return HttpResponseRedirect(reverse("admin:approvals_detail", args=[changelog.pk]))
        changelog.refresh_from_db()
        revision = changelog_selectors.revision_current(changelog=changelog)
        if not form.is_bound or changes is not None:
            form.initial.update({"revision": revision.number, "content_hash": revision.content_hash})
        context = {
            **self.admin_site.each_context(request),
            **change_context(changelog, revision),
            "title": f"{'Approve' if decision == Decision.APPROVED else 'Reject'} {changelog.service.slug}",
            "decision": decision,
            "form": form,
            "changes_since_seen": changes,
            "signs_with_passkey": signs_with_passkey(actor_of(request)),
            "signature_required": revision.content["risk_tier"]
            in changelog_selectors.policy_for(service=changelog.service).rules.signed_approvals,
        }
        return TemplateResponse(request, "approvals/decide.html", context)

    @staticmethod
    def _changes_since(changelog: Changelog, seen: Any) -> Any:
        revisions = {revision.number: revision for revision in changelog.revisions.all()}
        current = changelog_selectors.revision_current(changelog=changelog)
        before = revisions.get(seen.revision)
        if before is None:
            return None
        return {
            "from": before,
            "to": current,
            "changes": changelog_selectors.revision_changes_between(before=before, after=current),
        }

    def authorities_view(self, request: HttpRequest) -> HttpResponse:
        """The authority matrix, the grants waiting for a second administrator, and the forms
        to ask for, confirm, refuse and revoke grants; each asks for the password again."""
        if not request.user.has_perm("approvals.change_authoritygrant"):
            raise DjangoPermissionDenied("Only administrators manage signing authorities.")
        posted = request.POST.get("form") if request.method == "POST" else None
        forms_by_name: dict[str, forms.Form] = {
            "request": GrantRequestForm(request.POST if posted == "request" else None),
            "membership": MembershipRequestForm(request.POST if posted == "membership" else None),
            "decide": GrantDecisionForm(request.POST if posted == "decide" else None),
        }
        form = forms_by_name.get(posted or "")
        if form is not None and form.is_valid():
            done = self._grant_act(request, posted or "", form)
            if done is not None:
                self.message_user(request, done, messages.SUCCESS)
                return HttpResponseRedirect(reverse("admin:approvals_authorities"))
        matrix = [(domain, selectors.authority_grants(domain=domain)) for domain in Domain.objects.all()]
        context = {
            **self.admin_site.each_context(request),
            "title": "Signing authorities",
            "matrix": matrix,
            "pending": selectors.grant_list(status=GrantStatus.PENDING),
            "active": selectors.grant_list(status=GrantStatus.ACTIVE),
            "request_form": forms_by_name["request"],
            "membership_form": forms_by_name["membership"],
            "decide_errors": forms_by_name["decide"].non_field_errors() if posted == "decide" else [],
        }
        return TemplateResponse(request, "approvals/authorities.html", context)

    @staticmethod
    def _grant_act(request: HttpRequest, posted: str, form: forms.Form) -> str | None:
        """Step-up, then the service in a transaction of its own; a refusal is recorded and
        shown on the form. Returns the message for success, None after a refusal."""
        data = form.cleaned_data
        grant = AuthorityGrant.objects.filter(pk=data["grant"]).first() if posted == "decide" else None
        try:
            step_up = step_up_verify(request=request, user=actor_of(request), password=data["password"])
            with transaction.atomic():
                if posted == "request":
                    grant = services.authority_grant_request(
                        acting_user=actor_of(request),
                        domain=data["domain"],
                        authority=data["authority"],
                        user=data["user"],
                        group=data["group"],
                        reason=data["reason"],
                        step_up=step_up,
                    )
                    return f"Asked for: {grant.describe()}. A second administrator must confirm it."
                if posted == "membership":
                    grant = services.membership_grant_request(
                        acting_user=actor_of(request),
                        group=data["group"],
                        user=data["user"],
                        reason=data["reason"],
                        step_up=step_up,
                    )
                    return f"Asked for: {grant.describe()}. A second administrator must confirm it."
                if grant is None:
                    raise Http404("No such grant.")
                GRANT_DECISIONS[data["decision"]](acting_user=actor_of(request), grant=grant, step_up=step_up)
                return f"{data['decision'].capitalize()}: {grant.describe()}. The audit trail has it."
        except ApplicationError as error:
            services.authority_refusal_record(
                acting_user=actor_of(request),
                attempted=posted if posted != "decide" else data["decision"],
                grant=grant,
                error=error,
            )
            form.add_error(None, error.message)
            return None


@admin.register(AuthorityGrant)
class AuthorityGrantAdmin(ReadOnlyAdmin):
    """Every grant ever asked for, with who asked, who confirmed and who revoked; managed on the
    signing authorities page."""

    list_display = ("__str__", "kind", "status", "requested_by", "requested_at", "decided_by", "revoked_by")
    list_filter = ("status", "kind", "domain")
    search_fields = ("user__username", "group__name", "reason")


@admin.register(Retrospective)
class RetrospectiveAdmin(ReadOnlyAdmin):
    list_display = ("changelog", "status", "opened_at", "due_at", "approved_at", "completed_at", "overdue_at")
    list_filter = ("status",)


@admin.register(PostImplementationReview)
class PostImplementationReviewAdmin(ReadOnlyAdmin):
    """Attached through the API (audited, once, never edited): read-only here."""

    list_display = ("retrospective", "written_by", "written_at")


@admin.register(Notification)
class NotificationAdmin(ReadOnlyAdmin):
    list_display = ("event", "channel", "status", "attempts", "created_at", "sent_at", "last_error")
    list_filter = ("event", "channel", "status")


admin.site.index_template = "approvals/admin_index.html"
