"""HTTP API for a person's second factors: enrol TOTP, register a passkey, verify a factor for
this session, and (administrators) confirm someone else's passkey. Session only: a pipeline
token has no second factor."""

import json
from typing import Any

from django.db import transaction
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core.actors import actor_of
from core.api import StrictInput, checked, error_responses
from core.errors import ApplicationError, CommonError, NotFound
from identity import services
from identity.models import Passkey, PasskeyStatus
from identity.sessions import second_factor_of, signing_session_require


class PasskeyOutput(serializers.Serializer[Any]):
    id = serializers.IntegerField()
    user = serializers.CharField(source="user.username")
    name = serializers.CharField()
    credential_id = serializers.CharField()
    public_key_pem = serializers.CharField()
    status = serializers.ChoiceField(choices=PasskeyStatus.choices)
    registered_at = serializers.DateTimeField()
    confirmed_by = serializers.CharField(source="confirmed_by.username", allow_null=True, default=None)
    confirmed_at = serializers.DateTimeField(allow_null=True)


class FactorsOutput(serializers.Serializer[Any]):
    passkeys = PasskeyOutput(many=True)
    totp = serializers.BooleanField(help_text="A confirmed TOTP device is enrolled.")
    session_second_factor = serializers.CharField(
        allow_null=True, help_text="How this session proved a second factor (passkey, totp, idp:…), or null."
    )


class OptionsOutput(serializers.Serializer[Any]):
    publicKey = serializers.DictField(  # noqa: N815 - WebAuthn's own name
        help_text="Pass to navigator.credentials.create()/get() (base64url fields decoded)."
    )


class CredentialInput(StrictInput):
    credential = serializers.DictField(help_text="The PublicKeyCredential, as JSON (base64url fields).")
    name = serializers.CharField(max_length=100, required=False, default="passkey")


class TotpEnrolOutput(serializers.Serializer[Any]):
    config_url = serializers.CharField(help_text="otpauth:// URL for the authenticator app (shown once).")


class TokenInput(StrictInput):
    token = serializers.RegexField(r"^[0-9]{6,8}$")


class VerifyInput(StrictInput):
    method = serializers.ChoiceField(choices=["passkey", "totp"])
    token = serializers.RegexField(r"^[0-9]{6,8}$", required=False)
    credential = serializers.DictField(required=False)


def _factors(request: Request) -> dict[str, Any]:
    from django_otp.plugins.otp_totp.models import TOTPDevice

    found = second_factor_of(request._request)
    user = actor_of(request)
    return {
        "passkeys": PasskeyOutput(Passkey.objects.filter(user=user).select_related("user"), many=True).data,
        "totp": TOTPDevice.objects.filter(user=user, confirmed=True).exists(),
        "session_second_factor": found["method"] if found else None,
    }


class FactorsApi(APIView):
    @extend_schema(
        operation_id="identity_factors",
        responses={200: FactorsOutput, **error_responses(401)},
        description="Your second factors, and whether this session has proved one.",
    )
    def get(self, request: Request) -> Response:
        return Response(_factors(request))


class PasskeyOptionsApi(APIView):
    @extend_schema(
        operation_id="identity_passkeys_options",
        request=None,
        responses={200: OptionsOutput, **error_responses(401, 403, 409)},
        description="Registration options for a new passkey (the challenge is kept in your session).",
    )
    def post(self, request: Request) -> Response:
        options = services.passkey_registration_options(request=request._request, user=actor_of(request))
        return Response({"publicKey": json.loads(options)})


class PasskeyRegisterApi(APIView):
    @extend_schema(
        operation_id="identity_passkeys_register",
        request=CredentialInput,
        responses={201: PasskeyOutput, **error_responses(400, 401, 403, 409)},
        description=(
            "Register the passkey created with the options: audited, and pending until a second administrator "
            "confirms it; only a confirmed passkey signs approvals."
        ),
    )
    def post(self, request: Request) -> Response:
        values = checked(CredentialInput, request.data)
        passkey = services.passkey_register(
            request=request._request,
            acting_user=actor_of(request),
            name=values["name"],
            credential=values["credential"],
        )
        return Response(PasskeyOutput(passkey).data, status=status.HTTP_201_CREATED)


class PasskeyConfirmApi(APIView):
    @extend_schema(
        operation_id="identity_passkeys_confirm",
        request=None,
        responses={200: PasskeyOutput, **error_responses(401, 403, 404, 409)},
        description="A second administrator confirms that a pending passkey is its holder's (audited).",
    )
    def post(self, request: Request, passkey_id: int) -> Response:
        passkey = Passkey.objects.filter(pk=passkey_id).first()
        if passkey is None:
            raise NotFound(CommonError.NOT_FOUND, "No such passkey.")
        signing_session_require(request._request)
        return Response(PasskeyOutput(services.passkey_confirm(acting_user=actor_of(request), passkey=passkey)).data)


class TotpEnrolApi(APIView):
    @extend_schema(
        operation_id="identity_totp_enrol",
        request=None,
        responses={201: TotpEnrolOutput, **error_responses(401, 403)},
        description="Start a TOTP enrolment; confirm it with a code from the app.",
    )
    def post(self, request: Request) -> Response:
        device = services.totp_enroll(acting_user=actor_of(request))
        return Response({"config_url": device.config_url}, status=status.HTTP_201_CREATED)


class TotpConfirmApi(APIView):
    @extend_schema(
        operation_id="identity_totp_confirm",
        request=TokenInput,
        responses={200: FactorsOutput, **error_responses(400, 401, 403, 409)},
        description="Confirm the TOTP enrolment with a code; this session has then proved a second factor.",
    )
    def post(self, request: Request) -> Response:
        token = checked(TokenInput, request.data)["token"]
        services.totp_confirm(request=request._request, acting_user=actor_of(request), token=token)
        return Response(_factors(request))


class VerifyOptionsApi(APIView):
    @extend_schema(
        operation_id="identity_verify_options",
        request=None,
        responses={200: OptionsOutput, **error_responses(401, 403, 409)},
        description="Options for verifying a passkey as this session's second factor.",
    )
    def post(self, request: Request) -> Response:
        options = services.passkey_authentication_options(request=request._request, user=actor_of(request))
        return Response({"publicKey": json.loads(options)})


class VerifyApi(APIView):
    atomic_request = False

    @classmethod
    def as_view(cls, **initkwargs: Any) -> Any:
        # Outside the request's transaction: a failed verification leaves its audit event.
        return transaction.non_atomic_requests(super().as_view(**initkwargs))

    @extend_schema(
        operation_id="identity_verify",
        request=VerifyInput,
        responses={200: FactorsOutput, **error_responses(400, 401, 403, 409)},
        description=(
            "Prove a second factor for this session (a TOTP code or a passkey assertion): deciding needs one "
            "within SIGNING_REAUTH_MINUTES. A failure is audited."
        ),
    )
    def post(self, request: Request) -> Response:
        values = checked(VerifyInput, request.data)
        try:
            if values["method"] == "totp":
                services.second_factor_verify_totp(
                    request=request._request, user=actor_of(request), token=values.get("token", "")
                )
            else:
                services.second_factor_verify_passkey(
                    request=request._request, user=actor_of(request), credential=values.get("credential") or {}
                )
        except ApplicationError as error:
            services.second_factor_failure_record(
                user=actor_of(request), method=values["method"], code=error.code, message=error.message
            )
            raise
        return Response(_factors(request))
