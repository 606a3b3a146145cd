"""The evidence pack carries each signed approval's assertion and the approver's public key,
and the standalone verifier in the pack checks them offline: this person's registered key
signed this content hash. Changing what was decided makes it fail."""

import io
import json
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Cast
from tests.factories import UserFactory, authority_give, seen_of
from tests.identity.soft_passkey import ORIGIN, RP_ID, decide_signed, passkey_registered
from tests.packs.test_packs import download, request_pack
from tests.releasegate.gate_support import PASSWORD, ready_changelog

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("eager_celery")]


def _verify(folder: Path, name: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tlog.verifier", "approvals", str(folder / name)],
        cwd=folder / "verifier",
        capture_output=True,
        text=True,
        check=False,
    )


def test_the_pack_verifier_checks_each_signed_approval_offline(cast: Cast, settings: Any, tmp_path: Path) -> None:
    settings.WEBAUTHN_RP_ID, settings.WEBAUTHN_ORIGINS = RP_ID, [ORIGIN]
    changelog = ready_changelog(cast, approved=False, risk_tier="high")
    second = UserFactory(username="approver-2")
    authority_give(domain=cast.payments, user=second)
    body = {"decision": "approved", "reason": "Rollback plan checked.", "password": PASSWORD, **seen_of(changelog)}
    for user in (cast.approver, second):
        client = cast.session(user)
        passkey = passkey_registered(client, cast.session(cast.admin))
        assert decide_signed(client, passkey, changelog.pk, body).status_code == 201

    job = request_pack(cast, {"kind": "changelog", "changelog": str(changelog.pk)})
    folder = tmp_path / "pack"
    with zipfile.ZipFile(io.BytesIO(download(cast, job, "pack.zip"))) as archive:
        archive.extractall(folder)
    signatures = json.loads((folder / "approval-signatures.json").read_text())
    assert sorted(item["approver"] for item in signatures) == ["approver", "approver-2"]
    assert all(item["content_hash"] == seen_of(changelog)["content_hash"] for item in signatures)
    assert "tlog.verifier approvals" in (folder / "VERIFY.md").read_text()

    verified = _verify(folder, "approval-signatures.json")
    assert verified.returncode == 0, verified.stderr
    assert verified.stdout.count("is signed by their passkey") == 2
    assert f"over content hash {seen_of(changelog)['content_hash']}" in verified.stdout

    for field, value in (("content_hash", "0" * 64), ("decision", "rejected"), ("reason", "Looks fine.")):
        tampered = [{**signatures[0], field: value}]
        (folder / "tampered.json").write_text(json.dumps(tampered))
        failed = _verify(folder, "tampered.json")
        assert failed.returncode == 1, (field, failed.stdout)
        assert "challenge" in failed.stderr
    # Another person's key does not verify this person's signature.
    swapped = [{**signatures[0], "public_key_pem": signatures[1]["public_key_pem"]}]
    (folder / "swapped.json").write_text(json.dumps(swapped))
    assert _verify(folder, "swapped.json").returncode == 1
