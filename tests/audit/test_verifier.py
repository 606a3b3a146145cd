"""The standalone verifier CLI, run as an auditor would: ``python -m tlog.verifier``."""

import json
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from tests.shared_data import MERKLE_VECTORS_DIR
from tlog.canonical import canonical_json
from tlog.merkle import Coord, Frontier, consistency_proof, inclusion_proof, leaf_hash
from tlog.note import Checkpoint, NoteSigner, generate_signer

REPO = Path(__file__).resolve().parents[2]
ORIGIN = "releasegate.example/audit"


def run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tlog.verifier", *args],
        cwd=REPO,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


class Log:
    """A small log built with the real Merkle and note code, as the service will."""

    def __init__(self, signer: NoteSigner, n: int) -> None:
        self.signer = signer
        self.events = [
            canonical_json({"seq": i, "action": "deploy", "note": f"r\u00e9lease {i}"}).decode() for i in range(n)
        ]
        self.nodes: dict[Coord, bytes] = {}
        self.roots: list[bytes] = []
        frontier = Frontier()
        self.roots.append(frontier.root())
        for i, event in enumerate(self.events):
            h = leaf_hash(event.encode("utf-8"))
            self.nodes[(0, i)] = h
            for level, index, node in frontier.append(h):
                self.nodes[(level, index)] = node
            self.roots.append(frontier.root())

    def fetch(self, coords: Sequence[Coord]) -> Mapping[Coord, bytes]:
        return {c: self.nodes[c] for c in coords}

    def checkpoint(self, size: int) -> str:
        return self.signer.sign(Checkpoint(ORIGIN, size, self.roots[size]).body())

    def inclusion(self, index: int, size: int, with_event: bool = True) -> dict[str, Any]:
        proof: dict[str, Any] = {
            "leaf_index": index,
            "tree_size": size,
            "leaf_hash": self.nodes[(0, index)].hex(),
            "proof": [p.hex() for p in inclusion_proof(index, size, self.fetch)],
        }
        if with_event:
            proof["event"] = self.events[index]
        return proof

    def consistency(self, size1: int, size2: int) -> dict[str, Any]:
        return {
            "first_size": size1,
            "second_size": size2,
            "proof": [p.hex() for p in consistency_proof(size1, size2, self.fetch)],
        }


@pytest.fixture(scope="module")
def log() -> Log:
    return Log(generate_signer(ORIGIN), 21)


@pytest.fixture
def files(tmp_path: Path, log: Log) -> dict[str, Path]:
    paths = {
        "key": tmp_path / "log.vkey",
        "cp13": tmp_path / "cp13.txt",
        "cp21": tmp_path / "cp21.txt",
    }
    paths["key"].write_text(log.signer.verifier_key() + "\n")
    paths["cp13"].write_text(log.checkpoint(13))
    paths["cp21"].write_text(log.checkpoint(21))
    return paths


def write_json(tmp_path: Path, name: str, data: Any) -> str:
    path = tmp_path / name
    path.write_text(json.dumps(data))
    return str(path)


# --- checkpoint -------------------------------------------------------------------------


def test_it_verifies_a_signed_checkpoint_and_prints_its_contents(files: dict[str, Path], log: Log) -> None:
    result = run("checkpoint", "--key", str(files["key"]), str(files["cp21"]))
    assert result.returncode == 0, result.stderr
    assert f"origin: {ORIGIN}" in result.stdout
    assert "size: 21" in result.stdout
    assert f"root: {log.roots[21].hex()}" in result.stdout


def test_it_reads_the_checkpoint_from_stdin(files: dict[str, Path], log: Log) -> None:
    result = run("checkpoint", "--key", str(files["key"]), "-", stdin=log.checkpoint(13))
    assert result.returncode == 0, result.stderr
    assert "size: 13" in result.stdout


@pytest.mark.requirement("PR-10")
def test_it_refuses_a_tampered_checkpoint_with_exit_1(files: dict[str, Path]) -> None:
    tampered = files["cp21"].read_text().replace("\n21\n", "\n22\n")
    files["cp21"].write_text(tampered)
    result = run("checkpoint", "--key", str(files["key"]), str(files["cp21"]))
    assert result.returncode == 1
    assert "invalid signature" in result.stderr


def test_it_refuses_a_checkpoint_signed_by_another_key_with_exit_1(files: dict[str, Path], tmp_path: Path) -> None:
    other = tmp_path / "other.vkey"
    other.write_text(generate_signer(ORIGIN).verifier_key())
    result = run("checkpoint", "--key", str(other), str(files["cp21"]))
    assert result.returncode == 1
    assert "not signed by" in result.stderr


def test_it_refuses_an_unsigned_checkpoint_with_exit_1(files: dict[str, Path], tmp_path: Path, log: Log) -> None:
    bare = tmp_path / "bare.txt"
    bare.write_text(Checkpoint(ORIGIN, 21, log.roots[21]).body())
    result = run("checkpoint", "--key", str(files["key"]), str(bare))
    assert result.returncode == 1


def test_it_exits_2_on_an_unusable_key_or_missing_file(files: dict[str, Path], tmp_path: Path) -> None:
    bad_key = tmp_path / "bad.vkey"
    bad_key.write_text("not a key\n")
    assert run("checkpoint", "--key", str(bad_key), str(files["cp21"])).returncode == 2
    missing = str(tmp_path / "missing.txt")
    assert run("checkpoint", "--key", str(files["key"]), missing).returncode == 2


# --- inclusion --------------------------------------------------------------------------


def test_it_verifies_an_inclusion_proof_with_its_event_against_a_checkpoint(
    files: dict[str, Path], tmp_path: Path, log: Log
) -> None:
    proof = write_json(tmp_path, "p.json", log.inclusion(7, 21))
    result = run("inclusion", "--key", str(files["key"]), "--checkpoint", str(files["cp21"]), proof)
    assert result.returncode == 0, result.stderr
    assert "OK: leaf 7" in result.stdout


def test_it_verifies_a_list_of_inclusion_proofs(files: dict[str, Path], tmp_path: Path, log: Log) -> None:
    proofs = [log.inclusion(i, 13, with_event=i % 2 == 0) for i in range(13)]
    path = write_json(tmp_path, "all.json", proofs)
    result = run("inclusion", "--key", str(files["key"]), "--checkpoint", str(files["cp13"]), path)
    assert result.returncode == 0, result.stderr
    assert "13 inclusion proofs verified" in result.stdout


def test_it_verifies_an_inclusion_proof_against_a_bare_root_and_size(tmp_path: Path, log: Log) -> None:
    proof = write_json(tmp_path, "p.json", log.inclusion(0, 21, with_event=False))
    result = run("inclusion", "--root", log.roots[21].hex(), "--size", "21", proof)
    assert result.returncode == 0, result.stderr
    result = run("inclusion", "--root", log.roots[20].hex(), "--size", "21", proof)
    assert result.returncode == 1


@pytest.mark.parametrize(
    "tamper",
    [
        lambda p: p.update(leaf_hash=leaf_hash(b"forged").hex(), event=None),
        lambda p: p.update(event=p["event"].replace("deploy", "rollback")),
        lambda p: p.update(event=p["event"].replace(",", ", ", 1)),  # not canonical
        lambda p: p.update(leaf_index=p["leaf_index"] + 1),
        lambda p: p.update(proof=p["proof"][:-1]),
        lambda p: p.update(proof=[*p["proof"], p["proof"][0]]),
        lambda p: p.update(proof=[p["proof"][0][:-2] + "00", *p["proof"][1:]]),
        lambda p: p.update(proof=[p["proof"][0][:-2], *p["proof"][1:]]),  # 31 bytes
        lambda p: p.update(tree_size=13),  # not the checkpoint's size
    ],
)
@pytest.mark.requirement("PR-10")
def test_it_refuses_a_tampered_inclusion_proof_with_exit_1(
    files: dict[str, Path], tmp_path: Path, log: Log, tamper: Any
) -> None:
    proof = log.inclusion(7, 21)
    tamper(proof)
    path = write_json(tmp_path, "p.json", proof)
    result = run("inclusion", "--key", str(files["key"]), "--checkpoint", str(files["cp21"]), path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stderr.startswith("FAILED")


def test_one_bad_proof_in_a_list_fails_the_whole_run(files: dict[str, Path], tmp_path: Path, log: Log) -> None:
    proofs = [log.inclusion(i, 21) for i in range(3)]
    proofs[1]["leaf_index"] = 2
    path = write_json(tmp_path, "all.json", proofs)
    result = run("inclusion", "--key", str(files["key"]), "--checkpoint", str(files["cp21"]), path)
    assert result.returncode == 1
    assert "proof 1" in result.stderr


@pytest.mark.parametrize(
    "content",
    [
        "{not json",
        json.dumps({"leaf_index": 0, "tree_size": 21, "proof": []}),
        json.dumps({"leaf_index": "0", "tree_size": 21, "leaf_hash": "00" * 32, "proof": []}),
        json.dumps({"leaf_index": 0, "tree_size": 21, "leaf_hash": "zz" * 32, "proof": []}),
        json.dumps({"leaf_index": 0, "tree_size": 21, "leaf_hash": "00" * 32, "proof": ["0"]}),
        json.dumps({"leaf_index": 0, "tree_size": 21, "leaf_hash": "00" * 32, "proof": "00"}),
        json.dumps({"leaf_index": -1, "tree_size": 21, "leaf_hash": "00" * 32, "proof": []}),
        json.dumps([]),
    ],
)
def test_it_exits_2_on_malformed_inclusion_input(files: dict[str, Path], tmp_path: Path, content: str) -> None:
    path = tmp_path / "p.json"
    path.write_text(content)
    result = run("inclusion", "--key", str(files["key"]), "--checkpoint", str(files["cp21"]), str(path))
    assert result.returncode == 2, result.stdout + result.stderr


def test_it_exits_2_when_inclusion_modes_are_mixed_or_missing(files: dict[str, Path], tmp_path: Path, log: Log) -> None:
    proof = write_json(tmp_path, "p.json", log.inclusion(7, 21))
    root = log.roots[21].hex()
    key, cp = str(files["key"]), str(files["cp21"])
    assert run("inclusion", proof).returncode == 2
    assert run("inclusion", "--key", key, proof).returncode == 2
    assert run("inclusion", "--root", root, proof).returncode == 2
    assert run("inclusion", "--key", key, "--checkpoint", cp, "--root", root, proof).returncode == 2
    assert run("inclusion", "--root", "abc", "--size", "21", proof).returncode == 2
    assert run("inclusion", "--root", root, "--size", "021", proof).returncode == 2


# --- consistency ------------------------------------------------------------------------


def test_it_verifies_a_consistency_proof_between_two_checkpoints(
    files: dict[str, Path], tmp_path: Path, log: Log
) -> None:
    proof = write_json(tmp_path, "c.json", log.consistency(13, 21))
    key, old, new = str(files["key"]), str(files["cp13"]), str(files["cp21"])
    result = run("consistency", "--key", key, "--old", old, "--new", new, proof)
    assert result.returncode == 0, result.stderr
    assert "extends" in result.stdout


def test_it_verifies_a_consistency_proof_between_bare_roots(tmp_path: Path, log: Log) -> None:
    proof = write_json(tmp_path, "c.json", log.consistency(5, 16))
    args = ["--old-root", log.roots[5].hex(), "--old-size", "5"]
    args += ["--new-root", log.roots[16].hex(), "--new-size", "16"]
    assert run("consistency", *args, proof).returncode == 0


@pytest.mark.parametrize(
    "tamper",
    [
        lambda p: p.update(proof=p["proof"][:-1]),
        lambda p: p.update(proof=[p["proof"][-1], *p["proof"][:-1]]),
        lambda p: p.update(proof=[("ff" + p["proof"][0][2:]), *p["proof"][1:]]),
        lambda p: p.update(first_size=12),
        lambda p: p.update(second_size=20),
        lambda p: p.update(proof=[]),
    ],
)
@pytest.mark.requirement("PR-10")
def test_it_refuses_a_tampered_consistency_proof_with_exit_1(
    files: dict[str, Path], tmp_path: Path, log: Log, tamper: Any
) -> None:
    proof = log.consistency(13, 21)
    tamper(proof)
    path = write_json(tmp_path, "c.json", proof)
    key, old, new = str(files["key"]), str(files["cp13"]), str(files["cp21"])
    result = run("consistency", "--key", key, "--old", old, "--new", new, path)
    assert result.returncode == 1, result.stdout + result.stderr


@pytest.mark.requirement("PR-10")
def test_it_refuses_checkpoints_given_in_the_wrong_order_with_exit_1(
    files: dict[str, Path], tmp_path: Path, log: Log
) -> None:
    proof = write_json(tmp_path, "c.json", log.consistency(13, 21))
    key, old, new = str(files["key"]), str(files["cp13"]), str(files["cp21"])
    assert run("consistency", "--key", key, "--old", new, "--new", old, proof).returncode == 1


def test_it_refuses_checkpoints_of_different_logs_with_exit_1(files: dict[str, Path], tmp_path: Path, log: Log) -> None:
    other = tmp_path / "other.txt"
    other.write_text(log.signer.sign(Checkpoint("other.example/log", 13, log.roots[13]).body()))
    proof = write_json(tmp_path, "c.json", log.consistency(13, 21))
    key, new = str(files["key"]), str(files["cp21"])
    assert run("consistency", "--key", key, "--old", str(other), "--new", new, proof).returncode == 1


def test_it_exits_2_on_malformed_consistency_input(files: dict[str, Path], tmp_path: Path, log: Log) -> None:
    key, old, new = str(files["key"]), str(files["cp13"]), str(files["cp21"])
    bad = write_json(tmp_path, "c.json", {"first_size": 13, "proof": []})
    assert run("consistency", "--key", key, "--old", old, "--new", new, bad).returncode == 2
    good = write_json(tmp_path, "g.json", log.consistency(13, 21))
    assert run("consistency", "--key", key, "--old", old, good).returncode == 2
    assert run("consistency", "--old-root", "00" * 32, "--old-size", "1", good).returncode == 2


# --- vectors and usage ------------------------------------------------------------------


def test_the_vectors_subcommand_passes_on_the_shared_vectors() -> None:
    result = run("vectors", str(MERKLE_VECTORS_DIR))
    assert result.returncode == 0, result.stderr
    assert "OK: all vectors pass" in result.stdout
    assert "inclusion.json: 98 cases" in result.stdout


def test_the_vectors_subcommand_fails_when_a_vector_is_wrongly_judged(tmp_path: Path) -> None:
    for name in ("roots.json", "inclusion.json", "consistency.json"):
        shutil.copyfile(MERKLE_VECTORS_DIR / name, tmp_path / name)  # the shared copy is read-only
    cases = json.loads((tmp_path / "consistency.json").read_text())
    cases[0]["want_error"] = not cases[0]["want_error"]
    (tmp_path / "consistency.json").write_text(json.dumps(cases))
    result = run("vectors", str(tmp_path))
    assert result.returncode == 1
    assert "1 vector(s) failed" in result.stderr


def test_it_exits_2_on_usage_errors(tmp_path: Path) -> None:
    assert run().returncode == 2
    assert run("frobnicate").returncode == 2
    assert run("vectors", str(tmp_path / "nowhere")).returncode == 2
    assert run("checkpoint", "--key", "-", "-").returncode == 2


def test_the_verifier_never_imports_django() -> None:
    code = (
        "import sys, tlog.verifier\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
        "{'django', 'rest_framework', 'releasegate', 'approvals', 'changelogs', 'celery'})\n"
        "print(bad)\n"
        "sys.exit(1 if bad else 0)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr

    traced = subprocess.run(
        [
            sys.executable,
            "-X",
            "importtime",
            "-m",
            "tlog.verifier",
            "vectors",
            str(MERKLE_VECTORS_DIR),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    assert traced.returncode == 0, traced.stderr
    imported = [line.rsplit("|", 1)[-1].strip() for line in traced.stderr.splitlines()]
    assert "tlog.merkle" in imported
    assert not [m for m in imported if m.split(".")[0] == "django"]
