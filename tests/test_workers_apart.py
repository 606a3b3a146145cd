"""pytest-xdist's workers keep their files apart (tests/settings.py): one worker's stored evidence
is not in the other's way."""

import os
from pathlib import Path

import pytest
from django.conf import settings


@pytest.mark.skipif(not os.environ.get("PYTEST_XDIST_WORKER"), reason="only under pytest-xdist: no other worker")
def test_each_worker_stores_evidence_in_a_directory_of_its_own() -> None:
    own = Path(settings.VAR_DIR)

    assert own.name == os.environ["PYTEST_XDIST_WORKER"]
    assert Path(settings.EVIDENCE_STORAGE_DIR).is_relative_to(own)
