"""Importing the production settings in a fresh process, as a deployment would start."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Everything production requires, so that a test can leave out or change one thing.
PRODUCTION = {
    "PATH": "/usr/bin:/bin",
    "SECRET_KEY": "x" * 50,
    "AUDIT_SIGNING_KEY_FILE": "/run/secrets/audit-signing.key",
    "ORGANISATION_NAME": "Test Bank plc",
    "PACK_SIGNING_KEY_FILE": "/run/secrets/pack-signing.key",
    "PACK_SIGNING_CERT_FILE": "/run/secrets/pack-signing.crt",
}


def import_settings(
    env: dict[str, str], *, base: dict[str, str] | None = None, code: str = "import releasegate.settings"
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={**(PRODUCTION if base is None else base), **env},
        capture_output=True,
        text=True,
        check=False,
    )
