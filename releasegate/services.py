"""Writes to identities: service accounts and their API tokens."""

from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from django.conf import settings
from django.contrib.auth.models import Group, Permission
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone
from guardian.shortcuts import assign_perm, remove_perm

import audit
from approvals.models import GRANT_OPEN, AuthorityGrant, GrantKind
from changelogs.models import Service
from changelogs.selectors import MANAGE_CHANGELOGS
from core.actors import ActingUser, Actor, StepUp, step_up_require
from core.errors import Conflict, InvalidInput, field_error
from releasegate.audit_actions import IdentityAction
from releasegate.models import ApiToken, User
from releasegate.tokens import ALL_SCOPES, token_generate, token_hash

# What an account may do, and so what every change to it records with its old and new value.
AUDITED_USER_FIELDS = ("username", "email", "is_active", "is_staff", "is_superuser", "is_service_account")


def user_access_snapshot(user: User) -> dict[str, Any]:
    """An account's rights as plain values (empty for an account not saved yet)."""
    if user._state.adding:
        return {}
    stored = User.objects.get(pk=user.pk)
    return {
        **{field: getattr(stored, field) for field in AUDITED_USER_FIELDS},
        "groups": sorted(stored.groups.values_list("name", flat=True)),
        "user_permissions": sorted(
            f"{app}.{codename}"
            for app, codename in stored.user_permissions.values_list("content_type__app_label", "codename")
        ),
    }


def _changes(before: dict[str, Any], after: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        key: {"old": before.get(key), "new": after.get(key)}
        for key in sorted(set(before) | set(after))
        if before.get(key) != after.get(key)
    }


def signing_groups() -> QuerySet[Group]:
    """Groups that hold, or are about to hold, a signing authority: their members change only
    through membership grants a second administrator confirms (approvals.services)."""
    held = AuthorityGrant.objects.filter(kind=GrantKind.AUTHORITY, group__isnull=False, status__in=GRANT_OPEN)
    return Group.objects.filter(pk__in=held.values("group_id"))


@transaction.atomic
def user_access_save(
    *,
    acting_user: ActingUser,
    user: User,
    groups: Iterable[Group],
    user_permissions: Iterable[Permission],
    step_up: StepUp | None,
) -> User:
    """Save a person's account as an administrator edited it (the admin's user page: ``user``
    carries the edited fields, not saved yet), with what they may do: flags, groups,
    permissions. Records every change with its old and new value, read from the locked stored
    row. Membership of a group that signs is left as it is: it changes only through a confirmed
    membership grant. Only with a fresh step-up by the administrator."""
    step_up_require(step_up, acting_user=acting_user)
    if not user._state.adding:
        # The username may change: a key column, so the full row lock.
        User.objects.select_for_update().filter(pk=user.pk).first()
    before = user_access_snapshot(user)
    signing = set(signing_groups())
    wanted = {group for group in groups if group not in signing}
    kept = set(user.groups.filter(pk__in=[group.pk for group in signing])) if user.pk else set()
    user.save()
    user.groups.set(wanted | kept)
    user.user_permissions.set(list(user_permissions))
    audit.record(
        actor=acting_user,
        action=IdentityAction.USER_SAVED,
        target=user,
        data={"created": not before, "changes": _changes(before, user_access_snapshot(user))},
    )
    return user


@transaction.atomic
def group_save(
    *, acting_user: ActingUser, group: Group, permissions: Iterable[Permission], step_up: StepUp | None
) -> Group:
    """Save a group and the model permissions it gives its members, recording old and new.
    Only with a fresh step-up by the administrator."""
    step_up_require(step_up, acting_user=acting_user)
    if group.pk:
        Group.objects.select_for_update().filter(pk=group.pk).first()  # its name is a key: the full row lock
    before = (
        sorted(f"{p.content_type.app_label}.{p.codename}" for p in Group.objects.get(pk=group.pk).permissions.all())
        if group.pk
        else None
    )
    old_name = Group.objects.filter(pk=group.pk).values_list("name", flat=True).first() if group.pk else None
    group.save()
    group.permissions.set(list(permissions))
    after = sorted(f"{p.content_type.app_label}.{p.codename}" for p in group.permissions.all())
    audit.record(
        actor=acting_user,
        action=IdentityAction.GROUP_SAVED,
        target=("auth.group", str(group.pk)),
        data={
            "created": before is None,
            "changes": _changes(
                {"name": old_name, "permissions": before} if before is not None else {},
                {"name": group.name, "permissions": after},
            ),
        },
    )
    return group


class IdentityError(StrEnum):
    SERVICE_ACCOUNT_EXISTS = "service_account_exists"
    NOT_A_SERVICE_ACCOUNT = "not_a_service_account"
    TOKEN_ALREADY_REVOKED = "token_already_revoked"  # noqa: S105 - an error code, not a secret
    TOKEN_SCOPES_INVALID = "token_scopes_invalid"  # noqa: S105 - an error code, not a secret
    TOKEN_LIFETIME_TOO_LONG = "token_lifetime_too_long"  # noqa: S105 - an error code, not a secret


def service_account_username(name: str) -> str:
    return f"svc-{name}"


@transaction.atomic
def service_account_create(*, acting_user: ActingUser | Actor, name: str, services: Iterable[Service]) -> User:
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
def service_account_grant(*, acting_user: ActingUser | Actor, account: User, service: Service) -> None:
    """Let the account act on the service's changelogs (django-guardian object permission)."""
    _service_scope_change(acting_user, account, service, assign_perm, IdentityAction.SERVICE_ACCOUNT_SCOPE_GRANTED)


@transaction.atomic
def service_account_revoke(*, acting_user: ActingUser, account: User, service: Service) -> None:
    _service_scope_change(acting_user, account, service, remove_perm, IdentityAction.SERVICE_ACCOUNT_SCOPE_REVOKED)


def _service_scope_change(
    acting_user: ActingUser | Actor, account: User, service: Service, change: Callable[..., Any], action: str
) -> None:
    _require_service_account(account)
    change(MANAGE_CHANGELOGS, account, service)
    data = {"service": service.slug, "permission": MANAGE_CHANGELOGS}
    audit.record(actor=acting_user, action=action, target=account, data=data)


@transaction.atomic
def api_token_issue(
    *,
    acting_user: ActingUser | Actor,
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
        raise InvalidInput.on_field("scopes", IdentityError.TOKEN_SCOPES_INVALID, message)
    lifetime = lifetime or settings.API_TOKEN_DEFAULT_LIFETIME
    if lifetime > settings.API_TOKEN_MAX_LIFETIME:
        message = f"A token lives at most {settings.API_TOKEN_MAX_LIFETIME.days} days (API_TOKEN_MAX_DAYS)."
        raise InvalidInput.on_field("lifetime", IdentityError.TOKEN_LIFETIME_TOO_LONG, message)
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
def api_token_revoke(*, acting_user: ActingUser, token: ApiToken, now: datetime | None = None) -> ApiToken:
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
