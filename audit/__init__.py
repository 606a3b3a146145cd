"""The audit trail. ``audit.record`` is the one call every state-changing service makes.
It imports only core: the apps above write to it, it knows none of them.

This package's ``__init__`` stays free of Django so that ``python -m audit.verifier`` runs
without it; ``record`` imports the Django side on first use.
"""

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from audit.models import AuditEvent


def record(*, actor: Any, action: str, target: Any, data: Any = None) -> "AuditEvent":
    from audit.services import event_record

    return event_record(actor=actor, action=action, target=target, data=data)
