"""Single sign-on through the bank's OpenID Connect provider (mozilla-django-oidc:
authorization code flow with PKCE; docs/identity.md says why this library).

People are created and updated from the provider's claims and keyed by (issuer, subject), never
by a name that could be reassigned. Their local password is unusable; with SSO on, local
passwords are refused to everyone but the break-glass administrators (BREAK_GLASS_USERNAMES),
whose every login is an audit event. Provider groups map to Release Gate groups (OIDC_GROUP_MAP)
for access such as the auditors' role, never to a group that holds signing authority: who may
sign stays under the two-person rule (approvals.services). Whether the login used a second
factor is read from the ID token's ``amr``/``acr`` and recorded on the session
(identity.sessions), which signing requires."""

from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.contrib import admin, auth
from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.models import Group
from django.db import transaction
from django.http import Http404, HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.csrf import csrf_protect
from mozilla_django_oidc.auth import OIDCAuthenticationBackend
from mozilla_django_oidc.views import OIDCAuthenticationCallbackView, OIDCAuthenticationRequestView

import audit
from identity.models import ExternalIdentity
from identity.sessions import MFA_KEY, second_factor_mark
from releasegate.audit_actions import IdentityAction
from releasegate.models import User
from releasegate.services import signing_groups

ID_TOKEN_ATTRIBUTE = "releasegate_id_token"  # noqa: S105 - an attribute name, not a secret


def mfa_from_id_token(payload: dict[str, Any]) -> bool:
    """The provider says the person authenticated with more than one factor: an ``amr`` value
    among OIDC_MFA_AMR_VALUES (RFC 8176: mfa, otp, hwk, swk, fpt, …) or an ``acr`` among
    OIDC_MFA_ACR_VALUES."""
    amr = payload.get("amr") or []
    if isinstance(amr, str):
        amr = [amr]
    if set(map(str, amr)) & set(settings.OIDC_MFA_AMR_VALUES):
        return True
    return str(payload.get("acr") or "") in set(settings.OIDC_MFA_ACR_VALUES)


class LocalPasswordBackend(ModelBackend):
    """Django's password check, refused with SSO on to anyone who is not a break-glass
    administrator."""

    def user_can_authenticate(self, user: Any) -> bool:
        if not super().user_can_authenticate(user):
            return False
        if settings.OIDC_ENABLED:
            return user.get_username() in settings.BREAK_GLASS_USERNAMES
        return True


class ReleaseGateOIDCBackend(OIDCAuthenticationBackend):  # type: ignore[misc]
    def authenticate(self, request: HttpRequest | None, **kwargs: Any) -> Any:
        if not settings.OIDC_ENABLED:
            return None
        return super().authenticate(request, **kwargs)

    def get_or_create_user(self, access_token: str, id_token: str, payload: dict[str, Any]) -> Any:
        # What the ID token says about this login, for the login receiver (second factor).
        setattr(self.request, ID_TOKEN_ATTRIBUTE, payload)
        self._issuer = str(payload.get("iss", ""))
        return super().get_or_create_user(access_token, id_token, payload)

    def verify_claims(self, claims: dict[str, Any]) -> bool:
        return bool(claims.get("sub"))

    def filter_users_by_claims(self, claims: dict[str, Any]) -> Any:
        return User.objects.filter(
            external_identities__issuer=self._issuer, external_identities__subject=str(claims["sub"])
        )

    @transaction.atomic
    def create_user(self, claims: dict[str, Any]) -> User:
        base = str(claims.get("preferred_username") or claims.get("email") or claims["sub"])[:140]
        username, n = base, 1
        while User.objects.filter(username=username).exists():
            n += 1
            username = f"{base}-{n}"
        user = User(username=username, is_staff=True)
        user.set_unusable_password()
        _apply_claims(user, claims)
        user.save()
        ExternalIdentity.objects.create(user=user, issuer=self._issuer, subject=str(claims["sub"]))
        audit.record(
            actor=user,
            action=IdentityAction.SSO_USER_CREATED,
            target=user,
            data={"issuer": self._issuer, "subject": str(claims["sub"]), "email": user.email},
        )
        _groups_sync(user, claims)
        return user

    @transaction.atomic
    def update_user(self, user: User, claims: dict[str, Any]) -> User:
        before = {"email": user.email, "first_name": user.first_name, "last_name": user.last_name}
        _apply_claims(user, claims)
        after = {"email": user.email, "first_name": user.first_name, "last_name": user.last_name}
        if before != after:
            user.save(update_fields=list(after))
            audit.record(
                actor=user,
                action=IdentityAction.SSO_USER_UPDATED,
                target=user,
                data={"from": before, "to": after, "issuer": self._issuer},
            )
        _groups_sync(user, claims)
        return user


def _apply_claims(user: User, claims: dict[str, Any]) -> None:
    user.email = str(claims.get("email") or user.email)[:254]
    name = str(claims.get("name") or "").strip()
    first, _, last = name.partition(" ")
    user.first_name = str(claims.get("given_name") or first or user.first_name)[:150]
    user.last_name = str(claims.get("family_name") or last or user.last_name)[:150]


def _groups_sync(user: User, claims: dict[str, Any]) -> None:
    """The Release Gate groups the provider's groups map to: joined when named, left when not.
    A mapped group that holds signing authority is never joined (nor left) this way: joining
    it is a membership grant a second administrator confirms. The refusal is audited."""
    mapping: dict[str, str] = settings.OIDC_GROUP_MAP
    if not mapping:
        return
    provider_groups = claims.get("groups") or []
    wanted = {mapping[name] for name in map(str, provider_groups) if name in mapping}
    signing = set(signing_groups().values_list("name", flat=True))
    for name in sorted(set(mapping.values())):
        group = Group.objects.filter(name=name).first()
        if group is None:
            continue
        member = user.groups.filter(pk=group.pk).exists()
        if name in signing:
            if name in wanted and not member:
                audit.record(
                    actor=user,
                    action=IdentityAction.SSO_GROUP_REFUSED,
                    target=user,
                    data={"group": name, "why": "the group holds signing authority: two-person rule"},
                )
            continue
        if name in wanted and not member:
            user.groups.add(group)
        elif name not in wanted and member:
            user.groups.remove(group)
        else:
            continue
        audit.record(
            actor=user,
            action=IdentityAction.SSO_GROUPS_CHANGED,
            target=user,
            data={"group": name, "member": name in wanted},
        )


def sso_logged_in(request: HttpRequest, user: User) -> None:
    """After any login: an SSO login records its second factor (or its absence) from the ID
    token; a break-glass password login with SSO on is recorded as such."""
    payload = getattr(request, ID_TOKEN_ATTRIBUTE, None)
    if payload is not None:
        mfa = mfa_from_id_token(payload)
        if mfa:
            second_factor_mark(request, method="idp:" + ",".join(map(str, payload.get("amr") or [payload.get("acr")])))
        else:
            request.session.pop(MFA_KEY, None)
        audit.record(
            actor=user,
            action=IdentityAction.SSO_LOGIN,
            target=user,
            data={"issuer": payload.get("iss"), "amr": payload.get("amr"), "acr": payload.get("acr"), "mfa": mfa},
        )
    elif settings.OIDC_ENABLED and user.get_username() in settings.BREAK_GLASS_USERNAMES:
        audit.record(
            actor=user,
            action=IdentityAction.BREAK_GLASS_LOGIN,
            target=user,
            data={"path": request.path, "address": request.META.get("REMOTE_ADDR", "")},
        )


def _when_enabled(view_class: Any) -> Any:
    inner = view_class.as_view()

    def view(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not settings.OIDC_ENABLED:
            raise Http404("Single sign-on is not configured.")
        response: HttpResponse = inner(request, *args, **kwargs)
        return response

    return view


class CallbackView(OIDCAuthenticationCallbackView):  # type: ignore[misc]
    def login_success(self) -> HttpResponse:
        # Signing in again while signed in as the same person does not log in anew (the
        # library keeps the session and its CSRF token): the new ID token's second factor (or
        # its absence) is recorded all the same, and the login audited.
        current = getattr(self.request, "user", None)
        if current is not None and current.is_authenticated and current == self.user:
            with transaction.atomic():
                sso_logged_in(self.request, self.user)
        response: HttpResponse = super().login_success()
        return response


sso_authenticate = _when_enabled(OIDCAuthenticationRequestView)
sso_callback = _when_enabled(CallbackView)


# --- The admin's login and logout with single sign-on on --------------------------------------

ID_TOKEN_SESSION_KEY = "oidc_id_token"  # noqa: S105 - where mozilla-django-oidc keeps the ID token


def admin_login(request: HttpRequest) -> HttpResponse:
    """The admin's login page; with single sign-on on, it offers the provider's login first (the
    password form stays for the break-glass administrators)."""
    context: dict[str, Any] = {}
    if settings.OIDC_ENABLED:
        following = request.GET.get("next", "")
        if not url_has_allowed_host_and_scheme(following, allowed_hosts={request.get_host()}):
            following = reverse("admin:index")
        context["sso_login_url"] = f"{reverse('oidc_authentication_init')}?{urlencode({'next': following})}"
    response: HttpResponse = admin.site.login(request, extra_context=context)
    return response


def provider_logout_url(request: HttpRequest) -> str:
    """RP-initiated logout (OpenID Connect RP-Initiated Logout 1.0): the provider's end-session
    endpoint, with this session's ID token as the hint, coming back to the admin's login page."""
    query = {
        "client_id": settings.OIDC_RP_CLIENT_ID,
        "post_logout_redirect_uri": request.build_absolute_uri(reverse("admin:login")),
    }
    id_token = request.session.get(ID_TOKEN_SESSION_KEY)
    if id_token:
        query["id_token_hint"] = str(id_token)
    return f"{settings.OIDC_OP_LOGOUT_ENDPOINT}?{urlencode(query)}"


@csrf_protect
def admin_logout(request: HttpRequest) -> HttpResponse:
    """The admin's logout. A person signed in through the provider is signed out of Release Gate
    and then sent to the provider's end-session endpoint, so that the provider's session ends
    too (audited). A page of ours does the sending: the admin's Content-Security-Policy lets its
    forms post only here, so the logout form cannot be redirected to the provider."""
    user: Any = request.user
    if not (
        request.method == "POST"
        and settings.OIDC_ENABLED
        and settings.OIDC_OP_LOGOUT_ENDPOINT
        and user.is_authenticated
        and request.session.get(ID_TOKEN_SESSION_KEY)
    ):
        response: HttpResponse = admin.site.logout(request)
        return response
    url = provider_logout_url(request)
    with transaction.atomic():
        audit.record(
            actor=user,
            action=IdentityAction.SSO_LOGOUT,
            target=user,
            data={"end_session_endpoint": settings.OIDC_OP_LOGOUT_ENDPOINT},
        )
    auth.logout(request)
    return TemplateResponse(
        request,
        "releasegate/sso_logout.html",
        {**admin.site.each_context(request), "title": "Signed out", "provider_logout_url": url},
    )
