from enum import StrEnum


class FactorError(StrEnum):
    MFA_REQUIRED = "mfa_required"
    REAUTHENTICATION_REQUIRED = "reauthentication_required"
    PASSKEYS_NOT_CONFIGURED = "passkeys_not_configured"
    CEREMONY_EXPIRED = "ceremony_expired"
    PASSKEY_INVALID = "passkey_invalid"
    PASSKEY_UNKNOWN = "passkey_unknown"
    PASSKEY_NOT_CONFIRMED = "passkey_not_confirmed"
    PASSKEY_NOT_PENDING = "passkey_not_pending"
    TOTP_INVALID = "totp_invalid"
    TOTP_NOT_ENROLLED = "totp_not_enrolled"
    NOT_AN_ADMINISTRATOR = "not_an_administrator"
    CONFIRM_OWN_FACTOR = "confirm_own_factor"
    SIGNATURE_INVALID = "signature_invalid"
