"""Who acts: every state change names who did it.

A person or a service account (a pipeline) is a ``releasegate.models.User``
(``is_service_account`` tells them apart); work nobody asked for in a request (the demo's seed,
a management command, a beat task) acts as a named system ``Actor``. The floor names the user
type for the type checker only, so the apps below ``releasegate`` can annotate their services
without importing it at run time.
"""

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, TypeAlias, cast

from core.errors import CommonError, NotAuthenticated

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
