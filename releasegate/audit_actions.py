from enum import StrEnum


class IdentityAction(StrEnum):
    """Audit action tags for identities, shaped ``subject:action``."""

    SERVICE_ACCOUNT_CREATED = "service_account:created"
    SERVICE_ACCOUNT_SCOPE_GRANTED = "service_account:scope_granted"
    SERVICE_ACCOUNT_SCOPE_REVOKED = "service_account:scope_revoked"
    API_TOKEN_ISSUED = "api_token:issued"  # noqa: S105 - an audit tag, not a secret
    API_TOKEN_REVOKED = "api_token:revoked"  # noqa: S105 - an audit tag, not a secret
    USER_SAVED = "user:saved"
    GROUP_SAVED = "group:saved"
    LOGIN_SUCCEEDED = "authentication:logged_in"
    LOGIN_FAILED = "authentication:failed"
    STEP_UP_FAILED = "authentication:step_up_failed"
    LOCKED_OUT = "authentication:locked_out"
    SSO_LOGIN = "authentication:sso_login"
    SSO_LOGOUT = "authentication:sso_logout"
    BREAK_GLASS_LOGIN = "authentication:break_glass_login"
    SSO_USER_CREATED = "user:sso_created"
    SSO_USER_UPDATED = "user:sso_updated"
    SSO_GROUPS_CHANGED = "user:sso_groups_changed"
    SSO_GROUP_REFUSED = "user:sso_group_refused"


class GateAction(StrEnum):
    GATE_ALLOWED = "gate:allowed"
    GATE_DENIED = "gate:denied"
    DEPLOYMENT_REPORTED = "deployment:reported"
    DEPLOYMENT_UNAUTHORISED = "deployment:unauthorised"
    DEPLOYMENT_SMOKE_PASSED = "deployment:smoke_passed"
    DEPLOYMENT_SMOKE_FAILED = "deployment:smoke_failed"
    FREEZE_CREATED = "freeze:created"
    FREEZE_OVERRIDDEN = "freeze:overridden"
    GITHUB_RULE_REQUESTED = "github:protection_rule_requested"
    GITHUB_RULE_ANSWERED = "github:protection_rule_answered"
    GITHUB_RULE_ANSWER_FAILED = "github:protection_rule_answer_failed"
    GITHUB_DELIVERY_REFUSED = "github:delivery_refused"
