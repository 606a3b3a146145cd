"""What an API token may do: REST framework's permission that checks a token's scopes.

A module of its own, importing little: REST framework imports its permission classes while it
builds ``APIView``, so nothing here may import REST framework's views.
"""

from typing import Any

from rest_framework import permissions
from rest_framework.request import Request

from core.errors import PermissionDenied
from releasegate.authentication import token_of
from releasegate.tokens import TokenError, TokenScope


class TokenScopes(permissions.BasePermission):
    """A request made with an API token needs the token's scope for its operation: ``read`` for
    every GET, HEAD and OPTIONS; for a write, the scope its view names (``write_scope``).
    Writes that name no scope are for people (approving, asking for packs), and their views
    refuse service accounts with their own codes (``approver_not_a_person``, ``not_an_auditor``).
    People (sessions) are not affected: their permissions are their own."""

    def has_permission(self, request: Request, view: Any) -> bool:
        token = token_of(request)
        if token is None:
            return True
        needed = TokenScope.READ if request.method in permissions.SAFE_METHODS else getattr(view, "write_scope", None)
        if needed is None or str(needed) in token.scopes:
            return True
        raise PermissionDenied(
            TokenError.TOKEN_SCOPE_MISSING,
            f"This token may not do this: it lacks the '{needed}' scope (it has: {', '.join(token.scopes)}).",
        )
