"""What a session has proved: a second factor, and when. Set by identity.services when a
passkey or TOTP code is verified (and by SSO from the ID token's amr/acr); read by step-up
(approvals/step_up.py) before any decision that carries authority."""

import time
from typing import Any

from django.conf import settings
from django.http import HttpRequest

from core.errors import PermissionDenied
from identity.errors import FactorError

MFA_KEY = "identity.mfa"


def second_factor_mark(request: HttpRequest, *, method: str) -> None:
    """The session has just proved a second factor (``method``: passkey, totp, idp:<amr>)."""
    request.session[MFA_KEY] = {"method": method, "at": time.time()}


def second_factor_of(request: HttpRequest) -> dict[str, Any] | None:
    session = getattr(request, "session", None)
    found = session.get(MFA_KEY) if session is not None else None
    return found if isinstance(found, dict) else None


def signing_session_require(request: HttpRequest) -> None:
    """Refuse unless the session authenticated with a second factor (403 ``mfa_required``)
    recently enough (403 ``reauthentication_required``: SIGNING_REAUTH_MINUTES)."""
    if not settings.SIGNING_REQUIRES_MFA:
        return
    found = second_factor_of(request)
    if found is None:
        raise PermissionDenied(
            FactorError.MFA_REQUIRED,
            "Deciding needs a session authenticated with a second factor (a passkey, a TOTP code, or your "
            "identity provider's MFA); verify one and try again. Nothing was recorded.",
        )
    age_minutes = (time.time() - float(found.get("at", 0))) / 60
    if age_minutes > settings.SIGNING_REAUTH_MINUTES:
        raise PermissionDenied(
            FactorError.REAUTHENTICATION_REQUIRED,
            f"Your last authentication was {int(age_minutes)} minutes ago; deciding needs one within "
            f"{settings.SIGNING_REAUTH_MINUTES} minutes. Verify your second factor again. Nothing was recorded.",
        )
