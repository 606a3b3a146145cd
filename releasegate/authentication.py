from datetime import datetime
from typing import Any

from django.conf import settings
from django.utils import timezone
from rest_framework import authentication, exceptions
from rest_framework.request import Request

from releasegate.models import ApiToken, User
from releasegate.tokens import ParsedToken, token_matches, token_parse


class ApiTokenAuthentication(authentication.BaseAuthentication):
    """``Authorization: Bearer rgp_…`` for pipelines. One indexed lookup by the token's public
    prefix; the last-used time is written at most once per resolution period."""

    keyword = "Bearer"

    def authenticate(self, request: Request) -> tuple[User, ApiToken] | None:
        parsed = self.credentials(request)
        if parsed is None:
            return None
        # A view may read the token together with its own facts (the gate check: one round trip
        # fewer); it hands back what the lookup below would have found, or None if it did not read.
        view = (getattr(request, "parser_context", None) or {}).get("view")
        read_with = getattr(view, "token_read_with_facts", None)
        found = read_with(request, parsed.prefix) if read_with is not None else None
        if found is None:
            found = (ApiToken.objects.select_related("service_account").filter(prefix=parsed.prefix).first(),)
        return self.verified(parsed, found[0])

    def credentials(self, request: Request) -> ParsedToken | None:
        """The token the request carries in its ``Authorization: Bearer`` header; None when it
        carries none (another scheme may authenticate it)."""
        header = authentication.get_authorization_header(request).decode("latin-1")
        if not header:
            return None
        scheme, _, credentials = header.partition(" ")
        if scheme.lower() != self.keyword.lower():
            return None
        parsed = token_parse(credentials.strip())
        if parsed is None:
            raise exceptions.AuthenticationFailed("The API token is malformed.")
        return parsed

    def verified(self, parsed: ParsedToken, token: ApiToken | None) -> tuple[User, ApiToken]:
        """The token found by the parsed token's prefix (with its service account), if it is
        that token and may be used now; every refusal is a 401 with its reason."""
        now = timezone.now()
        if token is None or not token_matches(parsed.whole, token.token_hash):
            raise exceptions.AuthenticationFailed("The API token is not valid.")
        if token.revoked_at is not None:
            raise exceptions.AuthenticationFailed("The API token has been revoked.")
        if token.expires_at <= now:
            raise exceptions.AuthenticationFailed("The API token has expired.")
        if not token.service_account.is_active:
            raise exceptions.AuthenticationFailed("The service account is disabled.")
        self._touch(token, now)
        return token.service_account, token

    def authenticate_header(self, request: Request) -> str:
        return f'{self.keyword} realm="releasegate"'

    @staticmethod
    def _touch(token: ApiToken, now: datetime) -> None:
        last = token.last_used_at
        if last is None or now - last >= settings.API_TOKEN_LAST_USED_RESOLUTION:
            ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
            token.last_used_at = now


def token_of(request: Any) -> ApiToken | None:
    auth = getattr(request, "auth", None)
    return auth if isinstance(auth, ApiToken) else None
