"""Change freezes and their overrides."""

from datetime import datetime
from enum import StrEnum

from django.db import transaction
from django.utils import timezone

import audit
from approvals.selectors import authorities_of
from approvals.services import independence_require
from changelogs.models import Changelog, Domain
from changelogs.selectors import changelog_lock
from core.actors import ActingUser, StepUp, step_up_require
from core.errors import InvalidInput, PermissionDenied
from releasegate.audit_actions import GateAction
from releasegate.models import FreezeOverride, FreezeWindow


class FreezeError(StrEnum):
    FREEZE_ENDS_BEFORE_START = "freeze_ends_before_start"
    OVERRIDE_NOT_ALLOWED = "override_not_allowed"
    FREEZE_NOT_FOR_CHANGE = "freeze_not_for_change"
    OVERRIDE_REASON_REQUIRED = "override_reason_required"


@transaction.atomic
def freeze_create(
    *, acting_user: ActingUser, domain: Domain | None, starts_at: datetime, ends_at: datetime, reason: str
) -> FreezeWindow:
    if ends_at <= starts_at:
        raise InvalidInput(FreezeError.FREEZE_ENDS_BEFORE_START, "A freeze must end after it starts.")
    freeze = FreezeWindow.objects.create(
        domain=domain,
        starts_at=starts_at,
        ends_at=ends_at,
        reason=reason,
        created_by=acting_user,
        created_at=timezone.now(),
    )
    audit.record(
        actor=acting_user,
        action=GateAction.FREEZE_CREATED,
        target=freeze,
        data={"domain": domain.slug if domain else None, "starts_at": starts_at, "ends_at": ends_at, "reason": reason},
    )
    return freeze


@transaction.atomic
def freeze_override_approve(
    *, acting_user: ActingUser, freeze: FreezeWindow, changelog: Changelog, reason: str, step_up: StepUp | None
) -> FreezeOverride:
    """A signing authority of the change's domain lets this one change through the freeze,
    under the same independence rules as an approval: not the requester, not an uploader of
    its evidence, not a commit author, and on an authority they did not grant themselves.
    Only with a fresh step-up by the person overriding (``step_up``: the admin's override form
    asks for the password)."""
    step_up_require(step_up, acting_user=acting_user)
    changelog = changelog_lock(changelog=changelog)
    domain = changelog.service.domain
    if freeze.domain_id not in (None, domain.pk):
        raise InvalidInput(FreezeError.FREEZE_NOT_FOR_CHANGE, "This freeze does not cover the change's domain.")
    if not reason.strip():
        raise InvalidInput(FreezeError.OVERRIDE_REASON_REQUIRED, "An override needs a reason.")
    if "sign_off" not in authorities_of(user=acting_user, domain=domain):
        raise PermissionDenied(
            FreezeError.OVERRIDE_NOT_ALLOWED, f"Only a signing authority of {domain.name} may override a freeze."
        )
    try:
        independence_require(user=acting_user, changelog=changelog)
    except PermissionDenied as error:
        raise PermissionDenied(
            FreezeError.OVERRIDE_NOT_ALLOWED, f"You may not override a freeze for this change: {error.message}"
        ) from error
    override = FreezeOverride.objects.create(
        freeze=freeze, changelog=changelog, approved_by=acting_user, reason=reason.strip(), created_at=timezone.now()
    )
    audit.record(
        actor=acting_user,
        action=GateAction.FREEZE_OVERRIDDEN,
        target=changelog,
        data={"freeze": freeze.pk, "reason": override.reason},
    )
    return override
