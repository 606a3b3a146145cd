"""Identity: second factors (TOTP, WebAuthn passkeys), SSO identities and the signing sessions
approvals ask about; the challenge a signature covers (challenge.py, pure). Imports audit and core."""
