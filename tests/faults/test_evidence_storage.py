"""Evidence storage that cannot lie (issue 19, "What was seen" 1): a full disk records nothing
and leaves no partial file, and a damaged stored object is repaired by the next upload of the
same bytes instead of being trusted because its key exists."""

import hashlib
from pathlib import Path
from typing import Any

import pytest
from django.core.files.storage import storages

from audit.models import AuditEvent
from changelogs.models import Changelog, Evidence
from tests.changelogs.evidence_files import junit_with_journeys
from tests.changelogs.test_apis_evidence import evidence_url, upload
from tests.conftest import Cast
from tests.factories import changelog_make
from tests.faults.disks import fill, small_disk


def big_junit() -> bytes:
    """A real JUnit file of about 30 KB: more than the full disk leaves free."""
    return junit_with_journeys({f"PAY-{index:03d}": "passed" for index in range(160)})


@pytest.fixture
def evidence_dir(settings: Any, tmp_path: Path) -> Path:
    root = tmp_path / "evidence"
    settings.STORAGES = {
        **settings.STORAGES,
        "evidence": {
            **settings.STORAGES["evidence"],
            "OPTIONS": {**settings.STORAGES["evidence"]["OPTIONS"], "location": str(root)},
        },
    }
    storages._storages = {}  # the handler caches built backends
    return root


def files_under(root: Path) -> dict[str, bytes]:
    return {str(path.relative_to(root)): path.read_bytes() for path in root.rglob("*") if path.is_file()}


def all_stored_files_hash_to_their_records(root: Path) -> None:
    for evidence in Evidence.objects.all():
        stored = (root / evidence.storage_key).read_bytes()
        assert hashlib.sha256(stored).hexdigest() == evidence.sha256 == Path(evidence.storage_key).name


def test_a_damaged_stored_file_is_repaired_by_the_next_upload_of_the_same_bytes(cast: Cast, evidence_dir: Path) -> None:
    data = big_junit()
    client = cast.pipeline.client()
    first = changelog_make(service=cast.payments_api)
    assert upload(client, first, "junit.xml", data, "sanity").status_code == 201
    stored = evidence_dir / Evidence.objects.get().storage_key
    stored.write_bytes(data[:100])  # what a write cut short by a full disk left behind

    second = changelog_make(service=cast.payments_api)
    response = upload(client, second, "junit.xml", data, "sanity")

    assert response.status_code == 201, response.json()
    assert stored.read_bytes() == data
    for changelog in (first, second):
        evidence_id = Evidence.objects.get(changelog=changelog).pk
        download = client.get(f"{evidence_url(changelog)}{evidence_id}/download")
        assert download.status_code == 200
        assert b"".join(download.streaming_content if download.streaming else [download.content]) == data
    all_stored_files_hash_to_their_records(evidence_dir)


def test_a_missing_stored_file_is_put_back_by_the_next_upload(cast: Cast, evidence_dir: Path) -> None:
    data = big_junit()
    client = cast.pipeline.client()
    assert upload(client, changelog_make(service=cast.payments_api), "junit.xml", data, "sanity").status_code == 201
    (evidence_dir / Evidence.objects.get().storage_key).unlink()

    assert upload(client, changelog_make(service=cast.payments_api), "junit.xml", data, "sanity").status_code == 201

    all_stored_files_hash_to_their_records(evidence_dir)


def test_a_full_disk_records_nothing_leaves_no_partial_file_and_a_later_upload_stores_the_right_bytes(
    cast: Cast, evidence_dir: Path
) -> None:
    data = big_junit()
    assert len(data) > 16 * 1024
    client = cast.pipeline.client()
    draft: Changelog = changelog_make(service=cast.payments_api)
    events_before = AuditEvent.objects.count()
    with small_disk(evidence_dir, size_kb=64) as disk:
        filler = fill(disk, leave_bytes=8 * 1024)
        before = set(files_under(disk))

        response = upload(client, draft, "junit.xml", data, "sanity")

        assert response.status_code == 507
        assert response["Content-Type"].startswith("application/json")
        assert response.json()["code"] == "storage_full"
        assert not Evidence.objects.exists()
        assert AuditEvent.objects.count() == events_before
        assert set(files_under(disk)) == before  # no truncated file, no temporary left over

        filler.unlink()
        again = upload(client, draft, "junit.xml", data, "sanity")

        assert again.status_code == 201, again.json()
        assert again.json()["sha256"] == hashlib.sha256(data).hexdigest()
        all_stored_files_hash_to_their_records(disk)
        assert client.get(evidence_url(draft)).json()[0]["sha256"] == hashlib.sha256(data).hexdigest()
