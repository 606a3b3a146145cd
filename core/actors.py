"""Who acts: every state change names who did it.

A person or a service account (a pipeline) is a ``releasegate.models.User``
(``is_service_account`` tells them apart); work nobody asked for in a request (the demo's seed,
a management command, a beat task) acts as a named system ``Actor``. The floor names the user
type for the type checker only, so the apps below ``releasegate`` can annotate their services
without importing it at run time.
"""

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol, TypeAlias, cast

from core.errors import CommonError, NotAuthenticated, PermissionDenied

if TYPE_CHECKING:
    from releasegate.models import User


@dataclass(frozen=True)
class Actor:
    """Who acted, as a string that stays meaningful after the account is gone."""

    name: str
    id: int | None = None


# A person or a service account: what services that record who did something (a foreign key)
# take. Services that may also run as the system take ``ActingUser | Actor``. At run time the
# name stands for anything (the model lives above the floor); the type checker sees the model.
if TYPE_CHECKING:
    ActingUser: TypeAlias = User
else:
    ActingUser = Any


class _Request(Protocol):
    user: Any


def actor_of(request: _Request) -> ActingUser:
    """The authenticated user behind a request (a Django or REST framework request), typed as the
    acting user services take. Views and admin pages call services only after authentication,
    so an anonymous user here is refused rather than recorded as acting."""
    user = request.user
    if not getattr(user, "is_authenticated", False):
        raise NotAuthenticated(CommonError.NOT_AUTHENTICATED, "Authentication is required to do this.")
    return cast(ActingUser, user)


# How long a step-up proof stands: it is made in the request that carries the decision, so a
# few minutes cover a slow form without letting a proof be kept and used later.
STEP_UP_VALID_FOR = timedelta(minutes=5)


@dataclass(frozen=True)
class StepUp:
    """Proof that a person confirmed just now that it is them (their password again and a fresh
    second factor: ``approvals.step_up.step_up_verify`` makes it). Every service that takes a
    decision carrying authority (approving, changing who may sign, overriding a freeze, changing
    rights) takes one and checks it itself with ``step_up_require``, so no caller can forget to
    ask for it. Non-interactive callers that act for a person on purpose (the demo's seed, the
    benchmarks, tests) make one with ``StepUp.of``."""

    user_id: int
    at: datetime

    @classmethod
    def of(cls, user: ActingUser, *, at: datetime | None = None) -> "StepUp":
        return cls(user_id=user.pk, at=at or datetime.now(UTC))


def step_up_require(step_up: StepUp | None, *, acting_user: ActingUser, now: datetime | None = None) -> None:
    """Refuse (403 ``step_up_required``) unless ``step_up`` proves that ``acting_user`` confirmed
    who they are within ``STEP_UP_VALID_FOR``."""
    now = now or datetime.now(UTC)
    if step_up is None or step_up.user_id != acting_user.pk or not (now - STEP_UP_VALID_FOR <= step_up.at <= now):
        raise PermissionDenied(
            CommonError.STEP_UP_REQUIRED,
            "This decision needs your password (and a fresh second factor) again, confirmed just now; nothing was "
            "recorded.",
        )
