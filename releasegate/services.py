"""Writes to identities: service accounts and their API tokens."""

from collections.abc import Iterable
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from guardian.shortcuts import assign_perm, remove_perm

import audit
from changelogs.models import Service
from changelogs.selectors import MANAGE_CHANGELOGS
from releasegate.audit_actions import IdentityAction
from releasegate.errors import Conflict, InvalidInput, field_error
from releasegate.models import ApiToken, User
from releasegate.tokens import ALL_SCOPES, token_generate, token_hash


class IdentityError(StrEnum):
    SERVICE_ACCOUNT_EXISTS = "service_account_exists"
    NOT_A_SERVICE_ACCOUNT = "not_a_service_account"
    TOKEN_ALREADY_REVOKED = "token_already_revoked"  # noqa: S105 - an error code, not a secret
    TOKEN_SCOPES_INVALID = "token_scopes_invalid"  # noqa: S105 - an error code, not a secret
    TOKEN_LIFETIME_TOO_LONG = "token_lifetime_too_long"  # noqa: S105 - an error code, not a secret


def service_account_username(name: str) -> str:
    return f"svc-{name}"


@transaction.atomic
def service_account_create(*, acting_user: Any, name: str, services: Iterable[Service]) -> User:
    username = service_account_username(name)
    if User.objects.filter(username=username).exists():
        raise Conflict(IdentityError.SERVICE_ACCOUNT_EXISTS, f"A service account named {name!r} exists already.")
    account = User(username=username, is_service_account=True, first_name=name)
    account.set_unusable_password()
    account.save()
    audit.record(actor=acting_user, action=IdentityAction.SERVICE_ACCOUNT_CREATED, target=account, data={"name": name})
    for service in services:
        service_account_grant(acting_user=acting_user, account=account, service=service)
    return account


@transaction.atomic
def service_account_grant(*, acting_user: Any, account: User, service: Service) -> None:
    """Let the account act on the service's changelogs (django-guardian object permission)."""
    _require_service_account(account)
    assign_perm(MANAGE_CHANGELOGS, account, service)
    audit.record(
        actor=acting_user,
        action=IdentityAction.SERVICE_ACCOUNT_SCOPE_GRANTED,
        target=account,
        data={"service": service.slug, "permission": MANAGE_CHANGELOGS},
    )


@transaction.atomic
def service_account_revoke(*, acting_user: Any, account: User, service: Service) -> None:
    _require_service_account(account)
    remove_perm(MANAGE_CHANGELOGS, account, service)
    audit.record(
        actor=acting_user,
        action=IdentityAction.SERVICE_ACCOUNT_SCOPE_REVOKED,
        target=account,
        data={"service": service.slug, "permission": MANAGE_CHANGELOGS},
    )


@transaction.atomic
def api_token_issue(
    *,
    acting_user: Any,
    account: User,
    name: str,
    scopes: Iterable[str],
    lifetime: timedelta | None = None,
    now: datetime | None = None,
) -> tuple[ApiToken, str]:
    """A new token for the account, able to do what its scopes say and no more, for at most
    API_TOKEN_MAX_LIFETIME. The plain token is returned once and never stored."""
    _require_service_account(account)
    now = now or timezone.now()
    chosen = sorted(set(scopes), key=lambda scope: ALL_SCOPES.index(scope) if scope in ALL_SCOPES else -1)
    if not chosen or not set(chosen) <= set(ALL_SCOPES):
        message = f"Name the token's scopes among {', '.join(ALL_SCOPES)}."
        raise InvalidInput(
            IdentityError.TOKEN_SCOPES_INVALID,
            message,
            fields={"scopes": [field_error(IdentityError.TOKEN_SCOPES_INVALID, message)]},
        )
    lifetime = lifetime or settings.API_TOKEN_DEFAULT_LIFETIME
    if lifetime > settings.API_TOKEN_MAX_LIFETIME:
        message = f"A token lives at most {settings.API_TOKEN_MAX_LIFETIME.days} days (API_TOKEN_MAX_DAYS)."
        raise InvalidInput(
            IdentityError.TOKEN_LIFETIME_TOO_LONG,
            message,
            fields={"lifetime": [field_error(IdentityError.TOKEN_LIFETIME_TOO_LONG, message)]},
        )
    plain, prefix = token_generate()
    token = ApiToken.objects.create(
        service_account=account,
        name=name,
        prefix=prefix,
        token_hash=token_hash(plain),
        created_at=now,
        created_by=acting_user if isinstance(acting_user, User) else None,
        expires_at=now + lifetime,
        scopes=chosen,
    )
    audit.record(
        actor=acting_user,
        action=IdentityAction.API_TOKEN_ISSUED,
        target=token,
        data={
            "account": account.username,
            "name": name,
            "prefix": prefix,
            "expires_at": token.expires_at,
            "scopes": chosen,
        },
    )
    return token, plain


@transaction.atomic
def api_token_revoke(*, acting_user: Any, token: ApiToken, now: datetime | None = None) -> ApiToken:
    token = ApiToken.objects.select_for_update().get(pk=token.pk)
    if token.revoked_at is not None:
        raise Conflict(IdentityError.TOKEN_ALREADY_REVOKED, "The token is revoked already.")
    token.revoked_at = now or timezone.now()
    token.revoked_by = acting_user if isinstance(acting_user, User) else None
    token.save(update_fields=["revoked_at", "revoked_by"])
    audit.record(
        actor=acting_user,
        action=IdentityAction.API_TOKEN_REVOKED,
        target=token,
        data={"account": token.service_account.username, "prefix": token.prefix},
    )
    return token


def _require_service_account(account: User) -> None:
    if not account.is_service_account:
        message = "Only service accounts hold API tokens and service scopes."
        raise InvalidInput(
            IdentityError.NOT_A_SERVICE_ACCOUNT,
            message,
            fields={"account": [field_error("not_a_service_account", message)]},
        )
