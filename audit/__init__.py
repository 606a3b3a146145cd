"""The audit trail. ``audit.record`` is the one call every state-changing service makes.
It imports only the outbox, core and the log's pure kernel (tlog): the apps above write to it,
it knows none of them.

``record`` imports the Django side on first use, so importing the package needs no app registry.
"""

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from core.actors import ActingUser, Actor

if TYPE_CHECKING:
    from audit.models import AuditEvent


def record(
    *,
    actor: ActingUser | Actor,
    action: str,
    target: Any,
    data: Mapping[str, Any] | None = None,
) -> "AuditEvent":
    from audit.services import event_record

    return event_record(actor=actor, action=action, target=target, data=data)
