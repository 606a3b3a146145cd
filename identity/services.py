"""Writes for second factors: passkey registration (audited, confirmed by a second
administrator before it may sign), TOTP enrolment, verifying a factor for the session, and
checking an approval's WebAuthn assertion. The ceremonies are py_webauthn's; TOTP is
django-otp's."""

import secrets
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives import serialization
from django.conf import settings
from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone
from django_otp.plugins.otp_totp.models import TOTPDevice
from webauthn import (
    generate_authentication_options,
    generate_registration_options,
    options_to_json,
    verify_authentication_response,
    verify_registration_response,
)
from webauthn.helpers import base64url_to_bytes, bytes_to_base64url
from webauthn.helpers.decode_credential_public_key import decode_credential_public_key
from webauthn.helpers.decoded_public_key_to_cryptography import decoded_public_key_to_cryptography
from webauthn.helpers.exceptions import WebAuthnException
from webauthn.helpers.structs import (
    AuthenticatorSelectionCriteria,
    PublicKeyCredentialDescriptor,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

import audit
from core.actors import ActingUser
from core.errors import Conflict, InvalidInput, PermissionDenied
from identity.audit_actions import FactorAction
from identity.errors import FactorError
from identity.models import Passkey, PasskeyStatus
from identity.sessions import second_factor_mark

REGISTRATION_KEY = "identity.registration_challenge"
AUTHENTICATION_KEY = "identity.authentication_challenge"


def _relying_party() -> tuple[str, list[str]]:
    if not passkeys_configured():
        raise Conflict(
            FactorError.PASSKEYS_NOT_CONFIGURED, "Passkeys need WEBAUTHN_RP_ID and WEBAUTHN_ORIGINS to be set."
        )
    return settings.WEBAUTHN_RP_ID, list(settings.WEBAUTHN_ORIGINS)


def passkeys_configured() -> bool:
    return bool(settings.WEBAUTHN_RP_ID and settings.WEBAUTHN_ORIGINS)


def signs_with_passkey(user: ActingUser) -> bool:
    """The user holds a confirmed passkey here: the admin's decision page signs with it."""
    return passkeys_configured() and Passkey.objects.filter(user=user, status=PasskeyStatus.ACTIVE).exists()


def _require_person(user: ActingUser) -> None:
    if not getattr(user, "is_authenticated", False) or getattr(user, "is_service_account", False):
        raise PermissionDenied(FactorError.MFA_REQUIRED, "Second factors are for people signed in with a session.")


# --- Passkeys -------------------------------------------------------------------------------


def passkey_registration_options(*, request: HttpRequest, user: ActingUser) -> str:
    """The options for navigator.credentials.create(), as JSON; the challenge waits in the
    session for ``passkey_register``."""
    _require_person(user)
    rp_id, _origins = _relying_party()
    options = generate_registration_options(
        rp_id=rp_id,
        rp_name=settings.WEBAUTHN_RP_NAME,
        user_id=str(user.pk).encode(),
        user_name=user.get_username(),
        user_display_name=user.get_full_name() or user.get_username(),
        challenge=secrets.token_bytes(32),
        authenticator_selection=AuthenticatorSelectionCriteria(
            resident_key=ResidentKeyRequirement.PREFERRED, user_verification=UserVerificationRequirement.REQUIRED
        ),
        exclude_credentials=[
            PublicKeyCredentialDescriptor(id=base64url_to_bytes(found))
            for found in Passkey.objects.filter(user=user).values_list("credential_id", flat=True)
        ],
    )
    request.session[REGISTRATION_KEY] = bytes_to_base64url(options.challenge)
    return str(options_to_json(options))


def _challenge_from_session(request: HttpRequest, key: str) -> bytes:
    stored = request.session.pop(key, None)
    if not stored:
        raise Conflict(FactorError.CEREMONY_EXPIRED, "Ask for new options first: this ceremony has no challenge.")
    return base64url_to_bytes(stored)


def public_key_pem(cose_key: bytes) -> str:
    """The credential's COSE key as SubjectPublicKeyInfo PEM: what offline verifiers read."""
    key = decoded_public_key_to_cryptography(decode_credential_public_key(cose_key))
    pem: bytes = key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return pem.decode("ascii")


@transaction.atomic
def passkey_register(
    *, request: HttpRequest, acting_user: ActingUser, name: str, credential: dict[str, Any]
) -> Passkey:
    """Check the registration ceremony (challenge, origin, RP id, user verification) and keep
    the credential, pending until a second administrator confirms it."""
    _require_person(acting_user)
    rp_id, origins = _relying_party()
    challenge = _challenge_from_session(request, REGISTRATION_KEY)
    try:
        verified = verify_registration_response(
            credential=credential,
            expected_challenge=challenge,
            expected_rp_id=rp_id,
            expected_origin=origins,
            require_user_verification=True,
        )
    except (WebAuthnException, ValueError, KeyError, TypeError) as error:
        raise InvalidInput(FactorError.PASSKEY_INVALID, f"The passkey registration did not verify: {error}") from None
    cose = bytes(verified.credential_public_key)
    passkey = Passkey.objects.create(
        user=acting_user,
        name=(name or "passkey").strip()[:100],
        credential_id=bytes_to_base64url(verified.credential_id),
        public_key_cose=bytes_to_base64url(cose),
        public_key_pem=public_key_pem(cose),
        algorithm=int(decode_credential_public_key(cose).alg or 0),
        sign_count=verified.sign_count,
        aaguid=str(verified.aaguid or ""),
        registered_at=timezone.now(),
    )
    audit.record(
        actor=acting_user,
        action=FactorAction.PASSKEY_REGISTERED,
        target=passkey,
        data={
            "user": acting_user.get_username(),
            "name": passkey.name,
            "credential_id": passkey.credential_id,
            "public_key_pem": passkey.public_key_pem,
            "aaguid": passkey.aaguid,
            "status": passkey.status,
        },
    )
    return passkey


def _require_administrator(user: ActingUser) -> None:
    if not (getattr(user, "is_active", False) and user.has_perm("identity.change_passkey")):
        raise PermissionDenied(FactorError.NOT_AN_ADMINISTRATOR, "Only administrators confirm passkeys.")


@transaction.atomic
def passkey_confirm(*, acting_user: ActingUser, passkey: Passkey) -> Passkey:
    """A second administrator says this passkey is this person's: from now on it signs
    approvals. Nobody confirms their own."""
    _require_administrator(acting_user)
    passkey = Passkey.objects.select_for_update().select_related("user").get(pk=passkey.pk)
    if passkey.user_id == acting_user.pk:
        raise PermissionDenied(FactorError.CONFIRM_OWN_FACTOR, "A second administrator confirms your passkey.")
    if passkey.status != PasskeyStatus.PENDING:
        raise Conflict(FactorError.PASSKEY_NOT_PENDING, f"This passkey is {passkey.status}, not waiting.")
    passkey.status, passkey.confirmed_by, passkey.confirmed_at = PasskeyStatus.ACTIVE, acting_user, timezone.now()
    passkey.save(update_fields=["status", "confirmed_by", "confirmed_at"])
    audit.record(
        actor=acting_user,
        action=FactorAction.PASSKEY_CONFIRMED,
        target=passkey,
        data={"user": passkey.user.get_username(), "name": passkey.name, "credential_id": passkey.credential_id},
    )
    return passkey


def passkey_authentication_options(*, request: HttpRequest, user: ActingUser, challenge: bytes | None = None) -> str:
    """Options for navigator.credentials.get() over the user's passkeys, as JSON. Without a
    ``challenge`` a random one for verifying a second factor, kept in the session; with one
    (an approval's, identity.challenge) nothing is kept: the decision re-derives it."""
    _require_person(user)
    rp_id, _origins = _relying_party()
    options = generate_authentication_options(
        rp_id=rp_id,
        challenge=challenge or secrets.token_bytes(32),
        allow_credentials=[
            PublicKeyCredentialDescriptor(id=base64url_to_bytes(found))
            for found in Passkey.objects.filter(user=user)
            .exclude(status=PasskeyStatus.REVOKED)
            .values_list("credential_id", flat=True)
        ],
        user_verification=UserVerificationRequirement.REQUIRED,
    )
    if challenge is None:
        request.session[AUTHENTICATION_KEY] = bytes_to_base64url(options.challenge)
    return str(options_to_json(options))


@dataclass(frozen=True)
class VerifiedAssertion:
    passkey: Passkey
    credential_id: str
    authenticator_data: str  # base64url, as the authenticator gave them
    client_data_json: str
    signature: str
    user_handle: str


def assertion_verify(
    *, user: ActingUser, credential: dict[str, Any], challenge: bytes, require_confirmed: bool
) -> VerifiedAssertion:
    """Check a WebAuthn assertion by one of the user's passkeys over ``challenge`` (origin, RP
    id, user verification, signature, sign count) and move the passkey's counter on. Raises
    403 ``signature_invalid`` when it does not verify."""
    rp_id, origins = _relying_party()
    if not isinstance(credential, dict) or not isinstance(credential.get("response"), dict):
        raise InvalidInput(FactorError.SIGNATURE_INVALID, "The assertion must be a PublicKeyCredential as JSON.")
    raw_id = str(credential.get("rawId") or credential.get("id") or "")
    passkey = Passkey.objects.select_for_update().filter(user=user, credential_id=raw_id).first()
    if passkey is None or passkey.status == PasskeyStatus.REVOKED:
        raise PermissionDenied(FactorError.PASSKEY_UNKNOWN, "This passkey is not one of yours.")
    if require_confirmed and passkey.status != PasskeyStatus.ACTIVE:
        raise PermissionDenied(
            FactorError.PASSKEY_NOT_CONFIRMED,
            "Your passkey waits for a second administrator's confirmation before it can sign approvals.",
        )
    try:
        verified = verify_authentication_response(
            credential=credential,
            expected_challenge=challenge,
            expected_rp_id=rp_id,
            expected_origin=origins,
            credential_public_key=base64url_to_bytes(passkey.public_key_cose),
            credential_current_sign_count=passkey.sign_count,
            require_user_verification=True,
        )
    except (WebAuthnException, ValueError, KeyError, TypeError) as error:
        raise PermissionDenied(
            FactorError.SIGNATURE_INVALID, f"The passkey signature did not verify: {error}"
        ) from None
    passkey.sign_count = verified.new_sign_count
    passkey.last_used_at = timezone.now()
    passkey.save(update_fields=["sign_count", "last_used_at"])
    response = credential["response"]
    return VerifiedAssertion(
        passkey=passkey,
        credential_id=passkey.credential_id,
        authenticator_data=str(response["authenticatorData"]),
        client_data_json=str(response["clientDataJSON"]),
        signature=str(response["signature"]),
        user_handle=str(response.get("userHandle") or ""),
    )


# --- Verifying a second factor for the session --------------------------------------------


@transaction.atomic
def second_factor_verify_passkey(*, request: HttpRequest, user: ActingUser, credential: dict[str, Any]) -> Passkey:
    _require_person(user)
    challenge = _challenge_from_session(request, AUTHENTICATION_KEY)
    verified = assertion_verify(user=user, credential=credential, challenge=challenge, require_confirmed=False)
    second_factor_mark(request, method="passkey")
    audit.record(
        actor=user,
        action=FactorAction.SECOND_FACTOR_VERIFIED,
        target=verified.passkey,
        data={"method": "passkey", "credential_id": verified.credential_id},
    )
    return verified.passkey


@transaction.atomic
def totp_enroll(*, acting_user: ActingUser) -> TOTPDevice:
    """A new TOTP secret for the user, unconfirmed until a code from it is entered
    (``totp_confirm``); earlier unconfirmed ones are dropped."""
    _require_person(acting_user)
    TOTPDevice.objects.filter(user=acting_user, confirmed=False).delete()
    device: TOTPDevice = TOTPDevice.objects.create(user=acting_user, name="TOTP", confirmed=False)
    return device


@transaction.atomic
def totp_confirm(*, request: HttpRequest, acting_user: ActingUser, token: str) -> TOTPDevice:
    _require_person(acting_user)
    device = TOTPDevice.objects.select_for_update().filter(user=acting_user, confirmed=False).last()
    if device is None:
        raise Conflict(FactorError.TOTP_NOT_ENROLLED, "Start a TOTP enrolment first.")
    if not device.verify_token(token):
        raise PermissionDenied(FactorError.TOTP_INVALID, "The code is not right (or was used already).")
    device.confirmed = True
    device.save()
    second_factor_mark(request, method="totp")
    audit.record(
        actor=acting_user,
        action=FactorAction.TOTP_ENROLLED,
        target=("otp_totp.totpdevice", str(device.pk)),
        data={"user": acting_user.get_username()},
    )
    return device


@transaction.atomic
def second_factor_verify_totp(*, request: HttpRequest, user: ActingUser, token: str) -> None:
    """A code from one of the user's confirmed TOTP devices (django-otp refuses a code used
    before and slows repeated failures)."""
    _require_person(user)
    devices = list(TOTPDevice.objects.select_for_update().filter(user=user, confirmed=True))
    if not devices:
        raise Conflict(FactorError.TOTP_NOT_ENROLLED, "You have no TOTP device; enrol one first.")
    for device in devices:
        if device.verify_token(token):
            second_factor_mark(request, method="totp")
            audit.record(
                actor=user,
                action=FactorAction.SECOND_FACTOR_VERIFIED,
                target=("otp_totp.totpdevice", str(device.pk)),
                data={"method": "totp"},
            )
            return
    raise PermissionDenied(FactorError.TOTP_INVALID, "The code is not right (or was used already).")


@transaction.atomic
def second_factor_failure_record(*, user: ActingUser, method: str, code: str, message: str) -> None:
    """A refused verification, in a transaction of its own after the refused one rolled back."""
    audit.record(
        actor=user,
        action=FactorAction.SECOND_FACTOR_FAILED,
        target=("releasegate.user", user.get_username()),
        data={"method": method, "code": code, "message": message},
    )
