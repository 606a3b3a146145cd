"""API token format. Pure: no Django.

A token reads ``rgp_<prefix>_<secret>``: ``rgp_`` marks it as a Release Gate pipeline token
for secret scanners, the prefix finds its row, and the secret carries 240 bits of entropy.
Only the SHA-256 of the whole token is stored; a slow hash adds nothing at that entropy and
would cost every request.
"""

import hashlib
import hmac
import secrets
import string
from dataclasses import dataclass
from enum import StrEnum

TOKEN_MARKER = "rgp"  # noqa: S105 - the public marker secret scanners look for
_ALPHABET = string.ascii_letters + string.digits
_PREFIX_LENGTH = 8
_SECRET_LENGTH = 40


class TokenScope(StrEnum):
    """What a token may do, chosen when it is issued. A request with a token needs the scope
    of its operation: ``read`` for every GET, the others for the writes they name."""

    CHANGELOGS = "changelogs"  # create, edit and submit changelogs
    EVIDENCE = "evidence"  # upload and detach evidence
    GATE = "gate"  # ask the gate
    DEPLOYMENTS = "deployments"  # report deployments
    INCIDENTS = "incidents"  # record and update incidents
    READ = "read"  # read what the account may see


ALL_SCOPES: tuple[str, ...] = tuple(scope.value for scope in TokenScope)


class TokenError(StrEnum):
    TOKEN_SCOPE_MISSING = "token_scope_missing"  # noqa: S105 - an error code, not a secret


def scopes_parse(values: list[str]) -> list[str]:
    """Scopes as a person writes them (``gate``, ``changelogs,evidence``, ``all``), in the
    canonical order; ValueError names the unknown ones."""
    named = {part.strip() for value in values for part in value.split(",") if part.strip()}
    if "all" in named:
        named = (named - {"all"}) | set(ALL_SCOPES)
    unknown = sorted(named - set(ALL_SCOPES))
    if unknown:
        raise ValueError(f"unknown scope(s): {', '.join(unknown)}; choose from {', '.join(ALL_SCOPES)} or all")
    return [scope for scope in ALL_SCOPES if scope in named]


@dataclass(frozen=True)
class ParsedToken:
    prefix: str
    whole: str


def _random(length: int) -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(length))


def token_generate() -> tuple[str, str]:
    """A new token and its public prefix."""
    prefix = f"{TOKEN_MARKER}_{_random(_PREFIX_LENGTH)}"
    return f"{prefix}_{_random(_SECRET_LENGTH)}", prefix


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def token_parse(token: str) -> ParsedToken | None:
    parts = token.split("_")
    if len(parts) != 3 or parts[0] != TOKEN_MARKER:
        return None
    _, prefix, secret = parts
    if len(prefix) != _PREFIX_LENGTH or len(secret) != _SECRET_LENGTH:
        return None
    if not all(c in _ALPHABET for c in prefix + secret):
        return None
    return ParsedToken(prefix=f"{TOKEN_MARKER}_{prefix}", whole=token)


def token_matches(token: str, stored_hash: str) -> bool:
    return hmac.compare_digest(token_hash(token), stored_hash)
