from enum import StrEnum


class FactorAction(StrEnum):
    """Audit actions of second factors: enrolment, confirmation by a second administrator,
    verification (a session gains a second factor) and its failures."""

    PASSKEY_REGISTERED = "identity:passkey_registered"
    PASSKEY_CONFIRMED = "identity:passkey_confirmed"
    PASSKEY_REVOKED = "identity:passkey_revoked"
    TOTP_ENROLLED = "identity:totp_enrolled"
    SECOND_FACTOR_VERIFIED = "identity:second_factor_verified"
    SECOND_FACTOR_FAILED = "identity:second_factor_failed"
    IDLE_LOGOUT = "identity:idle_logout"
