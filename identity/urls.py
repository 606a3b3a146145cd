from django.urls import path

from identity import apis

urlpatterns = [
    path("identity/factors", apis.FactorsApi.as_view(), name="identity-factors"),
    path("identity/passkeys/options", apis.PasskeyOptionsApi.as_view(), name="identity-passkeys-options"),
    path("identity/passkeys", apis.PasskeyRegisterApi.as_view(), name="identity-passkeys"),
    path("identity/passkeys/<int:passkey_id>/confirm", apis.PasskeyConfirmApi.as_view(), name="identity-confirm"),
    path("identity/totp", apis.TotpEnrolApi.as_view(), name="identity-totp"),
    path("identity/totp/confirm", apis.TotpConfirmApi.as_view(), name="identity-totp-confirm"),
    path("identity/verify/options", apis.VerifyOptionsApi.as_view(), name="identity-verify-options"),
    path("identity/verify", apis.VerifyApi.as_view(), name="identity-verify"),
]
