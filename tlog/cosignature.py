"""Witness cosignatures (C2SP tlog-cosignature, Ed25519): making them and checking them.

A cosignature line is ``— <witness name> base64(key id || timestamp || signature)``, where
the signature covers ``cosignature/v1``, ``time <timestamp>`` and the checkpoint's body. The
witness (``tlog.witness``) makes them; the service (``audit.witnessing``) and the standalone
verifier (``tlog.verifier``) check them against the witness's verifier key.
"""

from __future__ import annotations

import base64
import hashlib
import struct
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

ALG_COSIGNATURE_V1 = 0x04
_PRIVATE_PREFIX = "PRIVATE+KEY+"


def cosigner_key_id(name: str, public_key: bytes) -> bytes:
    """SHA-256(name || "\\n" || 0x04 || key)[:4] (tlog-cosignature)."""
    return hashlib.sha256(name.encode() + b"\n" + bytes([ALG_COSIGNATURE_V1]) + public_key).digest()[:4]


def cosigned_message(body: str, timestamp: int) -> bytes:
    """What an Ed25519 cosignature signs: two header lines, then the checkpoint body."""
    return f"cosignature/v1\ntime {timestamp}\n{body}".encode()


class Cosigner:
    def __init__(self, name: str, private_key: Ed25519PrivateKey) -> None:
        self.name = name
        self._key = private_key
        self.public_key = private_key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        self.key_id = cosigner_key_id(name, self.public_key)

    def verifier_key(self) -> str:
        """``name+keyid+base64(0x04 || key)``: what the log is configured with."""
        material = base64.b64encode(bytes([ALG_COSIGNATURE_V1]) + self.public_key).decode()
        return f"{self.name}+{self.key_id.hex()}+{material}"

    def cosign(self, body: str, timestamp: int) -> str:
        signature = self._key.sign(cosigned_message(body, timestamp))
        encoded = base64.b64encode(self.key_id + struct.pack(">Q", timestamp) + signature).decode()
        return f"\u2014 {self.name} {encoded}\n"

    def to_string(self) -> str:
        seed = self._key.private_bytes(
            serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
        )
        material = base64.b64encode(bytes([ALG_COSIGNATURE_V1]) + seed).decode()
        return f"{_PRIVATE_PREFIX}{self.name}+{self.key_id.hex()}+{material}"

    @classmethod
    def from_string(cls, text: str) -> Cosigner:
        text = text.strip()
        if not text.startswith(_PRIVATE_PREFIX):
            raise ValueError("not a witness private key")
        name, key_id_hex, material = text[len(_PRIVATE_PREFIX) :].split("+", 2)
        raw = base64.b64decode(material, validate=True)
        if len(raw) != 33 or raw[0] != ALG_COSIGNATURE_V1:
            raise ValueError("not an Ed25519 cosignature key")
        cosigner = cls(name, Ed25519PrivateKey.from_private_bytes(raw[1:]))
        if cosigner.key_id.hex() != key_id_hex:
            raise ValueError("key ID does not match the key")
        return cosigner


@dataclass(frozen=True)
class CosignatureVerifier:
    """A witness's verifier key, ``name+keyid+base64(0x04 || key)``."""

    name: str
    key_id: bytes
    public_key: bytes

    @classmethod
    def parse(cls, vkey: str) -> CosignatureVerifier:
        try:
            name, key_id_hex, material = vkey.strip().split("+", 2)
            raw = base64.b64decode(material, validate=True)
        except ValueError as error:
            raise ValueError(f"not a witness verifier key: {error}") from error
        if len(raw) != 33 or raw[0] != ALG_COSIGNATURE_V1:
            raise ValueError(f"witness key {name} is not an Ed25519 cosignature key")
        key_id = cosigner_key_id(name, raw[1:])
        if key_id.hex() != key_id_hex:
            raise ValueError(f"witness key {name}: key ID does not match")
        return cls(name=name, key_id=key_id, public_key=raw[1:])

    def cosignature_time(self, line: str, body: str) -> int | None:
        """The cosignature's UNIX time if ``line`` is this witness's valid cosignature of
        ``body`` (a checkpoint's text up to and including its blank line); otherwise None."""
        prefix = f"\u2014 {self.name} "
        if not line.startswith(prefix):
            return None
        try:
            raw = base64.b64decode(line[len(prefix) :].strip(), validate=True)
        except ValueError:
            return None
        if len(raw) != 4 + 8 + 64 or raw[:4] != self.key_id:
            return None
        (timestamp,) = struct.unpack(">Q", raw[4:12])
        try:
            Ed25519PublicKey.from_public_bytes(self.public_key).verify(raw[12:], cosigned_message(body, timestamp))
        except InvalidSignature:
            return None
        return int(timestamp)
