"""Where the real-world samples and test vectors live: inside the repository, under
``tests/data`` (tests/data/README.md says where each came from and under which licence)."""

from pathlib import Path

DATA_DIR = Path(__file__).resolve().parent / "data"
SAMPLES_DIR = DATA_DIR / "samples"
MERKLE_VECTORS_DIR = DATA_DIR / "vectors" / "merkle"
