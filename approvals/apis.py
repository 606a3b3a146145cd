"""HTTP API for submitting for approval, deciding, and hotfix retrospectives."""

import json
from typing import Any

from django.db import transaction
from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_field
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from approvals import selectors, services
from approvals.errors import ApprovalError
from approvals.models import Decision, RetrospectiveStatus
from approvals.rules import ApprovalState
from approvals.step_up import step_up_verify
from changelogs import selectors as changelog_selectors
from changelogs.apis import ChangelogOutput
from core.actors import actor_of
from core.api import StrictInput, checked, error_responses
from core.errors import ApplicationError, PermissionDenied
from identity.challenge import approval_challenge, approval_statement
from identity.services import passkey_authentication_options


class SubmitApi(APIView):
    write_scope = "changelogs"  # the API token scope its writes need (releasegate.tokens)

    @extend_schema(
        operation_id="changelogs_submit",
        request=None,
        responses={200: ChangelogOutput, **error_responses(401, 403, 404, 409)},
        description=(
            "Freeze the current draft revision, record the SHA-256 of its canonical content and the "
            "readiness at submission, and notify the domain's signing authorities."
        ),
    )
    def post(self, request: Request, changelog_id: str) -> Response:
        changelog = changelog_selectors.changelog_get(user=actor_of(request), changelog_id=changelog_id)
        services.changelog_submit_for_approval(acting_user=actor_of(request), changelog=changelog)
        return Response(ChangelogOutput(changelog).data)


class ApprovalOutput(serializers.Serializer[Any]):
    id = serializers.UUIDField()
    decision = serializers.ChoiceField(choices=Decision.choices)
    reason = serializers.CharField()
    approver = serializers.CharField(source="approver.username")
    authorities = serializers.ListField(child=serializers.CharField(), help_text="Held for the domain when deciding.")
    revision = serializers.IntegerField(source="revision.number")
    content_hash = serializers.CharField(help_text="The content hash this decision signs.")
    retrospective = serializers.BooleanField()
    decided_at = serializers.DateTimeField()
    expires_at = serializers.DateTimeField()
    signed = serializers.SerializerMethodField()
    counts = serializers.SerializerMethodField(help_text="Whether it counts towards the current revision now.")
    not_counted_because = serializers.SerializerMethodField(
        help_text="Why it does not count (stale_revision, self_approval, expired, no_authority…), or null."
    )
    commit_authors_from = serializers.SerializerMethodField(
        help_text="Whom its revision's commit authors (who may not approve) are known from: `github` when they "
        "were read from GitHub (every commit the change deploys), `declaration` when only the pipeline's "
        "declaration is known so far (docs/approvals.md)."
    )

    @extend_schema_field(serializers.BooleanField(help_text="Signed with the approver's passkey."))
    def get_signed(self, approval: Any) -> bool:
        return hasattr(approval, "signature")

    def get_counts(self, approval: Any) -> bool:
        state: ApprovalState = self.context["state"]
        return str(approval.id) in state.counted

    def get_not_counted_because(self, approval: Any) -> str | None:
        state: ApprovalState = self.context["state"]
        return state.not_counted.get(str(approval.id))

    @extend_schema_field(serializers.ChoiceField(choices=["github", "declaration"]))
    def get_commit_authors_from(self, approval: Any) -> str:
        return "github" if changelog_selectors.commit_authors_of(revision=approval.revision).verified else "declaration"


class ApprovalStateOutput(serializers.Serializer[Any]):
    status = serializers.ChoiceField(choices=["pending", "approved", "rejected"])
    required = serializers.ListField(  # type: ignore[assignment]  # a field named like Field.required
        child=serializers.CharField(), help_text="The sign-offs needed, one per person."
    )
    missing = serializers.ListField(child=serializers.CharField(), help_text="Sign-offs still to come.")
    one_independent_approval = serializers.BooleanField(help_text="Enough for a hotfix to go out (the rest is owed).")
    approvals = serializers.ListField(child=ApprovalOutput())


class DecideInput(StrictInput):
    decision = serializers.ChoiceField(choices=Decision.choices)
    reason = serializers.CharField(max_length=5000, required=False, allow_blank=True, default="")
    revision = serializers.IntegerField(
        min_value=1, help_text="The revision number you decided on, as shown to you (`revision.number`)."
    )
    content_hash = serializers.RegexField(
        r"^[0-9a-f]{64}$",
        help_text=(
            "The content hash you decided on, as shown to you (`revision.content_hash`). When the change was "
            "revised since, nothing is recorded and the answer is 409 `content_changed`."
        ),
    )
    password = serializers.CharField(
        write_only=True,
        style={"input_type": "password"},
        required=False,
        allow_blank=True,
        default="",
        help_text="Your password again (people who sign in with single sign-on have none: leave it out).",
    )
    assertion = serializers.DictField(
        required=False,
        help_text=(
            "Your passkey's signature over this decision: the PublicKeyCredential (JSON, base64url fields) that "
            "navigator.credentials.get() returned for the options of `approvals/challenge`. Required for the risk "
            "tiers the policy's `signed_approvals` names, or the approval does not count (`approval_unsigned`)."
        ),
    )


class ApprovalListDecideApi(APIView):
    atomic_request = False  # see as_view

    @classmethod
    def as_view(cls, **initkwargs: Any) -> Any:
        # Outside the request's transaction: a refused decision (a wrong password, content that
        # changed) must leave its record and its failure count behind (approvals/step_up.py).
        return transaction.non_atomic_requests(super().as_view(**initkwargs))

    def _state(self, changelog: Any) -> dict[str, Any]:
        state = selectors.approval_state_of(changelog=changelog, now=timezone.now())
        approvals = selectors.approval_list(changelog=changelog)
        return {
            "status": state.status.value,
            "required": list(state.required),
            "missing": list(state.missing),
            "one_independent_approval": state.one_independent_approval,
            "approvals": ApprovalOutput(approvals, many=True, context={"state": state}).data,
        }

    @extend_schema(
        operation_id="changelogs_approvals_list", responses={200: ApprovalStateOutput, **error_responses(401, 404)}
    )
    def get(self, request: Request, changelog_id: str) -> Response:
        changelog = changelog_selectors.changelog_get(user=actor_of(request), changelog_id=changelog_id)
        return Response(self._state(changelog))

    @extend_schema(
        operation_id="changelogs_approvals_decide",
        request=DecideInput,
        responses={201: ApprovalStateOutput, **error_responses(400, 401, 403, 404, 409, 429)},
        description=(
            "Approve or reject exactly the submitted revision you were shown (its `revision` and `content_hash`), "
            "as a person holding signing authority for the domain (session login, password again). Pipelines "
            "cannot approve. Every refusal is recorded in the audit trail; repeated wrong passwords lock the "
            "account and the address out (429 `throttled` with `Retry-After`)."
        ),
    )
    def post(self, request: Request, changelog_id: str) -> Response:
        values = checked(DecideInput, request.data)
        changelog = changelog_selectors.changelog_get(user=actor_of(request), changelog_id=changelog_id)
        seen = services.Seen(revision=values["revision"], content_hash=values["content_hash"])
        try:
            if getattr(request.user, "is_service_account", False):
                raise PermissionDenied(ApprovalError.APPROVER_NOT_A_PERSON, "Pipelines cannot approve changes.")
            step_up = step_up_verify(request=request._request, user=actor_of(request), password=values["password"])
            with transaction.atomic():
                services.approval_decide(
                    acting_user=actor_of(request),
                    changelog=changelog,
                    decision=values["decision"],
                    reason=values["reason"],
                    seen=seen,
                    step_up=step_up,
                    assertion=values.get("assertion"),
                )
        except ApplicationError as error:
            services.approval_refusal_record(
                acting_user=actor_of(request), changelog=changelog, decision=values["decision"], seen=seen, error=error
            )
            raise
        return Response(self._state(changelog), status=status.HTTP_201_CREATED)


class ChallengeInput(StrictInput):
    decision = serializers.ChoiceField(choices=Decision.choices)
    reason = serializers.CharField(max_length=5000, required=False, allow_blank=True, default="")
    revision = serializers.IntegerField(min_value=1)
    content_hash = serializers.RegexField(r"^[0-9a-f]{64}$")


class ChallengeOutput(serializers.Serializer[Any]):
    statement = serializers.DictField(help_text="What the passkey signs (its SHA-256 is the challenge).")
    challenge = serializers.CharField(help_text="hex")
    publicKey = serializers.DictField(  # noqa: N815 - WebAuthn's own name
        help_text="Options for navigator.credentials.get() over your passkeys."
    )


class ApprovalChallengeApi(APIView):
    @extend_schema(
        operation_id="changelogs_approvals_challenge",
        request=ChallengeInput,
        responses={200: ChallengeOutput, **error_responses(400, 401, 403, 404, 409)},
        description=(
            "The WebAuthn options to sign a decision with your passkey: the challenge is the SHA-256 of the "
            "statement (changelog, revision, content hash, decision, SHA-256 of the reason), so the signature "
            "covers exactly what is decided (docs/identity.md). Nothing is stored."
        ),
    )
    def post(self, request: Request, changelog_id: str) -> Response:
        values = checked(ChallengeInput, request.data)
        changelog = changelog_selectors.changelog_get(user=actor_of(request), changelog_id=changelog_id)
        revision = changelog_selectors.revision_current(changelog=changelog)
        seen = services.Seen(revision=values["revision"], content_hash=values["content_hash"])
        if (revision.number, revision.content_hash) != (seen.revision, seen.content_hash):
            raise services.content_changed(seen=seen, current=revision)
        statement = {
            "changelog_id": str(changelog.pk),
            "revision": revision.number,
            "content_hash": revision.content_hash,
            "decision": values["decision"],
            "reason": values["reason"].strip(),
        }
        challenge = approval_challenge(**statement)
        options = passkey_authentication_options(request=request._request, user=actor_of(request), challenge=challenge)
        return Response(
            {
                "statement": approval_statement(**statement),
                "challenge": challenge.hex(),
                "publicKey": json.loads(options),
            }
        )


class QueueItemOutput(serializers.Serializer[Any]):
    id = serializers.UUIDField()
    service = serializers.SlugField(source="service.slug")
    domain = serializers.SlugField(source="service.domain.slug")
    kind = serializers.CharField()
    status = serializers.CharField()
    revision = serializers.IntegerField(source="current_revision.number")
    artifact_digest = serializers.CharField(source="current_revision.artifact_digest")
    submitted_at = serializers.DateTimeField(source="current_revision.submitted_at")


class QueueApi(APIView):
    @extend_schema(
        operation_id="approvals_queue",
        responses={200: QueueItemOutput(many=True), **error_responses(401)},
        description="Changelogs waiting for the caller's sign-off, oldest submission first.",
    )
    def get(self, request: Request) -> Response:
        return Response(QueueItemOutput(selectors.queue_for(user=actor_of(request)), many=True).data)


class ReviewOutput(serializers.Serializer[Any]):
    id = serializers.UUIDField()
    summary = serializers.CharField()
    follow_up = serializers.CharField()
    written_by = serializers.CharField(source="written_by.username")
    written_at = serializers.DateTimeField()


class RetrospectiveOutput(serializers.Serializer[Any]):
    changelog = serializers.UUIDField(source="changelog.id")
    service = serializers.SlugField(source="changelog.service.slug")
    domain = serializers.SlugField(source="changelog.service.domain.slug")
    status = serializers.ChoiceField(choices=RetrospectiveStatus.choices)
    opened_at = serializers.DateTimeField()
    due_at = serializers.DateTimeField()
    approved_at = serializers.DateTimeField(
        allow_null=True, help_text="When the tier's full approvals were in; null while they are owed."
    )
    completed_at = serializers.DateTimeField(allow_null=True)
    overdue_at = serializers.DateTimeField(allow_null=True)
    review = serializers.SerializerMethodField(help_text="The post-implementation review; null while it is owed.")

    @extend_schema_field(ReviewOutput(allow_null=True))
    def get_review(self, retrospective: Any) -> dict[str, Any] | None:
        review = getattr(retrospective, "review", None)
        return ReviewOutput(review).data if review is not None else None


class ReviewInput(StrictInput):
    # The schema's description of the review; the service checks it (approvals.services.REVIEW).
    summary = serializers.CharField(
        max_length=20000, help_text="What happened, what the hotfix changed and whether it worked."
    )
    follow_up = serializers.CharField(
        max_length=20000, required=False, default="", allow_blank=True, help_text="The lasting fix, actions, owners."
    )


class RetrospectiveReviewApi(APIView):
    write_scope = "changelogs"

    @extend_schema(
        operation_id="retrospectives_review_attach",
        request=ReviewInput,
        responses={201: ReviewOutput, **error_responses(400, 401, 403, 404, 409)},
        description=(
            "Attach the hotfix's post-implementation review to its retrospective, once, normally after the "
            "deployment (PR-09). Written by a person who may act on the change; audited with the change's status "
            "(`retrospective:reviewed`). 403 `reviewer_not_a_person`; 409 `no_retrospective`, `review_exists`."
        ),
    )
    def post(self, request: Request, changelog_id: str) -> Response:
        changelog = changelog_selectors.changelog_get(user=actor_of(request), changelog_id=changelog_id)
        review = services.retrospective_review_attach(
            acting_user=actor_of(request), changelog=changelog, review=request.data
        )
        return Response(ReviewOutput(review).data, status=status.HTTP_201_CREATED)


class CloseApi(APIView):
    write_scope = "changelogs"

    @extend_schema(
        operation_id="changelogs_close",
        request=None,
        responses={200: ChangelogOutput, **error_responses(401, 403, 404, 409)},
        description=(
            "Close a deployed or rolled-back change: its record is finished. A hotfix closes only once its "
            "tests, its retrospective's approvals and its post-implementation review are in: else 409 "
            "`hotfix_not_closable`, naming each in `fields`, and nothing changes. 409 `status_change_not_allowed` "
            "for a change that has not gone out."
        ),
    )
    def post(self, request: Request, changelog_id: str) -> Response:
        changelog = changelog_selectors.changelog_get(user=actor_of(request), changelog_id=changelog_id)
        services.changelog_close(acting_user=actor_of(request), changelog=changelog)
        return Response(ChangelogOutput(changelog).data)


class RetrospectiveListApi(APIView):
    @extend_schema(
        operation_id="exceptions_retrospectives",
        parameters=[OpenApiParameter("status", str, enum=list(RetrospectiveStatus.values))],
        responses={200: RetrospectiveOutput(many=True), **error_responses(400, 401)},
        description="Hotfix retrospectives (the caller's visible changelogs); status=overdue lists the exceptions.",
    )
    def get(self, request: Request) -> Response:
        visible = changelog_selectors.changelog_list_visible(user=actor_of(request))
        status_filter = request.query_params.get("status")
        if status_filter is not None and status_filter not in RetrospectiveStatus.values:
            # A status no retrospective has is a mistake, not a request for all of them (schemathesis).
            raise serializers.ValidationError(
                {"status": [f"Must be one of {', '.join(RetrospectiveStatus.values)}."]}, code="invalid_choice"
            )
        retrospectives = selectors.retrospective_list(status=status_filter).filter(changelog__in=visible)
        return Response(RetrospectiveOutput(retrospectives, many=True).data)
