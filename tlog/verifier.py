"""Standalone verifier for Release Gate's tamper-evident audit log.

Install it on its own (``pip install ./verify`` from this repository: the ``releasegate-verify``
distribution, console script ``releasegate-verify``) or run it as ``python -m tlog.verifier``.
It needs only the ``tlog`` package, the standard library and ``cryptography``; it never imports
Django, so an auditor can check exported evidence without the service or its data.

Subcommands (each FILE may be ``-`` for standard input)::

    checkpoint  --key VKEY_FILE CHECKPOINT_FILE
    inclusion   (--key VKEY_FILE --checkpoint CP_FILE | --root HEX --size N) PROOF_JSON
    consistency (--key VKEY_FILE --old CP1 --new CP2
                 | --old-root HEX --old-size N --new-root HEX --new-size N) PROOF_JSON
    vectors     DIR
    approvals   SIGNATURES_JSON
    pack        [--key VKEY_FILE] [--certificate-sha256 HEX] [--witness-key VKEY_FILE ...]
                [--quorum N] [--trusted-checkpoint CP --consistency PROOF_JSON] ZIP_OR_DIR

Exit status: 0 everything verified; 1 something did not verify (the reason is on stderr);
2 the verifier could not run: bad arguments, unreadable files, malformed JSON or hex, or an
unusable key. A checkpoint whose signature block is malformed counts as "did not verify"
(1), since that is what tampering with it looks like.

Inclusion proof JSON (one object, or a list of them to verify all)::

    {"leaf_index": 5, "tree_size": 8, "leaf_hash": "<64 hex>",
     "proof": ["<64 hex>", ...], "event": "<optional canonical event JSON, as a string>"}

When ``event`` is present the verifier also checks that it is in canonical JSON form and that
``leaf_hash`` is SHA-256(0x00 || its UTF-8 bytes), i.e. that the proof is about that event.

Consistency proof JSON::

    {"first_size": 6, "second_size": 8, "proof": ["<64 hex>", ...]}

Sizes in the proof must equal the sizes of the checkpoints (or ``--size`` options) used.

Approval signatures JSON (a list; an evidence pack's ``approval-signatures.json``)::

    [{"approval": "<uuid>", "approver": "name", "changelog": "<uuid>", "revision": 3,
      "content_hash": "<64 hex>", "decision": "approved", "reason": "…", "rp_id": "host",
      "credential_id": "<b64url>", "authenticator_data": "<b64url>",
      "client_data_json": "<b64url>", "signature": "<b64url>", "public_key_pem": "-----BEGIN…"}]

For each, the verifier derives the WebAuthn challenge from what was decided (SHA-256 of the
canonical JSON statement, docs/identity.md), and checks that the client data is a
``webauthn.get`` over exactly that challenge, that the authenticator data is for ``rp_id``
with the user present and verified, and that the signature over authenticator data and the
client data's SHA-256 verifies with the approver's registered public key.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path, PurePosixPath
from typing import Any, NoReturn

from tlog.canonical import canonical_json, sha256_hex
from tlog.cosignature import CosignatureVerifier
from tlog.merkle import (
    HASH_SIZE,
    MAX_TREE_SIZE,
    Frontier,
    ProofError,
    leaf_hash,
    root_of,
    verify_consistency,
    verify_inclusion,
)
from tlog.note import MAX_NOTE_SIZE, Checkpoint, NoteError, NoteVerifier, open_checkpoint

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2

_HEX = re.compile(r"(?:[0-9a-fA-F]{2})*\Z")
_MAX_INPUT = 64 << 20  # proof files: generous, but bounded


class UsageError(Exception):
    """Input the verifier cannot work with (exit 2)."""


class VerificationFailed(Exception):
    """Evidence that does not verify (exit 1)."""


# --- Input helpers ----------------------------------------------------------------------


def _read_raw(path: str, limit: int) -> bytes:
    """Up to ``limit + 1`` bytes of ``path`` (``-`` is stdin), so callers can see overflow."""
    try:
        if path == "-":
            return sys.stdin.buffer.read(limit + 1)
        with Path(path).open("rb") as fh:
            return fh.read(limit + 1)
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from exc


def _read(path: str) -> bytes:
    data = _read_raw(path, _MAX_INPUT)
    if len(data) > _MAX_INPUT:
        raise UsageError(f"{path} is too large")
    return data


def _read_text(path: str) -> str:
    try:
        return _read(path).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UsageError(f"{path} is not UTF-8") from exc


def _load_json(path: str) -> Any:
    try:
        return json.loads(_read_text(path))
    except json.JSONDecodeError as exc:
        raise UsageError(f"{path} is not valid JSON: {exc}") from exc


def _load_key(path: str) -> NoteVerifier:
    lines = [ln.strip() for ln in _read_text(path).splitlines()]
    lines = [ln for ln in lines if ln and not ln.startswith("#")]
    if len(lines) != 1:
        raise UsageError(f"{path} must hold exactly one verifier key line")
    try:
        return NoteVerifier.from_string(lines[0])
    except NoteError as exc:
        raise UsageError(f"{path}: {exc}") from exc


def _load_checkpoint(verifier: NoteVerifier, path: str) -> Checkpoint:
    data = _read_raw(path, MAX_NOTE_SIZE)  # an oversized note is refused by open()
    try:
        return open_checkpoint(verifier, data)
    except NoteError as exc:
        raise VerificationFailed(f"checkpoint {path}: {exc}") from exc


def _hex(value: object, what: str, size: int | None = HASH_SIZE) -> bytes:
    if not isinstance(value, str) or not _HEX.match(value):
        raise UsageError(f"{what} must be a hex string")
    raw = bytes.fromhex(value)
    if size is not None and len(raw) != size:
        raise UsageError(f"{what} must be {size} bytes of hex")
    return raw


def _int(value: object, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= MAX_TREE_SIZE:
        raise UsageError(f"{what} must be a non-negative integer")
    return value


def _size_arg(text: str) -> int:
    if not re.fullmatch(r"0|[1-9][0-9]*", text) or int(text) > MAX_TREE_SIZE:
        raise argparse.ArgumentTypeError(f"not a tree size: {text!r}")
    return int(text)


def _root_arg(text: str) -> bytes:
    if not re.fullmatch(r"[0-9a-fA-F]{64}", text):
        raise argparse.ArgumentTypeError("a root is 64 hex digits")
    return bytes.fromhex(text)


def _fields(obj: Any, what: str, required: Sequence[str], optional: Sequence[str] = ()) -> None:
    if not isinstance(obj, dict):
        raise UsageError(f"{what} must be a JSON object")
    missing = [k for k in required if k not in obj]
    if missing:
        raise UsageError(f"{what} lacks {', '.join(missing)}")
    unknown = sorted(set(obj) - set(required) - set(optional))
    if unknown:
        raise UsageError(f"{what} has unknown fields {', '.join(unknown)}")


def _proof_list(value: object, what: str) -> list[bytes]:
    if not isinstance(value, list):
        raise UsageError(f"{what} must be a list of hex hashes")
    # Hex syntax is input; length is evidence: a short element is refused by verification.
    return [_hex(p, f"{what}[{i}]", size=None) for i, p in enumerate(value)]


# --- Subcommands ------------------------------------------------------------------------


def cmd_checkpoint(args: argparse.Namespace) -> str:
    verifier = _load_key(args.key)
    cp = _load_checkpoint(verifier, args.checkpoint_file)
    signer = f"{verifier.name}+{verifier.key_id.hex()}"
    out = [f"OK: checkpoint signed by {signer}", f"origin: {cp.origin}"]
    out += [f"size: {cp.size}", f"root: {cp.root_hash.hex()}"]
    out += [f"extension: {ext}" for ext in cp.extensions]
    return "\n".join(out)


def _check_event(item: dict[str, Any], lh: bytes, what: str) -> str | None:
    if "event" not in item or item["event"] is None:
        return None
    event = item["event"]
    if not isinstance(event, str):
        raise UsageError(f"{what}.event must be a string of canonical JSON")
    try:
        data = event.encode("utf-8")
        canonical = canonical_json(json.loads(event))
    except ValueError as exc:  # JSONDecodeError, UnicodeEncodeError, NaN
        raise VerificationFailed(f"{what}: event is not canonical JSON") from exc
    if canonical != data:
        raise VerificationFailed(f"{what}: event is not in canonical JSON form")
    if leaf_hash(data) != lh:
        raise VerificationFailed(f"{what}: leaf_hash is not the hash of the event")
    return sha256_hex(data)


def cmd_inclusion(args: argparse.Namespace) -> str:
    if args.key or args.checkpoint:
        if not (args.key and args.checkpoint) or args.root is not None or args.size is not None:
            raise UsageError("use either --key with --checkpoint, or --root with --size")
        cp = _load_checkpoint(_load_key(args.key), args.checkpoint)
        root, size, source = cp.root_hash, cp.size, f"checkpoint {cp.origin}"
    elif args.root is not None and args.size is not None:
        root, size, source = args.root, args.size, "the given root"
    else:
        raise UsageError("use either --key with --checkpoint, or --root with --size")

    data = _load_json(args.proof_json)
    items = data if isinstance(data, list) else [data]
    if not items:
        raise UsageError("no proofs to verify")
    parsed = []
    for n, item in enumerate(items):
        what = f"proof {n}" if isinstance(data, list) else "proof"
        _fields(item, what, ("leaf_index", "tree_size", "leaf_hash", "proof"), ("event",))
        parsed.append(
            (
                what,
                item,
                _int(item["leaf_index"], f"{what}.leaf_index"),
                _int(item["tree_size"], f"{what}.tree_size"),
                _hex(item["leaf_hash"], f"{what}.leaf_hash"),
                _proof_list(item["proof"], f"{what}.proof"),
            )
        )

    failures: list[str] = []
    lines: list[str] = []
    for what, item, index, tree_size, lh, proof in parsed:
        try:
            if tree_size != size:
                raise VerificationFailed(f"{what}: tree_size {tree_size} is not the tree size {size}")
            event_digest = _check_event(item, lh, what)
            try:
                verify_inclusion(lh, index, tree_size, proof, root)
            except ProofError as exc:
                raise VerificationFailed(f"{what}: {exc}") from exc
        except VerificationFailed as exc:
            failures.append(str(exc))
            continue
        extra = f" (event sha256 {event_digest})" if event_digest else ""
        lines.append(f"OK: leaf {index} is in the tree of size {size} of {source}{extra}")
    if failures:
        raise VerificationFailed("\n".join(failures))
    lines.append(f"root: {root.hex()}")
    if len(parsed) > 1:
        lines.append(f"{len(parsed)} inclusion proofs verified")
    return "\n".join(lines)


def cmd_consistency(args: argparse.Namespace) -> str:
    by_key = (args.key, args.old, args.new)
    by_root = (args.old_root, args.old_size, args.new_root, args.new_size)
    if any(v is not None for v in by_key):
        if any(v is None for v in by_key) or any(v is not None for v in by_root):
            raise UsageError("use either --key, --old and --new, or the four --old-*/--new-*")
        verifier = _load_key(args.key)
        return _consistency(_load_checkpoint(verifier, args.old), _load_checkpoint(verifier, args.new), args.proof_json)
    if all(v is not None for v in by_root):
        return _consistency_of_roots((args.old_size, args.old_root, args.new_size, args.new_root), args.proof_json)
    raise UsageError("use either --key, --old and --new, or the four --old-*/--new-*")


def _consistency(old: Checkpoint, new: Checkpoint, proof_json: str) -> str:
    if old.origin != new.origin:
        raise VerificationFailed(f"checkpoints are of different logs: {old.origin!r}, {new.origin!r}")
    return _consistency_of_roots((old.size, old.root_hash, new.size, new.root_hash), proof_json)


def _consistency_of_roots(trees: tuple[int, bytes, int, bytes], proof_json: str) -> str:
    size1, root1, size2, root2 = trees
    data = _load_json(proof_json)
    _fields(data, "proof", ("first_size", "second_size", "proof"))
    first = _int(data["first_size"], "proof.first_size")
    second = _int(data["second_size"], "proof.second_size")
    proof = _proof_list(data["proof"], "proof.proof")
    if (first, second) != (size1, size2):
        raise VerificationFailed(f"proof is for sizes {first} -> {second}, not {size1} -> {size2}")
    try:
        verify_consistency(size1, size2, proof, root1, root2)
    except ProofError as exc:
        raise VerificationFailed(str(exc)) from exc
    return "\n".join(
        [
            f"OK: the tree of size {size2} extends the tree of size {size1}",
            f"old root: {root1.hex()}",
            f"new root: {root2.hex()}",
        ]
    )


def _vector_bytes(case: dict[str, Any], key: str) -> bytes:
    return _hex(case.get(key), f"{case.get('source', '?')}: {key}", size=None)


def run_vectors(directory: Path) -> tuple[list[str], list[str]]:
    """Run every case in a test-vector directory; return (summary lines, failures)."""

    def load(name: str) -> Any:
        return _load_json(str(directory / name))

    summary: list[str] = []
    failures: list[str] = []

    roots = load("roots.json")
    if not isinstance(roots, dict):
        raise UsageError("roots.json must be a JSON object")
    inputs = [_hex(x, "leaf input", size=None) for x in roots.get("leaf_inputs_hex", [])]
    expected = [_hex(x, "root") for x in roots.get("root_hex_by_tree_size", [])]
    leaves = [leaf_hash(x) for x in inputs]
    frontier = Frontier()
    for n, want in enumerate(expected):
        if n > len(leaves):
            raise UsageError("roots.json has more roots than leaves")
        if n:
            frontier.append(leaves[n - 1])
        if root_of(leaves[:n]) != want or frontier.root() != want:
            failures.append(f"roots.json: wrong root for tree size {n}")
    summary.append(f"roots: {len(expected)} tree sizes checked")

    def run(name: str, check: Callable[[dict[str, Any]], None]) -> None:
        cases = load(name)
        if not isinstance(cases, list):
            raise UsageError(f"{name} must be a JSON list")
        accepted = refused = 0
        for case in cases:
            if not isinstance(case, dict) or not isinstance(case.get("want_error"), bool):
                raise UsageError(f"{name}: each case needs a boolean want_error")
            try:
                check(case)
                ok = True
            except ProofError:
                ok = False
            if ok == case["want_error"]:
                verdict = "accepted" if ok else "refused"
                failures.append(f"{name}: {case.get('source', case.get('desc'))} {verdict}")
            elif ok:
                accepted += 1
            else:
                refused += 1
        summary.append(f"{name}: {len(cases)} cases, {accepted} valid accepted, {refused} invalid refused")

    def inclusion(case: dict[str, Any]) -> None:
        verify_inclusion(
            _vector_bytes(case, "leaf_hash"),
            _int(case.get("leaf_index"), "leaf_index"),
            _int(case.get("tree_size"), "tree_size"),
            [_hex(p, "proof", size=None) for p in case.get("proof", [])],
            _vector_bytes(case, "root"),
        )

    def consistency(case: dict[str, Any]) -> None:
        verify_consistency(
            _int(case.get("size1"), "size1"),
            _int(case.get("size2"), "size2"),
            [_hex(p, "proof", size=None) for p in case.get("proof", [])],
            _vector_bytes(case, "root1"),
            _vector_bytes(case, "root2"),
        )

    run("inclusion.json", inclusion)
    run("consistency.json", consistency)
    return summary, failures


def cmd_vectors(args: argparse.Namespace) -> str:
    directory = Path(args.directory)
    if not directory.is_dir():
        raise UsageError(f"{directory} is not a directory")
    summary, failures = run_vectors(directory)
    if failures:
        raise VerificationFailed("\n".join([*summary, *failures, f"{len(failures)} vector(s) failed"]))
    return "\n".join([*summary, "OK: all vectors pass"])


# --- Entry point ------------------------------------------------------------------------


# --- Approval signatures (WebAuthn assertions over what was decided) ---------------------

_APPROVAL_CONTEXT = "releasegate-approval-v1"
_SIGNATURE_FIELDS = (
    "approval",
    "approver",
    "changelog",
    "revision",
    "content_hash",
    "decision",
    "reason",
    "rp_id",
    "credential_id",
    "authenticator_data",
    "client_data_json",
    "signature",
    "public_key_pem",
)


def approval_challenge(item: dict[str, Any]) -> bytes:
    """identity/challenge.py's derivation, written again here so the verifier stands alone."""
    import hashlib

    statement = {
        "context": _APPROVAL_CONTEXT,
        "changelog": str(item["changelog"]),
        "revision": int(item["revision"]),
        "content_hash": str(item["content_hash"]),
        "decision": str(item["decision"]),
        "reason_sha256": hashlib.sha256(str(item["reason"]).encode("utf-8")).hexdigest(),
    }
    encoded = json.dumps(statement, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    return hashlib.sha256(encoded).digest()


def _b64url(value: object, what: str) -> bytes:
    import base64
    import binascii

    if not isinstance(value, str):
        raise UsageError(f"{what} must be base64url text")
    try:
        return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    except (binascii.Error, ValueError) as exc:
        raise UsageError(f"{what} is not base64url: {exc}") from None


def _verify_with_key(pem: str, signature: bytes, signed: bytes, what: str) -> None:
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    try:
        key = load_pem_public_key(pem.encode("ascii"))
    except (ValueError, TypeError, UnicodeEncodeError) as exc:
        raise UsageError(f"{what}: unusable public key: {exc}") from None
    try:
        if isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(signature, signed, ec.ECDSA(hashes.SHA256()))
        elif isinstance(key, ed25519.Ed25519PublicKey):
            key.verify(signature, signed)
        elif isinstance(key, rsa.RSAPublicKey):
            key.verify(signature, signed, padding.PKCS1v15(), hashes.SHA256())
        else:
            raise UsageError(f"{what}: unsupported key type {type(key).__name__}")
    except InvalidSignature:
        raise VerificationFailed(f"{what}: the signature does not verify with the approver's key") from None


def verify_approval_signature(item: Any, what: str) -> str:
    """Check one approval's WebAuthn assertion; return a line saying what it proves."""
    import hashlib

    _fields(item, what, _SIGNATURE_FIELDS)
    authenticator_data = _b64url(item["authenticator_data"], f"{what}.authenticator_data")
    client_data_json = _b64url(item["client_data_json"], f"{what}.client_data_json")
    try:
        client_data = json.loads(client_data_json)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise VerificationFailed(f"{what}: the client data is not JSON") from None
    if not isinstance(client_data, dict) or client_data.get("type") != "webauthn.get":
        raise VerificationFailed(f"{what}: the client data is not a WebAuthn assertion (webauthn.get)")
    expected = approval_challenge(item)
    if _b64url(client_data.get("challenge", ""), f"{what}.challenge") != expected:
        raise VerificationFailed(
            f"{what}: the signed challenge is not the one derived from changelog {item['changelog']}, revision "
            f"{item['revision']}, content hash {item['content_hash']}, decision {item['decision']} and the reason"
        )
    if len(authenticator_data) < 37:
        raise VerificationFailed(f"{what}: the authenticator data is too short")
    if authenticator_data[:32] != hashlib.sha256(str(item["rp_id"]).encode("utf-8")).digest():
        raise VerificationFailed(f"{what}: the authenticator data is not for {item['rp_id']}")
    if authenticator_data[32] & 0x05 != 0x05:
        raise VerificationFailed(f"{what}: the authenticator did not report the user present and verified")
    _verify_with_key(
        str(item["public_key_pem"]),
        _b64url(item["signature"], f"{what}.signature"),
        authenticator_data + hashlib.sha256(client_data_json).digest(),
        what,
    )
    return (
        f"OK: {item['decision']} by {item['approver']} (approval {item['approval']}) is signed by their passkey "
        f"{item['credential_id']} over content hash {item['content_hash']} (revision {item['revision']})"
    )


def cmd_approvals(args: argparse.Namespace) -> str:
    items = _load_json(args.signatures_json)
    if not isinstance(items, list):
        raise UsageError("approval signatures must be a JSON list")
    return "\n".join(verify_approval_signature(item, f"signature[{n}]") for n, item in enumerate(items))


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


# --- A whole evidence pack ---------------------------------------------------------------

_PACK_OWN_FILES = ("manifest.json", "manifest.sig", "pack.pdf", "pack.pdf.sig0")
_MANIFEST_KEYWORD = re.compile(rb"manifest-sha256:([0-9a-f]{64})")
_PDF_CONTENTS = re.compile(rb"/Contents\s*<([0-9A-Fa-f]+)>")


def verify_manifest_signature(certificate_pem: bytes, manifest: bytes, signature: bytes) -> None:
    """The manifest's signature by the certificate's key (RSA PKCS#1 v1.5, ECDSA or Ed25519,
    SHA-256); VerificationFailed otherwise."""
    from cryptography import x509
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa

    try:
        key = x509.load_pem_x509_certificate(certificate_pem).public_key()
    except ValueError as exc:
        raise UsageError(f"unreadable certificate: {exc}") from exc
    try:
        if isinstance(key, rsa.RSAPublicKey):
            key.verify(signature, manifest, padding.PKCS1v15(), hashes.SHA256())
        elif isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(signature, manifest, ec.ECDSA(hashes.SHA256()))
        elif isinstance(key, ed25519.Ed25519PublicKey):
            key.verify(signature, manifest)
        else:
            raise UsageError("the certificate's key type is not supported")
    except InvalidSignature as exc:
        raise VerificationFailed("manifest.sig is not a signature of manifest.json by the pack certificate") from exc


def cmd_pack(args: argparse.Namespace) -> str:
    """Everything of a changelog pack (the ZIP, or the folder it was unpacked into) that needs
    no PDF reader: the manifest's signature, every member against the manifest, the PDF's
    binding to the manifest and to the certificate, the checkpoint's signature, every inclusion
    proof against it, and, when asked, the witnesses' cosignatures of that checkpoint and its
    consistency with a checkpoint kept outside. The PDF's own signature is pdfsig's to check
    ("Signature is Valid." and "Total document signed")."""
    path = Path(args.directory)
    if path.is_file():
        with tempfile.TemporaryDirectory(prefix="releasegate-pack-") as unpacked:
            _unzip(path, Path(unpacked))
            return _verify_pack(Path(unpacked), args)
    return _verify_pack(path, args)


def _unzip(archive: Path, into: Path) -> None:
    """Unpack a pack's ZIP, refusing members that would land outside ``into``."""
    try:
        with zipfile.ZipFile(archive) as zipped:
            total = 0
            for member in zipped.infolist():
                name = PurePosixPath(member.filename)
                if name.is_absolute() or ".." in name.parts or "\\" in member.filename:
                    raise VerificationFailed(f"the ZIP has a member outside its folder: {member.filename!r}")
                total += member.file_size
                if total > _MAX_INPUT * 16:
                    raise UsageError("the ZIP unpacks to more than 1 GiB")
            zipped.extractall(into)
    except zipfile.BadZipFile as exc:
        raise UsageError(f"{archive} is not a ZIP: {exc}") from exc


def _verify_pack(folder: Path, args: argparse.Namespace) -> str:
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    manifest_bytes = _read(str(folder / "manifest.json"))
    certificate_pem = _read(str(folder / "signing-certificate.pem"))
    if args.certificate_sha256 and sha256_hex(_pem_der(certificate_pem)) != args.certificate_sha256.lower():
        raise VerificationFailed("signing-certificate.pem is not the certificate whose SHA-256 you gave")
    verify_manifest_signature(certificate_pem, manifest_bytes, _read(str(folder / "manifest.sig")))
    manifest = json.loads(manifest_bytes)
    files = manifest.get("files") if isinstance(manifest, dict) else None
    if not isinstance(files, dict):
        raise UsageError("manifest.json has no files")
    for name, digest in sorted(files.items()):
        if sha256_hex(_read(str(folder / name))) != digest:
            raise VerificationFailed(f"{name} does not match the manifest")
    present = {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file() and "__pycache__" not in p.parts}
    extra = sorted(present - set(files) - set(_PACK_OWN_FILES))
    if extra:
        raise VerificationFailed(f"not in the manifest: {', '.join(extra)}")
    pdf = _read_raw(str(folder / "pack.pdf"), _MAX_INPUT)
    printed = _MANIFEST_KEYWORD.findall(pdf)
    if sha256_hex(manifest_bytes) not in {value.decode() for value in printed}:
        raise VerificationFailed("the PDF does not print this manifest's SHA-256: the ZIP is not the PDF's")
    der = x509.load_pem_x509_certificate(certificate_pem).public_bytes(serialization.Encoding.DER)
    if not any(der in bytes.fromhex(found.decode()) for found in _PDF_CONTENTS.findall(pdf)):
        raise VerificationFailed("the PDF's signature is not by signing-certificate.pem")
    key_file = args.key or str(folder / "public-key.txt")
    verifier = _load_key(key_file)
    checkpoint_file = str(folder / "checkpoint.txt")
    checkpoint = _load_checkpoint(verifier, checkpoint_file)
    proofs = sorted((folder / "proofs").glob("*.json")) if (folder / "proofs").is_dir() else []
    for proof in proofs:
        cmd_inclusion(
            argparse.Namespace(key=key_file, checkpoint=checkpoint_file, root=None, size=None, proof_json=str(proof))
        )
    report = [
        f"OK: manifest signed by the pack certificate, {len(files)} files match, the PDF is bound to them, "
        f"{len(proofs)} inclusion proofs verify against the checkpoint of size {checkpoint.size}"
    ]
    if args.witness_key:
        report.append(_check_cosignatures(_read_text(checkpoint_file), args.witness_key, args.quorum))
    if args.trusted_checkpoint or args.consistency:
        if not (args.trusted_checkpoint and args.consistency):
            raise UsageError("--trusted-checkpoint and --consistency go together")
        trusted = _load_checkpoint(verifier, args.trusted_checkpoint)
        report.append(_consistency(trusted, checkpoint, args.consistency).splitlines()[0])
    return "\n".join(report)


def _pem_der(pem: bytes) -> bytes:
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    try:
        return x509.load_pem_x509_certificate(pem).public_bytes(serialization.Encoding.DER)
    except ValueError as exc:
        raise UsageError(f"unreadable certificate: {exc}") from exc


def _check_cosignatures(note: str, key_files: Sequence[str], quorum: int | None) -> str:
    """At least ``quorum`` (default: all) of the witnesses' keys cosigned this checkpoint."""
    witnesses = []
    for path in key_files:
        try:
            witnesses.append(CosignatureVerifier.parse(_read_text(path)))
        except ValueError as exc:
            raise UsageError(f"{path}: {exc}") from exc
    needed = len(witnesses) if quorum is None else quorum
    body = note[: note.index("\n\n") + 1] if "\n\n" in note else note
    lines = note.splitlines()
    cosigned = sorted(w.name for w in witnesses if any(w.cosignature_time(line, body) is not None for line in lines))
    if len(cosigned) < needed:
        missing = sorted({w.name for w in witnesses} - set(cosigned))
        raise VerificationFailed(
            f"{len(cosigned)} of the {len(witnesses)} witnesses cosigned the checkpoint, {needed} needed; "
            f"no valid cosignature by {', '.join(missing)}"
        )
    return f"OK: the checkpoint is cosigned by {len(cosigned)} witnesses ({', '.join(cosigned)})"


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="releasegate-verify",
        description="Verify Release Gate audit-log checkpoints and Merkle proofs offline.",
    )
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = sub.add_parser("checkpoint", help="verify a signed checkpoint")
    p.add_argument("--key", required=True, help="file holding the log's verifier key")
    p.add_argument("checkpoint_file", metavar="CHECKPOINT_FILE")
    p.set_defaults(func=cmd_checkpoint)

    p = sub.add_parser("inclusion", help="verify inclusion proof(s) of log entries")
    p.add_argument("--key", help="file holding the log's verifier key")
    p.add_argument("--checkpoint", metavar="CP_FILE", help="signed checkpoint to verify against")
    p.add_argument("--root", type=_root_arg, help="tree root (hex) instead of a checkpoint")
    p.add_argument("--size", type=_size_arg, help="tree size with --root")
    p.add_argument("proof_json", metavar="PROOF_JSON")
    p.set_defaults(func=cmd_inclusion)

    p = sub.add_parser("consistency", help="verify that a newer tree extends an older one")
    p.add_argument("--key", help="file holding the log's verifier key")
    p.add_argument("--old", metavar="CP1", help="older signed checkpoint")
    p.add_argument("--new", metavar="CP2", help="newer signed checkpoint")
    p.add_argument("--old-root", type=_root_arg)
    p.add_argument("--old-size", type=_size_arg)
    p.add_argument("--new-root", type=_root_arg)
    p.add_argument("--new-size", type=_size_arg)
    p.add_argument("proof_json", metavar="PROOF_JSON")
    p.set_defaults(func=cmd_consistency)

    p = sub.add_parser("pack", help="verify a changelog evidence pack, its ZIP or unpacked (all but the PDF signature)")
    p.add_argument("--key", help="the log's verifier key as published (default: the pack's public-key.txt)")
    p.add_argument("--certificate-sha256", metavar="HEX", help="the pack certificate SHA-256 the bank publishes")
    p.add_argument(
        "--witness-key", action="append", default=[], metavar="VKEY_FILE", help="a witness's key (repeatable)"
    )
    p.add_argument("--quorum", type=_size_arg, help="how many of the witnesses must have cosigned (default: all)")
    p.add_argument("--trusted-checkpoint", metavar="CP_FILE", help="a checkpoint you kept outside the service")
    p.add_argument("--consistency", metavar="PROOF_JSON", help="the consistency proof from it to the pack's")
    p.add_argument("directory", metavar="ZIP_OR_DIR")
    p.set_defaults(func=cmd_pack)

    p = sub.add_parser("vectors", help="self-test against RFC 6962 test vectors")
    p.add_argument("directory", metavar="DIR")
    p.set_defaults(func=cmd_vectors)

    p = sub.add_parser("approvals", help="verify approvals' passkey signatures over what was decided")
    p.add_argument("signatures_json", metavar="SIGNATURES_JSON")
    p.set_defaults(func=cmd_approvals)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    stdin_uses = [
        v
        for k, v in vars(args).items()
        if k in {"key", "checkpoint", "checkpoint_file", "old", "new", "proof_json", "signatures_json"}
    ].count("-")
    try:
        if stdin_uses > 1:
            raise UsageError("only one input can be read from standard input")
        output = args.func(args)
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except VerificationFailed as exc:
        print(f"FAILED: {exc}", file=sys.stderr)
        return EXIT_FAILED
    print(output)
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
