"""The changelog pack's ZIP, checked the way VERIFY.md tells an auditor to check it, and the
population CSV."""

import csv
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from dataclasses import replace
from pathlib import Path

import pytest

from packs.render.archive import (
    POPULATION_COLUMNS,
    PackError,
    build_changelog_zip,
    changelog_manifest,
    changelog_members,
    standalone_verifier_sources,
    write_population_csv,
)
from packs.render.data import ChangelogPack, ChangeRow, PopulationPack
from packs.render.howto import SIGNATURE_VALID
from packs.render.pdf.changelog import render_changelog_pdf
from packs.render.sample import SAMPLE_SCRIPT
from releasegate.pdfsign import certificate_sha256, generate_development_certificate, sign_manifest, sign_pdf
from tests.packs.support import change_rows, make_changelog_pack, make_population_pack, pdfsig
from tests.shared_data import MERKLE_VECTORS_DIR

VENV_BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def built() -> tuple[ChangelogPack, dict[str, bytes], bytes, bytes]:
    """The pack, its evidence files, the signing certificate and the ZIP."""
    pack, evidence, _ = make_changelog_pack()
    key, cert = generate_development_certificate("Release Gate evidence packs (development)", "Example Bank plc")
    pack = replace(pack, signing_certificate_sha256=certificate_sha256(cert))
    vectors = {p.name: p.read_bytes() for p in MERKLE_VECTORS_DIR.iterdir() if p.is_file()}
    pack, archive = bound_zip(pack, evidence, key, cert, vectors=vectors)
    return pack, evidence, cert, archive


def bound_zip(
    pack: ChangelogPack, evidence: dict[str, bytes], key: bytes, cert: bytes, vectors: dict[str, bytes] | None = None
) -> tuple[ChangelogPack, bytes]:
    """As the service builds it: the manifest first, its hash printed in the PDF, the PDF
    signed, the manifest signed with the same key."""
    members = changelog_members(
        pack=pack,
        evidence_files=evidence,
        verifier_sources=standalone_verifier_sources(),
        vectors=vectors,
        signing_certificate_pem=cert,
    )
    manifest = changelog_manifest(pack, members)
    pack = replace(pack, manifest_sha256=hashlib.sha256(manifest).hexdigest())
    signed = sign_pdf(render_changelog_pdf(pack), key_pem=key, cert_pem=cert, reason="Evidence pack")
    archive = build_changelog_zip(
        pack=pack,
        signed_pdf=signed,
        evidence_files=evidence,
        verifier_sources=standalone_verifier_sources(),
        vectors=vectors,
        signing_certificate_pem=cert,
        manifest_signature=sign_manifest(manifest, key_pem=key, cert_pem=cert),
    )
    return pack, archive


@pytest.fixture
def unpacked(built: tuple[ChangelogPack, dict[str, bytes], bytes, bytes], tmp_path: Path) -> Path:
    folder = tmp_path / "pack"
    with zipfile.ZipFile(io.BytesIO(built[3])) as archive:
        archive.extractall(folder)
    return folder


def _verifier(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tlog.verifier", *args], cwd=cwd, capture_output=True, text=True, check=False
    )


def _rebuild(pack: ChangelogPack, evidence: dict[str, bytes]) -> bytes:
    return build_changelog_zip(
        pack=replace(pack, manifest_sha256=""),  # another pack: not the manifest the fixture's PDF prints
        signed_pdf=b"%PDF",
        evidence_files=evidence,
        verifier_sources=standalone_verifier_sources(),
    )


# --- Contents ------------------------------------------------------------------------------


def test_the_zip_holds_the_pdf_evidence_events_checkpoint_proofs_key_verifier_and_manifest(
    built: tuple[ChangelogPack, dict[str, bytes], bytes, bytes], unpacked: Path
) -> None:
    pack, evidence, cert, _ = built
    names = {str(p.relative_to(unpacked)) for p in unpacked.rglob("*") if p.is_file()}
    expected_proofs = {f"proofs/{e.leaf_index}.json" for e in pack.audit_events}
    assert expected_proofs <= names
    assert set(evidence) <= names
    assert {
        "pack.pdf",
        "events.jsonl",
        "checkpoint.txt",
        "public-key.txt",
        "signing-certificate.pem",
        "manifest.json",
        "VERIFY.md",
        "verifier/tlog/__init__.py",
        "verifier/tlog/verifier.py",
        "verifier/tlog/merkle.py",
        "verifier/tlog/note.py",
        "verifier/tlog/canonical.py",
        "verifier/tlog/cosignature.py",
        "verifier/vectors/inclusion.json",
    } <= names
    assert all((unpacked / name).read_bytes() == data for name, data in evidence.items())
    assert (unpacked / "checkpoint.txt").read_text() == pack.checkpoint
    assert (unpacked / "public-key.txt").read_text() == pack.public_key + "\n"
    assert (unpacked / "signing-certificate.pem").read_bytes() == cert


def test_the_manifest_lists_every_other_file_and_every_hash_matches(unpacked: Path) -> None:
    manifest = json.loads((unpacked / "manifest.json").read_text())
    files = {str(p.relative_to(unpacked)) for p in unpacked.rglob("*") if p.is_file()} - {
        "manifest.json",
        "manifest.sig",
        "pack.pdf",  # which prints the manifest's hash instead
    }
    assert set(manifest["files"]) == files
    for name, digest in manifest["files"].items():
        assert hashlib.sha256((unpacked / name).read_bytes()).hexdigest() == digest, name
    assert manifest["format"] == "releasegate/evidence-pack/v1"
    assert manifest["checkpoint_size"] == 23


def test_each_proof_is_the_json_the_verifier_reads(
    built: tuple[ChangelogPack, dict[str, bytes], bytes, bytes], unpacked: Path
) -> None:
    pack = built[0]
    for event in pack.audit_events:
        proof = json.loads((unpacked / f"proofs/{event.leaf_index}.json").read_text())
        assert proof == {
            "leaf_index": event.leaf_index,
            "tree_size": pack.checkpoint_size,
            "leaf_hash": event.leaf_hash,
            "proof": list(event.proof),
            "event": event.event,
        }


def test_events_jsonl_is_the_canonical_events_one_per_line_in_leaf_order(
    built: tuple[ChangelogPack, dict[str, bytes], bytes, bytes], unpacked: Path
) -> None:
    events = sorted(built[0].audit_events, key=lambda e: e.leaf_index)
    assert (unpacked / "events.jsonl").read_bytes() == b"".join(e.event.encode() + b"\n" for e in events)


def test_the_same_inputs_give_the_same_zip_with_sorted_entries_and_the_manifest_last(
    built: tuple[ChangelogPack, dict[str, bytes], bytes, bytes],
) -> None:
    pack, evidence, cert, archive = built
    signed = zipfile.ZipFile(io.BytesIO(archive)).read("pack.pdf")
    vectors = {p.name: p.read_bytes() for p in MERKLE_VECTORS_DIR.iterdir() if p.is_file()}
    again = build_changelog_zip(
        pack=pack,
        signed_pdf=signed,
        evidence_files=dict(reversed(list(evidence.items()))),
        verifier_sources=standalone_verifier_sources(),
        vectors=vectors,
        signing_certificate_pem=cert,
        manifest_signature=zipfile.ZipFile(io.BytesIO(archive)).read("manifest.sig"),
    )
    assert again == archive
    infos = zipfile.ZipFile(io.BytesIO(archive)).infolist()
    names = [info.filename for info in infos]
    assert names[-2:] == ["manifest.json", "manifest.sig"]
    assert names[:-2] == sorted(names[:-2])
    assert {info.date_time for info in infos} == {(2026, 11, 28, 10, 0, 0)}


# --- Verifying it as VERIFY.md says ----------------------------------------------------------


def test_every_proof_verifies_with_the_standalone_verifier_run_from_the_unpacked_zip(
    built: tuple[ChangelogPack, dict[str, bytes], bytes, bytes], unpacked: Path
) -> None:
    verifier = unpacked / "verifier"
    where = subprocess.run(
        [sys.executable, "-c", "import tlog.verifier; print(tlog.verifier.__file__)"],
        cwd=verifier,
        capture_output=True,
        text=True,
        check=True,
    )
    assert Path(where.stdout.strip()) == verifier / "tlog" / "verifier.py"  # the shipped copy, not the project's
    for event in built[0].audit_events:
        args = ["--key", "../public-key.txt", "--checkpoint", "../checkpoint.txt", f"../proofs/{event.leaf_index}.json"]
        result = _verifier("inclusion", *args, cwd=verifier)
        assert result.returncode == 0, result.stderr
        assert f"OK: leaf {event.leaf_index} is in the tree of size 23" in result.stdout
        assert hashlib.sha256(event.event.encode()).hexdigest() in result.stdout


def test_the_checkpoint_verifies_and_the_verifier_passes_its_vectors_from_the_zip(unpacked: Path) -> None:
    verifier = unpacked / "verifier"
    checkpoint = _verifier("checkpoint", "--key", "../public-key.txt", "../checkpoint.txt", cwd=verifier)
    assert checkpoint.returncode == 0, checkpoint.stderr
    assert "size: 23" in checkpoint.stdout
    vectors = _verifier("vectors", "vectors", cwd=verifier)
    assert vectors.returncode == 0, vectors.stderr


def test_a_changed_event_in_a_proof_file_fails_verification(unpacked: Path) -> None:
    path = next((unpacked / "proofs").glob("*.json"))
    proof = json.loads(path.read_text())
    proof["event"] = proof["event"].replace('"actor_id":7', '"actor_id":8').replace('"actor_id":3', '"actor_id":8')
    path.write_text(json.dumps(proof))
    result = _verifier(
        "inclusion",
        "--key",
        "../public-key.txt",
        "--checkpoint",
        "../checkpoint.txt",
        f"../proofs/{path.name}",
        cwd=unpacked / "verifier",
    )
    assert result.returncode == 1
    assert "leaf_hash is not the hash of the event" in result.stderr


def _commands(verify_md: str) -> list[str]:
    blocks = re.findall(r"```sh\n(.*?)```", verify_md, re.DOTALL)
    return [line for block in blocks for line in block.splitlines() if line.strip()]


def test_the_commands_in_verify_md_run_and_pass(
    built: tuple[ChangelogPack, dict[str, bytes], bytes, bytes], unpacked: Path
) -> None:
    """Every command of VERIFY.md after unpacking, as written, with python3 being this Python
    (it has cryptography). jq, pdfsig and openssl are used when they are installed."""
    commands = _commands((unpacked / "VERIFY.md").read_text())
    assert commands[0].startswith("unzip ")
    skip = {
        "unzip": True,
        "jq": not shutil.which("jq"),
        "pdfsig": not (shutil.which("pdfsig") and shutil.which("openssl")),
    }
    script = ["set -eu", *(c for c in commands[1:] if not skip.get(c.split()[0], False))]
    env = {**os.environ, "PATH": f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}"}
    result = subprocess.run(
        ["bash", "-c", "\n".join(script)], cwd=unpacked, env=env, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "OK: 28 files match" in result.stdout  # the manifest check, before pdfsig -dump adds a file
    assert "OK: every proof verified" in result.stdout
    assert "OK: all vectors pass" in result.stdout
    assert "OK: 10 events, each the event of its proof" in result.stdout
    if not skip["pdfsig"]:
        assert SIGNATURE_VALID in result.stdout
        fingerprint = built[0].signing_certificate_sha256.upper()
        assert ":".join(fingerprint[i : i + 2] for i in range(0, 64, 2)) in result.stdout


def test_the_manifest_check_in_verify_md_finds_a_changed_file_and_an_added_one(unpacked: Path) -> None:
    check = next(c for c in _commands((unpacked / "VERIFY.md").read_text()) if "manifest.json" in c and "python3" in c)
    evidence = next((unpacked / "evidence").iterdir())
    evidence.write_bytes(evidence.read_bytes() + b" ")
    (unpacked / "extra.txt").write_text("not from the bank")
    env = {**os.environ, "PATH": f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}"}
    result = subprocess.run(["bash", "-c", check], cwd=unpacked, env=env, capture_output=True, text=True, check=False)
    assert result.returncode == 1
    assert f"MISMATCH evidence/{evidence.name}" in result.stdout
    assert "NOT IN MANIFEST extra.txt" in result.stdout


def test_the_pdf_in_the_zip_is_signed(unpacked: Path, tmp_path: Path) -> None:
    result = pdfsig((unpacked / "pack.pdf").read_bytes(), tmp_path)
    assert SIGNATURE_VALID in result.stdout


# --- Refusing packs that would not verify -------------------------------------------------------


def test_a_pack_whose_proof_does_not_lead_to_the_checkpoint_is_refused(
    built: tuple[ChangelogPack, dict[str, bytes], bytes, bytes],
) -> None:
    pack, evidence, _, _ = built
    event = pack.audit_events[3]
    bad = replace(event, proof=[*event.proof[:-1], "00" * 32])
    with pytest.raises(PackError, match=f"leaf {event.leaf_index}: the inclusion proof does not verify"):
        _rebuild(replace(pack, audit_events=[*pack.audit_events[:3], bad, *pack.audit_events[4:]]), evidence)


def test_a_pack_whose_event_is_not_its_leaf_is_refused(
    built: tuple[ChangelogPack, dict[str, bytes], bytes, bytes],
) -> None:
    pack, evidence, _, _ = built
    bad = replace(pack.audit_events[0], event=pack.audit_events[1].event)
    with pytest.raises(PackError, match="the leaf hash is not the hash of the event"):
        _rebuild(replace(pack, audit_events=[bad, *pack.audit_events[1:]]), evidence)


def test_a_checkpoint_signed_by_another_key_or_of_another_size_is_refused(
    built: tuple[ChangelogPack, dict[str, bytes], bytes, bytes],
) -> None:
    pack, evidence, _, _ = built
    other = make_changelog_pack()[0]
    with pytest.raises(PackError, match="does not verify with the pack's public key"):
        _rebuild(replace(pack, public_key=other.public_key), evidence)
    with pytest.raises(PackError, match="the checkpoint is of size 23, the pack says 24"):
        _rebuild(replace(pack, checkpoint_size=24), evidence)


def test_evidence_files_must_be_exactly_the_packs_with_the_hashes_it_records(
    built: tuple[ChangelogPack, dict[str, bytes], bytes, bytes],
) -> None:
    pack, evidence, _, _ = built
    name = pack.evidence[0].archive_name
    with pytest.raises(PackError, match="does not have the SHA-256 the pack records"):
        _rebuild(pack, {**evidence, name: evidence[name] + b"\n"})
    with pytest.raises(PackError, match="is missing"):
        _rebuild(pack, {k: v for k, v in evidence.items() if k != name})
    with pytest.raises(PackError, match=r"evidence files not in the pack: evidence/stray\.txt"):
        _rebuild(pack, {**evidence, "evidence/stray.txt": b"x"})
    escaping = replace(pack.evidence[0], archive_name="evidence/../../etc/passwd")
    with pytest.raises(PackError, match="not a plain relative path"):
        _rebuild(replace(pack, evidence=[escaping, *pack.evidence[1:]]), evidence)


# --- The population CSV ------------------------------------------------------------------------


def _csv(pack: PopulationPack) -> tuple[str, tuple[int, int]]:
    out = io.StringIO(newline="")
    counts = write_population_csv(pack, out)
    return out.getvalue(), counts


@pytest.mark.requirement("PR-16")
def test_the_population_csv_has_a_change_row_per_change_and_a_deployment_row_per_deployment() -> None:
    text, counts = _csv(make_population_pack())
    assert counts == (40, 50)
    assert text.startswith(",".join(POPULATION_COLUMNS) + "\r\n")
    assert text.count("\r\n") == 1 + 40 + 50
    rows = list(csv.DictReader(io.StringIO(text, newline="")))
    assert [r["record"] for r in rows] == ["change"] * 40 + ["deployment"] * 50
    first = rows[0]
    assert first["changelog_id"] == "c0000000-5d2a-4c7e-9a41-8f2d6c1b7e90"
    assert (first["approval_before_deploy"], first["separation_of_duties"], first["rollback_plan"]) == (
        "false",
        "false",
        "true",
    )
    assert first["deployment_id"] == ""
    assert first["unauthorised"] == ""
    never_deployed = rows[9]
    assert never_deployed["approval_before_deploy"] == ""
    assert never_deployed["first_deployed_at"] == ""
    unauthorised = rows[40]
    assert (unauthorised["unauthorised"], unauthorised["changelog_id"]) == ("true", "")


def test_the_population_csv_quotes_what_needs_quoting_and_defuses_spreadsheet_formulas() -> None:
    row = next(change_rows(1))
    awkward = replace(row, service='pay, "ments"', domain='=HYPERLINK("http://evil")', kind="line\nbreak")
    text, _ = _csv(replace(make_population_pack(), changes=[awkward], deployments=[]))
    assert '"pay, ""ments"""' in text
    parsed = next(iter(csv.DictReader(io.StringIO(text, newline=""))))
    assert parsed["domain"] == '\'=HYPERLINK("http://evil")'
    assert parsed["kind"] == "line\nbreak"


@pytest.mark.requirement("PR-17")
def test_the_sample_can_be_redone_from_the_csv_with_the_script_the_pack_prints(tmp_path: Path) -> None:
    pack = make_population_pack(changes=300, deployments=5, seed=424242, size=12)
    (tmp_path / "population.csv").write_text(_csv(replace(pack, changes=change_rows(300)))[0], newline="")
    script = SAMPLE_SCRIPT.format(seed=pack.sample_seed, size=pack.sample_size)
    env = {**os.environ, "PATH": f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}"}
    result = subprocess.run(["bash", "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, check=True)
    assert result.stdout.split() == list(pack.sample)
    assert len(pack.sample) == 12


def test_change_rows_are_read_once_in_a_single_pass() -> None:
    pulled: list[ChangeRow] = []

    def rows() -> object:
        for row in change_rows(5):
            pulled.append(row)
            yield row

    _, counts = _csv(replace(make_population_pack(), changes=rows()))
    assert counts[0] == 5
    assert len(pulled) == 5


def test_evidence_names_with_spaces_and_accents_are_kept_and_checked(
    built: tuple[ChangelogPack, dict[str, bytes], bytes, bytes], tmp_path: Path
) -> None:
    pack, evidence, _, _ = built
    item = pack.evidence[0]
    renamed = replace(item, archive_name=f"evidence/{item.sha256}-staging sanity réglée.xml")
    files = {
        renamed.archive_name: evidence[item.archive_name],
        **{e.archive_name: evidence[e.archive_name] for e in pack.evidence[1:]},
    }
    archive = _rebuild(replace(pack, evidence=[renamed, *pack.evidence[1:]]), files)
    with zipfile.ZipFile(io.BytesIO(archive)) as opened:
        opened.extractall(tmp_path)
    assert (tmp_path / renamed.archive_name).read_bytes() == evidence[item.archive_name]
    check = next(c for c in _commands((tmp_path / "VERIFY.md").read_text()) if "manifest.json" in c and "python3" in c)
    env = {**os.environ, "PATH": f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}"}
    result = subprocess.run(["bash", "-c", check], cwd=tmp_path, env=env, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_change_without_audit_events_gets_a_pack_that_says_so(
    built: tuple[ChangelogPack, dict[str, bytes], bytes, bytes], tmp_path: Path
) -> None:
    pack, evidence, _, _ = built
    with zipfile.ZipFile(io.BytesIO(_rebuild(replace(pack, audit_events=[]), evidence))) as opened:
        names = opened.namelist()
        verify = opened.read("VERIFY.md").decode()
    assert not any(name.startswith("proofs/") for name in names)
    assert "no audit events in the log up to the checkpoint" in verify
    assert "proofs/0.json" not in verify


# --- The pack as a whole, with an independently installed verifier --------------------------


def _verify_pack(folder: Path) -> subprocess.CompletedProcess[str]:
    """The repository's verifier (installed independently of the ZIP), not the ZIP's copy."""
    return subprocess.run(
        [sys.executable, "-m", "tlog.verifier", "pack", str(folder)],
        cwd=Path(__file__).resolve().parents[2],
        capture_output=True,
        text=True,
        check=False,
    )


def _rewrite_manifest(folder: Path) -> None:
    manifest = json.loads((folder / "manifest.json").read_text())
    for name in manifest["files"]:
        manifest["files"][name] = hashlib.sha256((folder / name).read_bytes()).hexdigest()
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")


def test_an_intact_pack_verifies_as_a_whole(unpacked: Path) -> None:
    result = _verify_pack(unpacked)

    assert result.returncode == 0, result.stderr
    assert "manifest signed by the pack certificate, 28 files match, the PDF is bound to them" in result.stdout


def test_the_pdf_prints_the_manifest_hash(unpacked: Path, tmp_path: Path) -> None:
    from tests.packs.support import pdftotext

    digest = hashlib.sha256((unpacked / "manifest.json").read_bytes()).hexdigest()

    assert digest in pdftotext((unpacked / "pack.pdf").read_bytes(), tmp_path)


def test_an_edited_member_with_a_recomputed_manifest_and_a_doctored_verifier_fails(unpacked: Path) -> None:
    events = unpacked / "events.jsonl"
    events.write_text(events.read_text().replace("test", "tset", 1))
    (unpacked / "verifier" / "tlog" / "verifier.py").write_text("print('OK')\n")
    _rewrite_manifest(unpacked)

    result = _verify_pack(unpacked)

    assert result.returncode == 1
    assert "manifest.sig is not a signature of manifest.json by the pack certificate" in result.stderr


def test_a_manifest_re_signed_with_another_key_does_not_match_the_pdf(unpacked: Path) -> None:
    events = unpacked / "events.jsonl"
    events.write_text(events.read_text().replace("test", "tset", 1))
    key, cert = generate_development_certificate("Mallory", "Mallory plc")
    (unpacked / "signing-certificate.pem").write_bytes(cert)
    _rewrite_manifest(unpacked)
    (unpacked / "manifest.sig").write_bytes(
        sign_manifest((unpacked / "manifest.json").read_bytes(), key_pem=key, cert_pem=cert)
    )

    result = _verify_pack(unpacked)

    assert result.returncode == 1
    assert "the PDF does not print this manifest's SHA-256" in result.stderr
