"""What the browser tests check on their own, without the project's code: the derived
challenge written out from docs/identity.md, a stored assertion's signature checked with a few
lines of `cryptography`, and Chromium's virtual authenticator switched on."""

import base64
import hashlib
import json
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from approvals.models import ApprovalSignature


def b64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def expected_challenge(changelog_id: str, revision: int, content_hash: str, decision: str, reason: str) -> bytes:
    """docs/identity.md's derivation, written out here on its own."""
    statement = {
        "changelog": changelog_id,
        "content_hash": content_hash,
        "context": "releasegate-approval-v1",
        "decision": decision,
        "reason_sha256": hashlib.sha256(reason.encode()).hexdigest(),
        "revision": revision,
    }
    return hashlib.sha256(json.dumps(statement, separators=(",", ":"), sort_keys=True).encode()).digest()


def verified_by_hand(stored: ApprovalSignature, origin: str) -> dict[str, Any]:
    """The stored assertion's signature, checked with cryptography alone; its client data."""
    authenticator_data = b64(stored.authenticator_data)
    client_data_json = b64(stored.client_data_json)
    public_key = load_pem_public_key(stored.public_key_pem.encode())
    assert isinstance(public_key, ec.EllipticCurvePublicKey)
    public_key.verify(
        b64(stored.signature),
        authenticator_data + hashlib.sha256(client_data_json).digest(),
        ec.ECDSA(hashes.SHA256()),
    )
    assert authenticator_data[:32] == hashlib.sha256(b"localhost").digest()  # the RP id hash
    assert authenticator_data[32] & 0x05 == 0x05  # user present and verified
    client_data = json.loads(client_data_json)
    assert client_data["type"] == "webauthn.get"
    assert client_data["origin"] == origin
    return client_data


def virtual_authenticator(context: Any, page: Any) -> None:
    """A virtual platform authenticator that verifies its user (the DevTools WebAuthn domain)."""
    cdp = context.new_cdp_session(page)
    cdp.send("WebAuthn.enable")
    cdp.send(
        "WebAuthn.addVirtualAuthenticator",
        {
            "options": {
                "protocol": "ctap2",
                "transport": "internal",
                "hasResidentKey": True,
                "hasUserVerification": True,
                "isUserVerified": True,
                "automaticPresenceSimulation": True,
            }
        },
    )
