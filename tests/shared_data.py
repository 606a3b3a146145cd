"""Where the shared real-world samples and test vectors live.

They sit beside the repository (``../shared``) rather than inside it, because they are
shared with the product design and are not ours to edit. ``RELEASEGATE_SHARED_DIR``
points elsewhere when a clone lives somewhere else.
"""

import os
from pathlib import Path


def _find_shared_dir() -> Path:
    configured = os.environ.get("RELEASEGATE_SHARED_DIR")
    candidates = [Path(configured)] if configured else []
    candidates += [Path(__file__).resolve().parents[2] / "shared", Path("/work/shared")]
    for candidate in candidates:
        if (candidate / "samples").is_dir() and (candidate / "vectors").is_dir():
            return candidate
    tried = ", ".join(str(c) for c in candidates)
    raise RuntimeError(
        f"shared samples not found (tried {tried}); set RELEASEGATE_SHARED_DIR to the folder "
        "that holds samples/ and vectors/"
    )


SHARED_DIR = _find_shared_dir()
SAMPLES_DIR = SHARED_DIR / "samples"
MERKLE_VECTORS_DIR = SHARED_DIR / "vectors" / "merkle"
