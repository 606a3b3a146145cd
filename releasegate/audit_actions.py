from enum import StrEnum


class IdentityAction(StrEnum):
    """Audit action tags for identities, shaped ``subject:action``."""

    SERVICE_ACCOUNT_CREATED = "service_account:created"
    SERVICE_ACCOUNT_SCOPE_GRANTED = "service_account:scope_granted"
    SERVICE_ACCOUNT_SCOPE_REVOKED = "service_account:scope_revoked"
    API_TOKEN_ISSUED = "api_token:issued"  # noqa: S105 - an audit tag, not a secret
    API_TOKEN_REVOKED = "api_token:revoked"  # noqa: S105 - an audit tag, not a secret
