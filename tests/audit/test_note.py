"""Signed notes and checkpoints, checked against the golang.org/x/mod/sumdb/note vectors."""

import base64
import hashlib

import pytest

from tlog.note import (
    MAX_NOTE_SIZE,
    Checkpoint,
    NoteError,
    NoteVerifier,
    generate_signer,
    key_id,
    open_checkpoint,
    signer_from_private_bytes,
    signer_from_string,
    signer_to_string,
    verifier_key,
)

# From golang.org/x/mod/sumdb/note (note.go package docs and note_test.go).
PETER_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
PETER_SKEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
ENOCH_VKEY = "EnochRoot+af0cfe78+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop"
TEXT = "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n"
PETER_SIG = (
    "\u2014 PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
)
ENOCH_SIG = (
    "\u2014 EnochRoot rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/5n2tiOHp+vAF1aGrQ5ovTG01oOTGwnWLox33WWd1RvMc+QQ=\n"
)
PETER_NOTE = TEXT + "\n" + PETER_SIG

ROOT = hashlib.sha256(b"some root").digest()


def test_the_go_reference_note_verifies() -> None:
    verifier = NoteVerifier.from_string(PETER_VKEY)
    assert verifier.open(PETER_NOTE) == TEXT
    assert verifier.open(PETER_NOTE.encode("utf-8")) == TEXT


def test_the_key_id_is_computed_as_the_spec_says() -> None:
    public_key = base64.b64decode("ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW")[1:]
    expected = hashlib.sha256(b"PeterNeumann\n\x01" + public_key).digest()[:4]
    assert key_id("PeterNeumann", public_key) == expected == bytes.fromhex("c74f20a3")
    assert verifier_key("PeterNeumann", public_key) == PETER_VKEY
    assert NoteVerifier.from_string(PETER_VKEY).key_id.hex() == "c74f20a3"


def test_the_go_signer_key_reproduces_the_reference_note_byte_for_byte() -> None:
    signer = signer_from_string(PETER_SKEY)
    assert signer.name == "PeterNeumann"
    assert signer.key_id.hex() == "c74f20a3"
    assert signer.verifier_key() == PETER_VKEY
    assert signer.sign(TEXT) == PETER_NOTE  # Ed25519 is deterministic
    assert signer_to_string(signer) == PETER_SKEY


def test_sign_and_open_round_trip_with_a_fresh_key() -> None:
    signer = generate_signer("releasegate.example/log")
    body = "hello\n\nwith an empty line inside\n"
    signed = signer.sign(body)
    assert signed.startswith(body + "\n\u2014 releasegate.example/log ")
    assert NoteVerifier.from_string(signer.verifier_key()).open(signed) == body
    again = signer_from_private_bytes(signer.name, signer.private_seed())
    assert again.verifier_key() == signer.verifier_key()
    assert signer_from_string(signer_to_string(signer)).sign(body) == signed
    assert "PRIVATE" not in repr(signer)


def test_signatures_by_other_keys_are_ignored_but_one_valid_signature_is_needed() -> None:
    peter = NoteVerifier.from_string(PETER_VKEY)
    enoch = NoteVerifier.from_string(ENOCH_VKEY)
    both = TEXT + "\n" + PETER_SIG + ENOCH_SIG
    assert peter.open(both) == TEXT
    assert enoch.open(both) == TEXT
    with pytest.raises(NoteError, match="not signed by"):
        enoch.open(PETER_NOTE)


def test_it_refuses_a_note_with_a_tampered_body() -> None:
    verifier = NoteVerifier.from_string(PETER_VKEY)
    with pytest.raises(NoteError, match="invalid signature"):
        verifier.open(PETER_NOTE.replace("cryptography", "cryptographY"))


def test_it_refuses_a_note_with_a_tampered_signature() -> None:
    verifier = NoteVerifier.from_string(PETER_VKEY)
    bad = TEXT + "\n" + PETER_SIG[:60] + "ABCD" + PETER_SIG[60:]
    with pytest.raises(NoteError):
        verifier.open(bad)
    flipped = PETER_SIG.replace("x08go", "x08gp")
    with pytest.raises(NoteError):
        verifier.open(TEXT + "\n" + flipped)


def test_it_refuses_a_note_signed_by_an_unknown_key() -> None:
    other = generate_signer("PeterNeumann")  # same name, different key and key ID
    with pytest.raises(NoteError, match="not signed by"):
        NoteVerifier.from_string(PETER_VKEY).open(other.sign(TEXT))


@pytest.mark.parametrize(
    "message",
    [
        TEXT,
        TEXT + "\n",
        TEXT + "\n" + PETER_SIG[:-1],
        "\x01" + TEXT + "\n" + PETER_SIG,
        TEXT + "\n" + "\u2014 Bad Name x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZ"
        "SNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n",
        TEXT + "\n" + PETER_SIG + "Unexpected line.\n",
        TEXT + "\n" + "- PeterNeumann " + PETER_SIG.split(" ")[2],
        TEXT + "\n" + "\u2014 PeterNeumann AAAA\n",
        TEXT + "\n" + "\u2014 PeterNeumann not*base64\n",
        TEXT + "\n" + PETER_SIG * 101,
        TEXT.rstrip("\n") + "\r\n\n" + PETER_SIG,
    ],
)
def test_it_refuses_malformed_notes(message: str) -> None:
    with pytest.raises(NoteError):
        NoteVerifier.from_string(PETER_VKEY).open(message)


def test_it_refuses_notes_that_are_not_utf8_or_over_one_mebibyte() -> None:
    verifier = NoteVerifier.from_string(PETER_VKEY)
    with pytest.raises(NoteError, match="UTF-8"):
        verifier.open(b"\xff" + PETER_NOTE.encode("utf-8"))
    huge = "x" * MAX_NOTE_SIZE + "\n" + PETER_NOTE
    with pytest.raises(NoteError, match="1 MiB"):
        verifier.open(huge)
    with pytest.raises(NoteError, match="1 MiB"):
        verifier.open(huge.encode("utf-8"))


def test_the_signer_refuses_a_body_without_a_final_newline() -> None:
    with pytest.raises(ValueError):
        generate_signer("log").sign("no newline")


@pytest.mark.parametrize(
    "vkey",
    [
        PETER_VKEY[:-1],
        PETER_VKEY + "A",
        "PeterNeumann+c74f20a4+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
        "PeterNeuman+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
        "PeterNeumann+c74f20+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
        "PeterNeumann+173116ae+ZRpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
        "PeterNeumann+c74f20a3",
        "",
    ],
)
def test_it_refuses_malformed_or_inconsistent_verifier_keys(vkey: str) -> None:
    with pytest.raises(NoteError):
        NoteVerifier.from_string(vkey)


@pytest.mark.parametrize(
    "skey",
    [
        PETER_SKEY.replace("PRIVATE+KEY", "PUBLIC+KEY"),
        PETER_SKEY.replace("c74f20a3", "c74f20a4"),
        PETER_SKEY[:-1],
        PETER_VKEY,
    ],
)
def test_it_refuses_malformed_signer_keys(skey: str) -> None:
    with pytest.raises(NoteError):
        signer_from_string(skey)


def test_a_checkpoint_formats_and_parses_back() -> None:
    cp = Checkpoint("example.com/behind-the-sofa", 20852163, ROOT)
    body = cp.body()
    assert body == f"example.com/behind-the-sofa\n20852163\n{base64.b64encode(ROOT).decode()}\n"
    assert Checkpoint.parse(body) == cp
    with_ext = Checkpoint("log", 0, ROOT, ("ext one", "ext two"))
    assert with_ext.body().endswith("\next one\next two\n")
    assert Checkpoint.parse(with_ext.body()) == with_ext


def test_a_signed_checkpoint_opens_with_the_log_key() -> None:
    signer = generate_signer("releasegate.example/audit")
    cp = Checkpoint("releasegate.example/audit", 42, ROOT)
    signed = signer.sign(cp.body())
    assert open_checkpoint(signer.verifier(), signed) == cp
    with pytest.raises(NoteError):
        open_checkpoint(signer.verifier(), signed.replace("\n42\n", "\n43\n"))


GOOD_ROOT_B64 = base64.b64encode(ROOT).decode()


@pytest.mark.parametrize(
    "body",
    [
        f"\n5\n{GOOD_ROOT_B64}\n",  # empty origin
        f"log\n05\n{GOOD_ROOT_B64}\n",  # leading zero
        f"log\n+5\n{GOOD_ROOT_B64}\n",
        f"log\n5 \n{GOOD_ROOT_B64}\n",
        f"log\n-1\n{GOOD_ROOT_B64}\n",
        f"log\n1_000\n{GOOD_ROOT_B64}\n",
        f"log\n\u0665\n{GOOD_ROOT_B64}\n",  # Arabic-Indic digit five
        f"log\n{2**64}\n{GOOD_ROOT_B64}\n",
        f"log\n5\n{base64.b64encode(ROOT[:31]).decode()}\n",  # 31-byte root
        f"log\n5\n{GOOD_ROOT_B64.rstrip('=')}\n",  # missing padding
        f"log\n5\n{ROOT.hex()}\n",  # hex, not base64
        f"log\n5\n{GOOD_ROOT_B64}",  # no final newline
        f"log\n5\n{GOOD_ROOT_B64}\n\n",  # empty extension line
        "log\n5\n",  # too few lines
        f"log\r\n5\n{GOOD_ROOT_B64}\n",
    ],
)
def test_checkpoint_parsing_is_strict(body: str) -> None:
    with pytest.raises(NoteError):
        Checkpoint.parse(body)


def test_a_checkpoint_refuses_bad_fields_on_construction() -> None:
    with pytest.raises(ValueError):
        Checkpoint("", 1, ROOT)
    with pytest.raises(ValueError):
        Checkpoint("log", -1, ROOT)
    with pytest.raises(ValueError):
        Checkpoint("log", 1, ROOT[:31])
    with pytest.raises(ValueError):
        Checkpoint("log\nforged", 1, ROOT)
    with pytest.raises(ValueError):
        Checkpoint("log", 1, ROOT, ("",))


def test_every_substring_or_one_character_change_of_a_verifier_key_is_refused() -> None:
    # The same manglings x/mod/sumdb/note's TestNewVerifier tries.
    n = len(PETER_VKEY)
    manglings = [PETER_VKEY[i:j] for i in range(n + 1) for j in range(i + 1, n + 1)]
    manglings.remove(PETER_VKEY)
    manglings += [PETER_VKEY[:i] + chr(ord(c) + 1) + PETER_VKEY[i + 1 :] for i, c in enumerate(PETER_VKEY)]
    for vkey in manglings:
        with pytest.raises(NoteError):
            NoteVerifier.from_string(vkey)
