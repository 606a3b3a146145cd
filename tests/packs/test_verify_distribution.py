"""The verifier an auditor installs on their own: the ``releasegate-verify`` wheel, built from
this repository's verify/ and tlog/, installed into a fresh virtual environment with no Django
and none of the service's code, checks a real pack (with its witnesses' cosignatures), and
refuses the same ZIP with one edited member and a recomputed manifest."""

import hashlib
import io
import json
import shutil
import subprocess
import sys
import venv
import zipfile
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from audit.models import Checkpoint
from changelogs.models import Changelog
from tests.audit.support import ROOT
from tests.audit.test_witnesses import witnessed
from tests.conftest import Cast
from tests.packs.test_packs import deployed, download, request_pack
from tlog.cosignature import Cosigner

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("eager_celery"), pytest.mark.serial]

__all__ = ["deployed", "witnessed"]  # fixtures used here


@pytest.fixture(scope="module")
def installed_verifier(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``releasegate-verify`` in a virtual environment of its own: the wheel is built from a copy
    of verify/ and tlog/ (nothing else of the repository), then installed with pip."""
    work = tmp_path_factory.mktemp("verify-dist")
    source = work / "source"
    shutil.copytree(ROOT / "verify", source / "verify", ignore=shutil.ignore_patterns("build", "*.egg-info"))
    shutil.copytree(ROOT / "tlog", source / "tlog", ignore=shutil.ignore_patterns("__pycache__"))
    wheels = work / "wheels"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(wheels), str(source / "verify")],
        check=True,
        capture_output=True,
    )
    [wheel] = wheels.glob("releasegate_verify-*.whl")
    environment = work / "venv"
    venv.create(environment, with_pip=True)
    python = environment / "bin" / "python"
    subprocess.run([python, "-m", "pip", "install", "--quiet", str(wheel)], check=True, capture_output=True)
    installed = subprocess.run([python, "-m", "pip", "freeze"], check=True, capture_output=True, text=True).stdout
    names = {line.split("==")[0].split(" @ ")[0].lower() for line in installed.splitlines()}
    # cryptography and what it needs, nothing else: no Django, none of the service.
    assert names == {"releasegate-verify", "cryptography", "cffi", "pycparser"}, installed
    return environment / "bin" / "releasegate-verify"


def _verify(command: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    # cwd outside the repository: nothing of the service can be imported by accident.
    return subprocess.run([command, *args], cwd=cwd, capture_output=True, text=True, check=False)


def _doctored(original: bytes, member: str, new_bytes: bytes) -> bytes:
    """The ZIP with ``member`` replaced and manifest.json recomputed to match (manifest.sig kept)."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(original)) as source, zipfile.ZipFile(out, "w") as target:
        manifest = json.loads(source.read("manifest.json"))
        manifest["files"][member] = hashlib.sha256(new_bytes).hexdigest()
        for info in source.infolist():
            data = source.read(info.filename)
            if info.filename == member:
                data = new_bytes
            elif info.filename == "manifest.json":
                data = (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode()
            target.writestr(info.filename, data)
    return out.getvalue()


@pytest.mark.requirement("PR-18")
def test_the_independently_installed_verifier_checks_a_real_pack_and_refuses_a_doctored_one(
    installed_verifier: Path,
    witnessed: list[dict[str, str]],
    cast: Cast,
    deployed: Changelog,
    tmp_path: Path,
    settings: Any,
) -> None:
    from audit.sequencer import sequence_pending

    sequence_pending()  # the witnesses cosign the checkpoint the pack is built on
    job = request_pack(cast, {"kind": "changelog", "changelog": str(deployed.pk)})
    pack = tmp_path / "pack.zip"
    pack.write_bytes(download(cast, job, "pack.zip"))
    keys = []
    for number, config in enumerate(witnessed, 1):
        keys += ["--witness-key", str(tmp_path / f"w{number}.vkey")]
        (tmp_path / f"w{number}.vkey").write_text(config["key"] + "\n")

    # A checkpoint the auditor kept from earlier, and the consistency proof from it to the pack's.
    auditor = cast.session(cast.auditor)
    with zipfile.ZipFile(pack) as archive:
        packed = int(archive.read("checkpoint.txt").decode().split("\n")[1])
    kept = Checkpoint.objects.order_by("tree_size").first()
    assert kept is not None
    assert kept.tree_size < packed
    (tmp_path / "kept.txt").write_bytes(auditor.get(f"/api/v1/audit/checkpoints/{kept.tree_size}").content)
    proof = auditor.get(f"/api/v1/audit/consistency?first_size={kept.tree_size}&second_size={packed}")
    (tmp_path / "consistency.json").write_bytes(proof.content)
    kept_args = [
        "--trusted-checkpoint",
        str(tmp_path / "kept.txt"),
        "--consistency",
        str(tmp_path / "consistency.json"),
    ]

    result = _verify(installed_verifier, "pack", *keys, *kept_args, str(pack), cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    assert "the PDF is bound to them" in result.stdout
    assert "cosigned by 2 witnesses" in result.stdout
    assert f"the tree of size {packed} extends the tree of size {kept.tree_size}" in result.stdout

    with zipfile.ZipFile(pack) as archive:
        [evidence] = [name for name in archive.namelist() if name.startswith("evidence/")][:1]
        edited = archive.read(evidence) + b"\n# one more line\n"
    doctored = tmp_path / "doctored.zip"
    doctored.write_bytes(_doctored(pack.read_bytes(), evidence, edited))

    refused = _verify(installed_verifier, "pack", str(doctored), cwd=tmp_path)

    assert refused.returncode == 1, refused.stdout
    assert "manifest.sig is not a signature of manifest.json" in refused.stderr

    unknown = tmp_path / "other.vkey"
    unknown.write_text(Cosigner("witness.test/w9", Ed25519PrivateKey.generate()).verifier_key() + "\n")
    uncosigned = _verify(installed_verifier, "pack", "--witness-key", str(unknown), str(pack), cwd=tmp_path)
    assert uncosigned.returncode == 1
    assert "no valid cosignature by witness.test/w9" in uncosigned.stderr
