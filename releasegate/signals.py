"""Authentication, in the audit trail: successful logins, failed logins and step-up
re-entries, and lockouts (django-axes). Refusals about authority are recorded (THREATS.md),
with the address they came from; a failed attempt names the account it tried, which may not
exist, so its target is the name, not a row."""

from typing import Any

from django.contrib.auth.signals import user_logged_in, user_login_failed
from django.db import transaction
from django.dispatch import receiver
from django.http import HttpRequest

import audit
from core.actors import ActingUser, Actor
from releasegate.audit_actions import IdentityAction


def _address(request: Any) -> str:
    return str(getattr(request, "axes_ip_address", "") or getattr(request, "META", {}).get("REMOTE_ADDR", ""))


def _acting(request: Any) -> Any:
    """The signed-in person re-entering a password (step-up), else whoever is knocking."""
    user = getattr(request, "user", None)
    if user is not None and getattr(user, "is_authenticated", False):
        return user
    return Actor(f"anonymous:{_address(request) or 'unknown'}")


def _record(request: Any, action: IdentityAction, username: str, data: dict[str, Any]) -> None:
    # In the caller's transaction when there is one (the admin's login view commits its
    # failures: a failed login is not an error); in a transaction of its own otherwise (a
    # step-up view runs outside the request's transaction for exactly this reason).
    with transaction.atomic():
        audit.record(
            actor=_acting(request),
            action=action,
            target=("releasegate.user", username),
            data={"username": username, "address": _address(request), "path": getattr(request, "path", ""), **data},
        )


@receiver(user_login_failed, dispatch_uid="releasegate-audit-login-failed")
def login_failed(sender: Any, credentials: dict[str, Any], request: Any = None, **_: Any) -> None:
    username = str(credentials.get("username") or "")
    step_up = bool(getattr(request, "step_up", False))
    _record(
        request,
        IdentityAction.STEP_UP_FAILED if step_up else IdentityAction.LOGIN_FAILED,
        username,
        {
            "failures": getattr(request, "axes_failures_since_start", None),
            "locked_out": bool(getattr(request, "axes_locked_out", False)),
        },
    )


@receiver(user_logged_in, dispatch_uid="releasegate-audit-logged-in")
def logged_in(sender: Any, request: HttpRequest | None, user: ActingUser, **_: Any) -> None:
    if request is not None:
        from releasegate.sso import sso_logged_in

        with transaction.atomic():
            sso_logged_in(request, user)
    if request is None or not request.META.get("REMOTE_ADDR"):
        return  # not a login over HTTP (Django's test client's force_login, a shell session)
    _record(request, IdentityAction.LOGIN_SUCCEEDED, user.get_username(), {})


def locked_out(sender: Any, request: Any, username: str | None = None, ip_address: str | None = None, **_: Any) -> None:
    _record(request, IdentityAction.LOCKED_OUT, username or "", {"locked_address": ip_address or ""})
