"""in-toto attestations: a Statement (v0.1 or v1), or a DSSE envelope around one.

A Statement is ``{"_type": "https://in-toto.io/Statement/v1", "subject": [{"name", "digest":
{"sha256": ...}}], "predicateType", "predicate"}``. A DSSE envelope is ``{"payloadType":
"application/vnd.in-toto+json", "payload": <base64 of the Statement>, "signatures": [{"keyid",
"sig"}]}``; the payload is decoded (standard or URL-safe base64) and read as a Statement. A
Sigstore bundle's ``dsseEnvelope`` is unwrapped the same way.

The summary gives the statement type, predicate type, each subject's name and digests (a
``sha256`` must be 64 hex characters, normalised to lower case), the envelope's payload type,
signature count and key ids, and a few facts of well-known predicates (SLSA provenance v0.2/v1:
builder and build type; SLSA VSA v1: verification result and levels; in-toto test-result
v0.1: result and test counts). Signatures are **not verified** here (that needs trusted keys);
``signatures_verified`` is always false in the summary to say so. Verdict: ``info``.
"""

import base64
import binascii
import re
from typing import Any

from changelogs.parsers._common import (
    JsonObject,
    as_list,
    as_object,
    as_str,
    fail,
    index_path,
    invalid,
    key_path,
    load_json,
    load_json_text,
    opt_object,
    opt_str,
)
from changelogs.parsers.errors import ParseErrorCode
from changelogs.parsers.summaries import (
    DsseEnvelopeInfo,
    InTotoSummary,
    PredicateFact,
    StatementSubject,
)

PARSER_VERSION = "intoto/1"
FORMAT = "intoto"

STATEMENT_TYPES = ("https://in-toto.io/Statement/v0.1", "https://in-toto.io/Statement/v1")
DSSE_PAYLOAD_TYPE = "application/vnd.in-toto+json"
_DIGEST_LENGTHS = {"sha256": 64, "sha384": 96, "sha512": 128, "sha1": 40, "gitCommit": (40, 64)}
_HEX = re.compile(r"[0-9a-fA-F]+")


def parse(data: bytes) -> InTotoSummary:
    document = load_json(data, what="in-toto")
    if not isinstance(document, dict):
        fail(ParseErrorCode.WRONG_FORMAT, "This is not an in-toto statement or DSSE envelope.", "$")
    path = "$"
    media_type = document.get("mediaType")
    if isinstance(media_type, str) and media_type.startswith("application/vnd.dev.sigstore.bundle"):
        if "dsseEnvelope" not in document:
            fail(
                ParseErrorCode.UNSUPPORTED_FORMAT,
                "This Sigstore bundle signs a message, not an in-toto statement in a DSSE envelope.",
                "$.dsseEnvelope",
            )
        document, path = as_object(document["dsseEnvelope"], "$.dsseEnvelope"), "$.dsseEnvelope"
    envelope = None
    if "payloadType" in document:
        envelope, statement, statement_path = _open_envelope(document, path)
    elif "_type" in document:
        statement, statement_path = document, path
    else:
        fail(
            ParseErrorCode.WRONG_FORMAT,
            "This is not an in-toto statement (no '_type') or DSSE envelope (no 'payloadType').",
            path,
        )
    return _statement(statement, statement_path, envelope)


def _decode_base64(value: str, path: str) -> bytes:
    text = value.strip()
    text += "=" * (-len(text) % 4)
    decoded: bytes | None = None
    for altchars in (None, b"-_"):
        try:
            decoded = base64.b64decode(text, altchars=altchars, validate=True)
            break
        except (binascii.Error, ValueError):
            continue
    if decoded is None:
        fail(ParseErrorCode.INVALID_STRUCTURE, f"{path} is not valid base64.", path)
    return decoded


def _open_envelope(envelope: JsonObject, path: str) -> tuple[DsseEnvelopeInfo, JsonObject, str]:
    payload_type_path = key_path(path, "payloadType")
    payload_type = as_str(envelope.get("payloadType"), payload_type_path)
    if payload_type != DSSE_PAYLOAD_TYPE:
        fail(
            ParseErrorCode.UNSUPPORTED_FORMAT,
            f"The DSSE envelope carries {payload_type!r}, not an in-toto statement ({DSSE_PAYLOAD_TYPE}).",
            payload_type_path,
        )
    payload_path = key_path(path, "payload")
    payload = _decode_base64(as_str(envelope.get("payload"), payload_path), payload_path)
    try:
        payload_text = payload.decode("utf-8")
    except UnicodeDecodeError:
        fail(ParseErrorCode.NOT_UTF8, "The decoded DSSE payload is not UTF-8 JSON.", payload_path)
    statement = load_json_text(payload_text, what="in-toto statement", location_prefix=f"{payload_path}<decoded> ")
    statement_path = f"{payload_path}<decoded>"
    if not isinstance(statement, dict):
        fail(
            ParseErrorCode.WRONG_FORMAT,
            "The DSSE payload is not an in-toto statement.",
            statement_path,
        )
    signatures_path = key_path(path, "signatures")
    keyids: list[str] = []
    signatures = as_list(envelope.get("signatures"), signatures_path)
    for i, raw in enumerate(signatures):
        signature_path = index_path(signatures_path, i)
        signature = as_object(raw, signature_path)
        if not as_str(signature.get("sig"), key_path(signature_path, "sig")):
            invalid(key_path(signature_path, "sig"), f"{key_path(signature_path, 'sig')} is empty.")
        keyid = opt_str(signature, "keyid", signature_path)
        if keyid:
            keyids.append(keyid)
    info = DsseEnvelopeInfo(payload_type=payload_type, signatures=len(signatures), keyids=tuple(keyids))
    return info, statement, statement_path


def _digests(raw: Any, path: str) -> dict[str, str]:
    digests: dict[str, str] = {}
    for algorithm, value in as_object(raw, path).items():
        value_path = key_path(path, algorithm)
        digest = as_str(value, value_path)
        expected = _DIGEST_LENGTHS.get(algorithm)
        if expected is not None:
            lengths = expected if isinstance(expected, tuple) else (expected,)
            if len(digest) not in lengths or not _HEX.fullmatch(digest):
                invalid(value_path, f"{value_path} is not a {algorithm} digest in hexadecimal.")
            digest = digest.lower()
        digests[algorithm] = digest
    if not digests:
        invalid(path, f"{path} has no digest.")
    return digests


def _statement(statement: JsonObject, path: str, envelope: DsseEnvelopeInfo | None) -> InTotoSummary:
    type_path = key_path(path, "_type")
    statement_type = as_str(statement.get("_type"), type_path)
    if statement_type not in STATEMENT_TYPES:
        code = (
            ParseErrorCode.UNSUPPORTED_VERSION
            if statement_type.startswith("https://in-toto.io/Statement/")
            else ParseErrorCode.WRONG_FORMAT
        )
        fail(
            code,
            f"Unsupported statement type {statement_type!r}; supported: {', '.join(STATEMENT_TYPES)}.",
            type_path,
        )
    subjects_path = key_path(path, "subject")
    raw_subjects = as_list(statement.get("subject"), subjects_path)
    if not raw_subjects:
        invalid(subjects_path, f"{subjects_path} must name at least one subject.")
    subjects = []
    for i, raw in enumerate(raw_subjects):
        subject_path = index_path(subjects_path, i)
        subject = as_object(raw, subject_path)
        subjects.append(
            StatementSubject(
                name=opt_str(subject, "name", subject_path) or "",
                digests=_digests(subject.get("digest"), key_path(subject_path, "digest")),
            )
        )
    predicate_type = as_str(statement.get("predicateType"), key_path(path, "predicateType"))
    predicate = opt_object(statement, "predicate", path)
    return InTotoSummary(
        format=FORMAT,
        parser_version=PARSER_VERSION,
        statement_type=statement_type,
        predicate_type=predicate_type,
        subjects=tuple(subjects),
        envelope=envelope,
        predicate_facts=_facts(predicate_type, predicate),
    )


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _dig(value: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


def _count(value: Any) -> int | None:
    return len(value) if isinstance(value, list) else None


def _facts(predicate_type: str, predicate: JsonObject) -> dict[str, PredicateFact]:
    """A handful of well-known predicate fields; anything unexpected is simply left out."""
    facts: dict[str, PredicateFact] = {}
    if predicate_type == "https://slsa.dev/provenance/v1":
        facts = {
            "builder_id": _text(_dig(predicate, "runDetails", "builder", "id")),
            "build_type": _text(_dig(predicate, "buildDefinition", "buildType")),
            "invocation_id": _text(_dig(predicate, "runDetails", "metadata", "invocationId")),
        }
    elif predicate_type == "https://slsa.dev/provenance/v0.2":
        facts = {
            "builder_id": _text(_dig(predicate, "builder", "id")),
            "build_type": _text(predicate.get("buildType")),
        }
    elif predicate_type in (
        "https://slsa.dev/verification_summary/v1",
        "https://slsa.dev/verification_summary/v0.2",
    ):
        levels = predicate.get("verifiedLevels")
        facts = {
            "verification_result": _text(predicate.get("verificationResult")),
            "verified_levels": tuple(level for level in levels if isinstance(level, str))
            if isinstance(levels, list)
            else None,
            "verifier_id": _text(_dig(predicate, "verifier", "id")),
            "policy_uri": _text(_dig(predicate, "policy", "uri")),
            "resource_uri": _text(predicate.get("resourceUri")),
        }
    elif predicate_type == "https://in-toto.io/attestation/test-result/v0.1":
        facts = {
            "result": _text(predicate.get("result")),
            "passed_tests": _count(predicate.get("passedTests")),
            "failed_tests": _count(predicate.get("failedTests")),
            "warned_tests": _count(predicate.get("warnedTests")),
            "url": _text(predicate.get("url")),
        }
    return {key: value for key, value in facts.items() if value is not None}
