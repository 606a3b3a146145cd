"""Step-up: a person proves again that it is them before a decision that carries authority
(approving, rejecting, granting or confirming an authority, overriding a freeze, changing who
may do what).

The proof is the account's password, checked through ``django.contrib.auth.authenticate`` so
that django-axes counts every failure per account and per address and locks both out after
``LOGIN_FAILURE_LIMIT`` failures for ``LOGIN_LOCKOUT_MINUTES`` (settings). Failures and
lockouts are audit events (releasegate/signals.py). Because a refused request rolls back its
transaction, a view that asks for step-up must not run inside the request's transaction:
the failure has to outlive the refusal, or the counter would never count (see
``approvals.apis.ApprovalListDecideApi``).
"""

from datetime import timedelta

from django.conf import settings
from django.contrib.auth import authenticate
from django.http import HttpRequest

from approvals.errors import ApprovalError
from core.actors import ActingUser, StepUp
from core.errors import PermissionDenied, TooManyAttempts, field_error
from identity.sessions import signing_session_require


def step_up_verify(*, request: HttpRequest, user: ActingUser, password: str, field: str = "password") -> StepUp:
    """Return the proof services ask for (``core.actors.StepUp``) when ``password`` is the
    user's own and the account is not locked out; raise
    ``TooManyAttempts`` (429 ``throttled``) when locked out, ``PermissionDenied``
    (403 ``step_up_failed``) when the password is not right.

    First of all the session must have proved a second factor recently (identity.sessions:
    403 ``mfa_required`` or ``reauthentication_required``), before any password is counted."""
    signing_session_require(request)
    if not user.has_usable_password():
        # Signed in through the identity provider: no local password to ask for; the fresh
        # second factor just checked is the step-up (docs/identity.md).
        return StepUp.of(user)
    request.step_up = True  # type: ignore[attr-defined]  # read by the audit receivers
    confirmed = authenticate(request, username=user.get_username(), password=password or "")
    locked_out = getattr(request, "axes_locked_out", False)
    # Answered here, in the caller's own shape (JSON for the API, the form for the admin),
    # rather than by django-axes' middleware, which would replace the answer with its page.
    request.axes_locked_out = False  # type: ignore[attr-defined]
    if locked_out:
        minutes = int(lockout_period().total_seconds() // 60)
        raise TooManyAttempts(
            f"Too many wrong passwords: this account is locked out for {minutes} minutes; nothing was recorded.",
            retry_after=lockout_period(),
        )
    if confirmed is None or confirmed.pk != user.pk:
        message = "The password is not right; nothing was recorded."
        raise PermissionDenied(
            ApprovalError.STEP_UP_FAILED,
            message,
            fields={field: [field_error(ApprovalError.STEP_UP_FAILED, "Not your password.")]},
        )
    return StepUp.of(user)


def lockout_period() -> timedelta:
    period: timedelta = settings.AXES_COOLOFF_TIME
    return period
