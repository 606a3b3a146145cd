"""Signed notes (c2sp.org/signed-note) and log checkpoints (c2sp.org/tlog-checkpoint).

The formats are exactly those of golang.org/x/mod/sumdb/note and the transparency-dev
ecosystem, so a Release Gate checkpoint can be checked by any of their tools and witnesses,
and so auditors have a public specification to hold us to:

* key ID = first 4 bytes of SHA-256(name || 0x0A || 0x01 || 32-byte Ed25519 public key);
* verifier key ``<name>+<8 hex key ID>+<base64(0x01 || public key)>``;
* signer key ``PRIVATE+KEY+<name>+<8 hex key ID>+<base64(0x01 || 32-byte seed)>``;
* signed note = text (ending in newline) + blank line + signature lines
  ``— <name> <base64(key ID || Ed25519 signature over the text)>`` (U+2014 em dash);
* checkpoint text = origin line, decimal tree size line, base64 root hash line, then
  optional non-empty extension lines.

Pure: stdlib and ``cryptography`` only, no Django, because the standalone verifier uses it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from tlog.merkle import HASH_SIZE, MAX_TREE_SIZE

__all__ = [
    "ALG_ED25519",
    "MAX_NOTE_SIZE",
    "MAX_SIGNATURES",
    "Checkpoint",
    "NoteError",
    "NoteSigner",
    "NoteVerifier",
    "generate_signer",
    "key_id",
    "open_checkpoint",
    "signer_from_private_bytes",
    "signer_from_string",
    "signer_to_string",
    "verifier_key",
]

ALG_ED25519 = 0x01
"""Signature type byte of Ed25519 in the signed-note registry."""

MAX_NOTE_SIZE = 1 << 20
"""Notes larger than 1 MiB (UTF-8) are refused before any parsing."""

MAX_SIGNATURES = 100
"""Same cap as x/mod/sumdb/note; the spec asks verifiers to accept at least 16."""

_SIG_PREFIX = "\u2014 "  # em dash, space
_PRIVATE_PREFIX = "PRIVATE+KEY+"
_DECIMAL = re.compile(r"(?:0|[1-9][0-9]*)\Z")
_KEY_ID_HEX = re.compile(r"[0-9a-fA-F]{8}\Z")
# Control characters other than newline, and any at all: one regular expression search
# instead of a Python test per character (verification opens every checkpoint of the log).
_CONTROL_BUT_NEWLINE = re.compile("[\x00-\x09\x0b-\x1f]")
_CONTROL = re.compile("[\x00-\x1f]")


class NoteError(Exception):
    """A note, key or checkpoint is malformed or does not carry a valid signature."""


# --- Keys -------------------------------------------------------------------------------


def _is_valid_name(name: str) -> bool:
    """Key names: non-empty, no Unicode spaces, no '+', no control characters."""
    return bool(name) and "+" not in name and not any(c.isspace() or ord(c) < 0x20 or ord(c) == 0x7F for c in name)


def key_id(name: str, public_key: bytes) -> bytes:
    """The 4-byte key ID of an Ed25519 key: SHA-256(name || 0x0A || 0x01 || key)[:4]."""
    if len(public_key) != 32:
        raise ValueError("an Ed25519 public key is 32 bytes")
    digest = hashlib.sha256(name.encode("utf-8") + b"\n" + bytes([ALG_ED25519]) + public_key)
    return digest.digest()[:4]


def verifier_key(name: str, public_key: bytes) -> str:
    """The verifier key string ``<name>+<hex key ID>+<base64(0x01 || key)>``."""
    if not _is_valid_name(name):
        raise ValueError(f"invalid key name {name!r}")
    material = base64.b64encode(bytes([ALG_ED25519]) + public_key).decode("ascii")
    return f"{name}+{key_id(name, public_key).hex()}+{material}"


def _b64decode_strict(text: str) -> bytes:
    """Standard base64 with padding, and only the canonical encoding of its bytes."""
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError) as exc:
        raise NoteError("invalid base64") from exc
    if base64.b64encode(raw).decode("ascii") != text:
        raise NoteError("non-canonical base64")
    return raw


def _split_key(text: str, what: str) -> tuple[str, bytes, bytes]:
    """Split ``<name>+<hex id>+<base64 0x01||32 bytes>``; the base64 part may contain '+'."""
    parts = text.split("+", 2)
    if len(parts) != 3:
        raise NoteError(f"malformed {what}")
    name, id_hex, material = parts
    if not _is_valid_name(name) or not _KEY_ID_HEX.match(id_hex):
        raise NoteError(f"malformed {what}")
    try:
        raw = _b64decode_strict(material)
    except NoteError as exc:
        raise NoteError(f"malformed {what}") from exc
    if not raw or raw[0] != ALG_ED25519:
        raise NoteError(f"{what} is not an Ed25519 key")
    if len(raw) != 33:
        raise NoteError(f"malformed {what}")
    return name, bytes.fromhex(id_hex), raw[1:]


class NoteSigner:
    """Signs note texts with one named Ed25519 key (the log's checkpoint key)."""

    def __init__(self, name: str, private_key: Ed25519PrivateKey) -> None:
        if not _is_valid_name(name):
            raise ValueError(f"invalid key name {name!r}")
        self.name = name
        self._private_key = private_key
        self.public_key = private_key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        self.key_id = key_id(name, self.public_key)

    def __repr__(self) -> str:  # never show key material
        return f"NoteSigner({self.name!r}, key_id={self.key_id.hex()})"

    def signature_line(self, body: str) -> str:
        """One ``— <name> <base64>`` line (with its newline) signing ``body``."""
        text = body.encode("utf-8")
        _check_text(body, text)
        signature = self._private_key.sign(text)
        encoded = base64.b64encode(self.key_id + signature).decode("ascii")
        return f"{_SIG_PREFIX}{self.name} {encoded}\n"

    def sign(self, body: str) -> str:
        """The complete signed note: ``body`` + blank line + this key's signature line."""
        return body + "\n" + self.signature_line(body)

    def verifier_key(self) -> str:
        """The public verifier key string to publish to auditors."""
        return verifier_key(self.name, self.public_key)

    def verifier(self) -> NoteVerifier:
        return NoteVerifier(self.name, self.public_key)

    def private_seed(self) -> bytes:
        """The 32-byte Ed25519 seed; keep it secret."""
        return self._private_key.private_bytes(
            serialization.Encoding.Raw,
            serialization.PrivateFormat.Raw,
            serialization.NoEncryption(),
        )


def generate_signer(name: str) -> NoteSigner:
    """A fresh random Ed25519 key under ``name``."""
    return NoteSigner(name, Ed25519PrivateKey.generate())


def signer_from_private_bytes(name: str, raw32: bytes) -> NoteSigner:
    """A signer from a 32-byte Ed25519 seed (RFC 8032 private key)."""
    if len(raw32) != 32:
        raise ValueError("an Ed25519 private key seed is 32 bytes")
    return NoteSigner(name, Ed25519PrivateKey.from_private_bytes(bytes(raw32)))


def signer_to_string(signer: NoteSigner) -> str:
    """``PRIVATE+KEY+<name>+<hex key ID>+<base64(0x01 || seed)>`` as x/mod/sumdb/note."""
    material = base64.b64encode(bytes([ALG_ED25519]) + signer.private_seed()).decode("ascii")
    return f"{_PRIVATE_PREFIX}{signer.name}+{signer.key_id.hex()}+{material}"


def signer_from_string(skey: str) -> NoteSigner:
    """Inverse of ``signer_to_string``; the key ID must match the derived public key."""
    skey = skey.strip()
    if not skey.startswith(_PRIVATE_PREFIX):
        raise NoteError("malformed signer key")
    name, expected_id, seed = _split_key(skey[len(_PRIVATE_PREFIX) :], "signer key")
    signer = signer_from_private_bytes(name, seed)
    if signer.key_id != expected_id:
        raise NoteError("signer key ID does not match its key")
    return signer


# --- Verification -----------------------------------------------------------------------


class NoteVerifier:
    """Opens notes signed by one trusted Ed25519 key."""

    def __init__(self, name: str, public_key: bytes) -> None:
        if not _is_valid_name(name):
            raise ValueError(f"invalid key name {name!r}")
        if len(public_key) != 32:
            raise ValueError("an Ed25519 public key is 32 bytes")
        self.name = name
        self.public_key = bytes(public_key)
        self.key_id = key_id(name, self.public_key)
        try:
            self._key = Ed25519PublicKey.from_public_bytes(self.public_key)
        except ValueError as exc:
            raise ValueError("invalid Ed25519 public key") from exc

    def __repr__(self) -> str:
        return f"NoteVerifier({self.name!r}, key_id={self.key_id.hex()})"

    @classmethod
    def from_string(cls, vkey: str) -> NoteVerifier:
        """Parse ``<name>+<hex key ID>+<base64(0x01 || key)>``; the ID must match."""
        name, expected_id, public_key = _split_key(vkey.strip(), "verifier key")
        try:
            verifier = cls(name, public_key)
        except ValueError as exc:
            raise NoteError(f"malformed verifier key: {exc}") from exc
        if verifier.key_id != expected_id:
            raise NoteError("verifier key ID does not match its key")
        return verifier

    def to_string(self) -> str:
        return verifier_key(self.name, self.public_key)

    def open(self, signed_note: str | bytes) -> str:
        """Return the note text if this key validly signed it; raise NoteError otherwise.

        Signatures by other keys (different name or key ID) are ignored, as the spec
        requires. A signature that claims to be by this key but does not verify rejects the
        whole note, as does any malformation, more than 100 signatures, or more than 1 MiB.
        """
        if isinstance(signed_note, bytes | bytearray | memoryview):
            raw = bytes(signed_note)
            if len(raw) > MAX_NOTE_SIZE:
                raise NoteError("note is larger than 1 MiB")
            try:
                message = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise NoteError("note is not valid UTF-8") from exc
        else:
            message = signed_note
            if len(message) > MAX_NOTE_SIZE:  # cheap bound before encoding
                raise NoteError("note is larger than 1 MiB")
            try:
                raw = message.encode("utf-8")
            except UnicodeEncodeError as exc:
                raise NoteError("note is not valid UTF-8") from exc
            if len(raw) > MAX_NOTE_SIZE:
                raise NoteError("note is larger than 1 MiB")
        if _CONTROL_BUT_NEWLINE.search(message):
            raise NoteError("note contains control characters")

        split = message.rfind("\n\n")
        if split < 0:
            raise NoteError("note has no signature block")
        text, block = message[: split + 1], message[split + 2 :]
        if not block or not block.endswith("\n"):
            raise NoteError("signature block must end in a newline")
        lines = block[:-1].split("\n")
        if len(lines) > MAX_SIGNATURES:
            raise NoteError("note has too many signatures")

        verified = False
        text_bytes = text.encode("utf-8")
        for line in lines:
            if not line.startswith(_SIG_PREFIX):
                raise NoteError("malformed signature line")
            name, sep, encoded = line[len(_SIG_PREFIX) :].partition(" ")
            if not sep or not encoded or not _is_valid_name(name):
                raise NoteError("malformed signature line")
            try:
                sig = _b64decode_strict(encoded)
            except NoteError as exc:
                raise NoteError("malformed signature line") from exc
            if len(sig) < 5:
                raise NoteError("malformed signature line")
            if name != self.name or sig[:4] != self.key_id:
                continue  # another key: ignore
            try:
                if len(sig) != 4 + 64:
                    raise InvalidSignature
                self._key.verify(sig[4:], text_bytes)
            except InvalidSignature as exc:
                raise NoteError(f"invalid signature for key {self.name}+{self.key_id.hex()}") from exc
            verified = True
        if not verified:
            raise NoteError(f"note is not signed by {self.name}+{self.key_id.hex()}")
        return text


def _check_text(body: str, encoded: bytes) -> None:
    """A note text must be non-empty, end in newline, and have no other control chars."""
    if not body.endswith("\n"):
        raise ValueError("note text must end in a newline")
    if len(encoded) > MAX_NOTE_SIZE:
        raise ValueError("note text is larger than 1 MiB")
    if _CONTROL_BUT_NEWLINE.search(body):
        raise ValueError("note text contains control characters")


# --- Checkpoints ------------------------------------------------------------------------


@dataclass(frozen=True)
class Checkpoint:
    """A log tree head: origin, size, root hash, and optional opaque extension lines."""

    origin: str
    size: int
    root_hash: bytes
    extensions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.origin or not _is_single_line(self.origin):
            raise ValueError("checkpoint origin must be a non-empty single line")
        if not isinstance(self.size, int) or isinstance(self.size, bool):
            raise TypeError("checkpoint size must be an integer")
        if not 0 <= self.size <= MAX_TREE_SIZE:
            raise ValueError("checkpoint size is out of range")
        if not isinstance(self.root_hash, bytes) or len(self.root_hash) != HASH_SIZE:
            raise ValueError(f"checkpoint root hash must be {HASH_SIZE} bytes")
        if not isinstance(self.extensions, tuple):
            raise TypeError("checkpoint extensions must be a tuple of lines")
        for ext in self.extensions:
            if not isinstance(ext, str) or not ext or not _is_single_line(ext):
                raise ValueError("checkpoint extension lines must be non-empty single lines")

    def body(self) -> str:
        """The note text to sign, ending in newline."""
        lines = [self.origin, str(self.size), base64.b64encode(self.root_hash).decode("ascii")]
        return "\n".join([*lines, *self.extensions]) + "\n"

    @classmethod
    def parse(cls, body: str) -> Checkpoint:
        """Parse a checkpoint note text strictly; raise NoteError if it is malformed."""
        if not body.endswith("\n"):
            raise NoteError("checkpoint must end in a newline")
        lines = body[:-1].split("\n")
        if len(lines) < 3:
            raise NoteError("checkpoint needs origin, size and root hash lines")
        origin, size_text, root_text, *extensions = lines
        if not origin:
            raise NoteError("checkpoint origin is empty")
        if not _DECIMAL.match(size_text):
            raise NoteError("checkpoint size is not a canonical decimal number")
        size = int(size_text)
        if size > MAX_TREE_SIZE:
            raise NoteError("checkpoint size is out of range")
        try:
            root_hash = _b64decode_strict(root_text)
        except NoteError as exc:
            raise NoteError("checkpoint root hash is not valid base64") from exc
        if len(root_hash) != HASH_SIZE:
            raise NoteError(f"checkpoint root hash is not {HASH_SIZE} bytes")
        try:
            return cls(origin, size, root_hash, tuple(extensions))
        except (TypeError, ValueError) as exc:
            raise NoteError(str(exc)) from exc


def open_checkpoint(verifier: NoteVerifier, signed_note: str | bytes) -> Checkpoint:
    """Verify a signed checkpoint with ``verifier`` and parse its text."""
    return Checkpoint.parse(verifier.open(signed_note))


def _is_single_line(text: str) -> bool:
    return not _CONTROL.search(text)
