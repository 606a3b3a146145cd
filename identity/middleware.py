"""The admin's idle timeout: a session unused for ADMIN_IDLE_TIMEOUT_MINUTES is ended (and the
ending audited), whatever its absolute age (SESSION_COOKIE_AGE)."""

import time
from collections.abc import Callable

from django.conf import settings
from django.contrib.auth import logout
from django.db import transaction
from django.http import HttpRequest, HttpResponse

import audit
from identity.audit_actions import FactorAction

SEEN_KEY = "identity.seen"
# The last-seen time is written at most this often, so that reading pages does not write the
# session on every request.
RESOLUTION_SECONDS = 30


class IdleTimeoutMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated and hasattr(request, "session"):
            now = time.time()
            seen = request.session.get(SEEN_KEY)
            limit = settings.ADMIN_IDLE_TIMEOUT_MINUTES * 60
            if isinstance(seen, int | float) and now - seen > limit:
                username = user.get_username()
                logout(request)
                with transaction.atomic():
                    audit.record(
                        actor=user,
                        action=FactorAction.IDLE_LOGOUT,
                        target=("releasegate.user", username),
                        data={"idle_minutes": int((now - seen) // 60), "path": request.path},
                    )
            elif not isinstance(seen, int | float) or now - seen > RESOLUTION_SECONDS:
                request.session[SEEN_KEY] = now
        return self.get_response(request)
