"""What the sequencer last signed, kept outside the database beside its signing key.

Someone with full rights on the database (a superuser bypasses the append-only triggers) can
rewrite, roll back or rebuild the stored log without the key. If the sequencer trusted what it
reads from the database, it would then sign the rewritten history itself. So before it signs,
it compares the database with this file: the latest checkpoint there must be the one recorded
here, or a validly signed, consistent extension of it (a crash between commit and writing this
file leaves the file behind, never ahead). Anything else raises an alarm (audit/alarms.py)
and nothing is signed.

The file holds the size, root hash and signed note of the last checkpoint, as JSON. It is
written after the checkpoint commits, atomically (a new file renamed over the old one), and
never moved backwards.
"""

import base64
import json
import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SignedHead:
    size: int
    root_hash: bytes
    signed_note: str


def state_path() -> Path:
    return Path(settings.AUDIT_SEQUENCER_STATE_FILE)


def state_load() -> SignedHead | None:
    """The last head this sequencer signed; None when there is no state file yet."""
    path = state_path()
    try:
        raw = path.read_text()
    except FileNotFoundError:
        return None
    data = json.loads(raw)
    return SignedHead(
        size=int(data["size"]), root_hash=base64.b64decode(data["root_hash"]), signed_note=str(data["signed_note"])
    )


def state_save(head: SignedHead) -> None:
    """Record ``head`` unless the file already records a larger one (an overtaking writer)."""
    path = state_path()
    current = state_load()
    if current is not None and current.size >= head.size:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(
        {"size": head.size, "root_hash": base64.b64encode(head.root_hash).decode(), "signed_note": head.signed_note}
    )
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".")
    try:
        with os.fdopen(descriptor, "w") as file:
            file.write(text + "\n")
            file.flush()
            os.fsync(file.fileno())
        os.chmod(temporary, 0o600)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
