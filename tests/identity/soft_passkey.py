"""A passkey in software, for tests that need signed approvals without a browser: it answers
WebAuthn's registration (attestation "none") and authentication ceremonies the way a platform
authenticator does, with an ECDSA P-256 key (COSE ES256). The browser's own authenticator is
exercised in test_passkey_signatures.py."""

import base64
import hashlib
import json
import os
from typing import Any

import cbor2
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from rest_framework.test import APIClient

ORIGIN = "https://releasegate.test"
RP_ID = "releasegate.test"
USER_PRESENT_AND_VERIFIED = 0x01 | 0x04
ATTESTED_CREDENTIAL = 0x40


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class SoftPasskey:
    def __init__(self, *, origin: str = ORIGIN, rp_id: str = RP_ID) -> None:
        self.origin, self.rp_id = origin, rp_id
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.credential_id = os.urandom(16)
        self.count = 0

    def _client_data(self, kind: str, challenge: str) -> bytes:
        return json.dumps({"type": kind, "challenge": challenge, "origin": self.origin, "crossOrigin": False}).encode()

    def create(self, options: dict[str, Any]) -> dict[str, Any]:
        numbers = self.key.public_key().public_numbers()
        cose = cbor2.dumps({1: 2, 3: -7, -1: 1, -2: numbers.x.to_bytes(32, "big"), -3: numbers.y.to_bytes(32, "big")})
        auth_data = (
            hashlib.sha256(self.rp_id.encode()).digest()
            + bytes([USER_PRESENT_AND_VERIFIED | ATTESTED_CREDENTIAL])
            + self.count.to_bytes(4, "big")
            + bytes(16)
            + len(self.credential_id).to_bytes(2, "big")
            + self.credential_id
            + cose
        )
        attestation = cbor2.dumps({"fmt": "none", "attStmt": {}, "authData": auth_data})
        client_data = self._client_data("webauthn.create", options["publicKey"]["challenge"])
        return {
            "id": b64(self.credential_id),
            "rawId": b64(self.credential_id),
            "type": "public-key",
            "response": {"clientDataJSON": b64(client_data), "attestationObject": b64(attestation)},
        }

    def get(self, options: dict[str, Any]) -> dict[str, Any]:
        self.count += 1
        auth_data = (
            hashlib.sha256(self.rp_id.encode()).digest()
            + bytes([USER_PRESENT_AND_VERIFIED])
            + self.count.to_bytes(4, "big")
        )
        client_data = self._client_data("webauthn.get", options["publicKey"]["challenge"])
        signature = self.key.sign(auth_data + hashlib.sha256(client_data).digest(), ec.ECDSA(hashes.SHA256()))
        return {
            "id": b64(self.credential_id),
            "rawId": b64(self.credential_id),
            "type": "public-key",
            "response": {
                "clientDataJSON": b64(client_data),
                "authenticatorData": b64(auth_data),
                "signature": b64(signature),
                "userHandle": None,
            },
        }


def passkey_registered(client: APIClient, confirming_admin: APIClient) -> SoftPasskey:
    """A passkey registered by ``client``'s user and confirmed by a second administrator."""
    passkey = SoftPasskey()
    options = client.post("/api/v1/identity/passkeys/options").json()
    registered = client.post(
        "/api/v1/identity/passkeys", {"name": "soft", "credential": passkey.create(options)}, format="json"
    )
    assert registered.status_code == 201, registered.content
    confirmed = confirming_admin.post(f"/api/v1/identity/passkeys/{registered.json()['id']}/confirm")
    assert confirmed.status_code == 200, confirmed.content
    return passkey


def decide_signed(client: APIClient, passkey: SoftPasskey, changelog_id: Any, body: dict[str, Any]) -> Any:
    """Ask for the decision's challenge, sign it, decide with the assertion."""
    challenge = {key: body[key] for key in ("decision", "reason", "revision", "content_hash")}
    options = client.post(f"/api/v1/changelogs/{changelog_id}/approvals/challenge", challenge, format="json")
    assert options.status_code == 200, options.content
    return client.post(
        f"/api/v1/changelogs/{changelog_id}/approvals/",
        {**body, "assertion": passkey.get(options.json())},
        format="json",
    )
