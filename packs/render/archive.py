"""The changelog pack's ZIP and the population's CSV.

The ZIP is deterministic: the same inputs give the same bytes (entries sorted, every
timestamp the pack's ``generated_at``, fixed permissions), with ``manifest.json`` written last
over every other file. Before anything is written the pack is checked the way an auditor
will check it, so a pack whose proofs would not verify is never produced: the checkpoint must
be signed by the pack's public key and of the pack's tree size, every leaf hash must be the
hash of its event, every proof must lead to the checkpoint's root, and every evidence file
must have the SHA-256 the PDF prints.
"""

import csv
import dataclasses
import hashlib
import json
import zipfile
from collections.abc import Iterable, Mapping
from datetime import datetime
from io import BytesIO
from pathlib import Path
from typing import Any, TextIO

import tlog
from packs.render.data import AuditItem, ChangelogPack, ChangeRow, DeploymentRow, PopulationPack
from packs.render.howto import (
    APPROVAL_SIGNATURES_NAME,
    CERTIFICATE_NAME,
    CHECKPOINT_NAME,
    DIGEST_MISMATCH,
    EVENTS_NAME,
    EVIDENCE_DIR,
    MANIFEST_NAME,
    MANIFEST_SIGNATURE_NAME,
    PDF_NAME,
    PROOFS_DIR,
    PUBLIC_KEY_NAME,
    SIGNATURE_VALID,
    VERIFIER_DIR,
    VERIFY_NAME,
    Step,
    changelog_steps,
)
from tlog.merkle import ProofError, leaf_hash, verify_inclusion
from tlog.note import NoteError, NoteVerifier, open_checkpoint

MANIFEST_FORMAT = "releasegate/evidence-pack/v1"
_KERNEL_DIR = Path(tlog.__file__).resolve().parent
_VERIFIER_MODULES = ("verifier.py", "merkle.py", "note.py", "canonical.py", "cosignature.py")
_VERIFIER_INIT = (
    b'"""Release Gate\'s standalone audit-log verifier, as shipped in evidence packs.\n\n'
    b"Run ``python3 -m tlog.verifier --help`` from the folder that holds this package; it needs\n"
    b'Python 3.11 or later and the ``cryptography`` package, nothing else."""\n'
)


class PackError(ValueError):
    """The pack's data is inconsistent: it would not verify, or a file does not match."""


# --- Checks -----------------------------------------------------------------------------


def _safe(path: str, what: str) -> str:
    """A relative path that stays inside the unpacked folder: no absolute paths, no ``..`` or
    empty segments, no backslashes or control characters (spaces and non-ASCII are fine)."""
    if (
        path.startswith("/")
        or "\\" in path
        or any(part in {"", ".", ".."} for part in path.split("/"))
        or any(ord(c) < 0x20 or ord(c) == 0x7F for c in path)
    ):
        raise PackError(f"{what} {path!r} is not a plain relative path")
    return path


def check_changelog_pack(pack: ChangelogPack) -> None:
    """Verify the pack's checkpoint and every audit event's proof, as an auditor would."""
    try:
        checkpoint = open_checkpoint(NoteVerifier.from_string(pack.public_key), pack.checkpoint)
    except (NoteError, ValueError) as exc:
        raise PackError(f"the checkpoint does not verify with the pack's public key: {exc}") from exc
    if checkpoint.size != pack.checkpoint_size:
        raise PackError(f"the checkpoint is of size {checkpoint.size}, the pack says {pack.checkpoint_size}")
    seen: set[int] = set()
    for item in pack.audit_events:
        if item.leaf_index in seen:
            raise PackError(f"leaf {item.leaf_index} appears twice")
        seen.add(item.leaf_index)
        lh = bytes.fromhex(item.leaf_hash)
        if leaf_hash(item.event.encode("utf-8")) != lh:
            raise PackError(f"leaf {item.leaf_index}: the leaf hash is not the hash of the event")
        try:
            verify_inclusion(
                lh, item.leaf_index, checkpoint.size, [bytes.fromhex(h) for h in item.proof], checkpoint.root_hash
            )
        except (ProofError, ValueError) as exc:
            raise PackError(f"leaf {item.leaf_index}: the inclusion proof does not verify: {exc}") from exc


def _evidence(pack: ChangelogPack, files: Mapping[str, bytes]) -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    for item in pack.evidence:
        name = _safe(item.archive_name, "evidence archive name")
        if not name.startswith(f"{EVIDENCE_DIR}/"):
            raise PackError(f"evidence archive name {name!r} is not under {EVIDENCE_DIR}/")
        if name not in files:
            raise PackError(f"the evidence file {name} is missing")
        if hashlib.sha256(files[name]).hexdigest() != item.sha256:
            raise PackError(f"the evidence file {name} does not have the SHA-256 the pack records")
        out[name] = files[name]
    unexpected = sorted(set(files) - set(out))
    if unexpected:
        raise PackError(f"evidence files not in the pack: {', '.join(unexpected)}")
    return out


# --- Contents -----------------------------------------------------------------------------


def proof_json(item: AuditItem, tree_size: int) -> bytes:
    """One proof in the format ``python -m tlog.verifier inclusion`` reads."""
    proof = {
        "leaf_index": item.leaf_index,
        "tree_size": tree_size,
        "leaf_hash": item.leaf_hash,
        "proof": list(item.proof),
        "event": item.event,
    }
    return (json.dumps(proof, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


def standalone_verifier_sources() -> dict[str, bytes]:
    """The standalone verifier's files (``tlog/…``), with a package ``__init__`` of its own
    that imports nothing, ready to pass as ``verifier_sources``."""
    sources = {f"tlog/{name}": (_KERNEL_DIR / name).read_bytes() for name in _VERIFIER_MODULES}
    sources["tlog/__init__.py"] = _VERIFIER_INIT
    return sources


def _verify_md(pack: ChangelogPack, files: Mapping[str, bytes]) -> bytes:
    steps = changelog_steps(
        leaf_indexes=[e.leaf_index for e in pack.audit_events],
        certificate_sha256=pack.signing_certificate_sha256,
        organisation=pack.organisation,
        vectors=any(name.startswith(f"{VERIFIER_DIR}/vectors/") for name in files),
    )
    contents = [
        (PDF_NAME, f"the evidence pack, signed by {pack.organisation} (PAdES)"),
        (f"{EVIDENCE_DIR}/", f"the {len(pack.evidence)} evidence files, byte for byte as uploaded"),
        (EVENTS_NAME, f"the {len(pack.audit_events)} audit events of this change: canonical bytes, one per line"),
        (f"{PROOFS_DIR}/<leaf index>.json", "each event's inclusion proof against the checkpoint"),
        (CHECKPOINT_NAME, f"the signed checkpoint (tree size {pack.checkpoint_size}) the proofs are against"),
        (PUBLIC_KEY_NAME, "the audit log's public (verifier) key"),
        (f"{VERIFIER_DIR}/", "the standalone verifier (Python 3.11+, needs only the cryptography package)"),
        (MANIFEST_NAME, f"the SHA-256 of every other file but {PDF_NAME}, which prints this file's SHA-256"),
        (MANIFEST_SIGNATURE_NAME, "the manifest's signature by the pack key (the PDF's certificate)"),
    ]
    if CERTIFICATE_NAME in files:
        contents.insert(6, (CERTIFICATE_NAME, "the certificate the PDF is signed with"))
    if APPROVAL_SIGNATURES_NAME in files:
        contents.insert(
            -1, (APPROVAL_SIGNATURES_NAME, "each signed approval's passkey assertion and the approver's public key")
        )
    lines = [
        "# Verifying this evidence pack",
        "",
        f"Changelog `{pack.changelog_id}` of `{pack.service}` ({pack.domain}, {pack.kind}), "
        f"generated {pack.generated_at} for {pack.organisation}.",
        "",
        "| file | what |",
        "|---|---|",
        *(f"| `{name}` | {what} |" for name, what in contents),
        "",
        "Every step runs offline; none needs the service. Run them from the folder the ZIP was unpacked into, "
        "in this order: each step trusts only what the steps before it checked.",
        "",
    ]
    if APPROVAL_SIGNATURES_NAME in files:
        steps.append(
            Step(
                "Each signed approval was signed by its approver's passkey over this content hash",
                f"{APPROVAL_SIGNATURES_NAME} holds each signed approval's WebAuthn assertion and the public key of "
                "the passkey a second administrator confirmed as the approver's. The verifier derives the challenge "
                "from the changelog, revision, content hash, decision and reason, and checks the signature with "
                "that key (run from the unpacked folder).",
                (f"cd {VERIFIER_DIR} && python3 -m tlog.verifier approvals ../{APPROVAL_SIGNATURES_NAME} && cd ..",),
            )
        )
    for n, step in enumerate(steps, 1):
        lines += [f"## {n}. {step.title}", "", step.text, ""]
        if step.commands:
            lines += ["```sh", *step.commands, "```", ""]
    lines += [
        "## What each result means",
        "",
        f'- `pdfsig` prints "{SIGNATURE_VALID}" for an intact PDF and "{DIGEST_MISMATCH}" when any signed '
        'byte changed. "Certificate issuer is unknown." or "not trusted" is about your trust store, not about '
        "the document.",
        "- `python3 -m tlog.verifier` exits 0 when everything verified, 1 when something did not (the reason "
        "is on stderr), 2 when it could not read its input.",
        "- Any mismatch against the manifest means a file was changed after the pack was made.",
        "",
    ]
    return "\n".join(lines).encode("utf-8")


def _zip_time(generated_at: str) -> tuple[int, int, int, int, int, int]:
    try:
        moment = datetime.fromisoformat(generated_at)
    except ValueError:
        return (1980, 1, 1, 0, 0, 0)
    if not 1980 <= moment.year <= 2107:
        return (1980, 1, 1, 0, 0, 0)
    return (moment.year, moment.month, moment.day, moment.hour, moment.minute, moment.second)


def _write_zip(files: Mapping[str, bytes], generated_at: str) -> bytes:
    """Every file sorted by name, then the manifest; all stamped ``generated_at``."""
    stamp = _zip_time(generated_at)
    out = BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        last = [name for name in (MANIFEST_NAME, MANIFEST_SIGNATURE_NAME) if name in files]
        for name in [*sorted(n for n in files if n not in last), *last]:
            info = zipfile.ZipInfo(name, date_time=stamp)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.create_system = 3  # Unix, so the permissions below mean the same everywhere
            info.external_attr = 0o644 << 16
            archive.writestr(info, files[name], compresslevel=6)
    return out.getvalue()


def changelog_members(
    *,
    pack: ChangelogPack,
    evidence_files: Mapping[str, bytes],
    verifier_sources: Mapping[str, bytes],
    vectors: Mapping[str, bytes] | None = None,
    signing_certificate_pem: bytes = b"",
) -> dict[str, bytes]:
    """Every file of the changelog pack's ZIP but the PDF, the manifest and its signature.

    ``evidence_files`` maps each evidence item's ``archive_name`` to its bytes (exactly the
    pack's evidence, no more); ``verifier_sources`` maps ``tlog/<module>.py`` paths to their
    bytes (``standalone_verifier_sources()``), placed under ``verifier/``; ``vectors``
    optionally maps file names to RFC 6962 test vectors for ``python -m tlog.verifier
    vectors``, placed under ``verifier/vectors/``. Raises PackError if the pack would not
    verify."""
    check_changelog_pack(pack)
    files: dict[str, bytes] = dict(_evidence(pack, evidence_files))
    events = sorted(pack.audit_events, key=lambda e: e.leaf_index)
    files[EVENTS_NAME] = "".join(f"{e.event}\n" for e in events).encode("utf-8")
    files[CHECKPOINT_NAME] = pack.checkpoint.encode("utf-8")
    files[PUBLIC_KEY_NAME] = f"{pack.public_key.strip()}\n".encode()
    for item in events:
        files[f"{PROOFS_DIR}/{item.leaf_index}.json"] = proof_json(item, pack.checkpoint_size)
    if signing_certificate_pem:
        files[CERTIFICATE_NAME] = signing_certificate_pem
    signatures = [dict(a.signature) for a in pack.approvals if a.signature is not None]
    if signatures:
        files[APPROVAL_SIGNATURES_NAME] = (json.dumps(signatures, indent=2, ensure_ascii=False) + "\n").encode()
    for path, data in verifier_sources.items():
        files[f"{VERIFIER_DIR}/{_safe(path, 'verifier source')}"] = data
    for name, data in (vectors or {}).items():
        files[f"{VERIFIER_DIR}/vectors/{_safe(name, 'vector file')}"] = data
    files[VERIFY_NAME] = _verify_md(pack, files)
    return files


def changelog_manifest(pack: ChangelogPack, members: Mapping[str, bytes]) -> bytes:
    """manifest.json: the SHA-256 of every member. The PDF is not in it: the PDF prints the
    manifest's own SHA-256 (and is signed), and the manifest is signed with the pack key
    (manifest.sig), which binds the two both ways."""
    manifest = {
        "format": MANIFEST_FORMAT,
        "changelog_id": pack.changelog_id,
        "generated_at": pack.generated_at,
        "checkpoint_size": pack.checkpoint_size,
        "algorithm": "sha256",
        "pdf": f"{PDF_NAME} prints this file's SHA-256; {MANIFEST_SIGNATURE_NAME} signs it with the pack key",
        "files": {name: hashlib.sha256(data).hexdigest() for name, data in sorted(members.items())},
    }
    return (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode("utf-8")


def build_changelog_zip(
    *,
    pack: ChangelogPack,
    signed_pdf: bytes,
    evidence_files: Mapping[str, bytes],
    verifier_sources: Mapping[str, bytes],
    vectors: Mapping[str, bytes] | None = None,
    signing_certificate_pem: bytes = b"",
    manifest_signature: bytes = b"",
) -> bytes:
    """The changelog pack's ZIP: ``changelog_members``, the signed PDF, the manifest and, when
    given, its signature (``releasegate.pdfsign.sign_manifest``). When the pack carries a
    ``manifest_sha256`` (printed in its PDF) the manifest must have it."""
    files = changelog_members(
        pack=pack,
        evidence_files=evidence_files,
        verifier_sources=verifier_sources,
        vectors=vectors,
        signing_certificate_pem=signing_certificate_pem,
    )
    manifest = changelog_manifest(pack, files)
    if pack.manifest_sha256 and hashlib.sha256(manifest).hexdigest() != pack.manifest_sha256:
        raise PackError("the manifest is not the one whose hash the PDF prints")
    files[PDF_NAME] = signed_pdf
    files[MANIFEST_NAME] = manifest
    if manifest_signature:
        files[MANIFEST_SIGNATURE_NAME] = manifest_signature
    return _write_zip(files, pack.generated_at)


# --- Population CSV -----------------------------------------------------------------------

POPULATION_COLUMNS = (
    "record",
    "changelog_id",
    "deployment_id",
    "service",
    "domain",
    "kind",
    "status",
    "risk_tier",
    "environment",
    "artifact_digest",
    "submitted_at",
    "approved_at",
    "first_deployed_at",
    "reported_at",
    "deployments",
    "approval_before_deploy",
    "separation_of_duties",
    "evidence_complete",
    "rollback_plan",
    "unauthorised",
)
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: Any) -> str:
    """Booleans as true/false, "not applicable" as empty; a text that a spreadsheet would run
    as a formula gets a leading apostrophe (OWASP's advice for CSV injection)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    text = str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


def _change_record(row: ChangeRow) -> dict[str, Any]:
    return {"record": "change", **dataclasses.asdict(row)}


def _deployment_record(row: DeploymentRow) -> dict[str, Any]:
    return {"record": "deployment", **dataclasses.asdict(row)}


def write_population_csv(pack: PopulationPack, out: TextIO) -> tuple[int, int]:
    """The population as one RFC 4180 CSV (UTF-8 text, CRLF line ends, a header row, the columns
    of ``POPULATION_COLUMNS``): a ``change`` row per change, then a ``deployment`` row per
    deployment; columns that do not apply to a record are empty, as is
    ``approval_before_deploy`` for a change never deployed. Streams the pack's iterables once;
    returns (changes, deployments) written. Open ``out`` with ``newline=""``."""
    writer = csv.writer(out, lineterminator="\r\n", quoting=csv.QUOTE_MINIMAL)
    writer.writerow(POPULATION_COLUMNS)

    def write(records: Iterable[dict[str, Any]]) -> int:
        count = 0
        for record in records:
            writer.writerow([_cell(record.get(column)) for column in POPULATION_COLUMNS])
            count += 1
        return count

    changes = write(_change_record(row) for row in pack.changes)
    deployments = write(_deployment_record(row) for row in pack.deployments)
    return changes, deployments
