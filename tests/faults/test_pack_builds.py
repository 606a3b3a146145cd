"""Pack builds that always finish, once (issue 19, "What was seen" 3 and 4): a second delivery
of a build never overwrites the first's pack, a delivery whose lease ran out keeps nothing, a
stuck or failed job is built again when asked for (or by beat within minutes), and a database
blip mid-build ends in one valid pack."""

import hashlib
import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.core.files.storage import storages
from django.db import connection
from django.utils import timezone

from audit.models import AuditEvent
from changelogs.models import Changelog, Evidence
from changelogs.storage import blob_put
from packs import builds
from packs.models import PackJob, PackStatus
from packs.services import params_key
from packs.tasks import pack_build, packs_resume
from tests.conftest import Cast, wait_for
from tests.faults.disks import fill, small_disk
from tests.releasegate.gate_support import ready_changelog

pytestmark = [pytest.mark.django_db(transaction=True)]


def the_pack_is_valid(job: PackJob) -> None:
    """Done, one pack:built event naming exactly the recorded hashes, and every recorded file
    hashes to its record."""
    job.refresh_from_db()
    assert job.status == PackStatus.DONE, (job.status, job.error)
    [built] = AuditEvent.objects.filter(action="pack:built", target_id=str(job.pk))
    data = json.loads(built.data) if isinstance(built.data, str) else built.data
    assert data["files"] == {name: meta["sha256"] for name, meta in job.files.items()}
    storage = storages["evidence"]
    for meta in job.files.values():
        with storage.open(meta["storage_key"], "rb") as stored:
            assert hashlib.sha256(stored.read()).hexdigest() == meta["sha256"]


def folders_of(job: PackJob) -> list[str]:
    storage = storages["evidence"]
    return sorted(storage.listdir(f"packs/{job.pk}")[0]) if storage.exists(f"packs/{job.pk}") else []


def ask(cast: Cast, changelog: Changelog) -> Any:
    return cast.session(cast.auditor).post(
        "/api/v1/packs/", {"kind": "changelog", "changelog": str(changelog.pk)}, format="json"
    )


def stuck_job(cast: Cast, changelog: Changelog, **state: Any) -> PackJob:
    """The job a build leaves behind when its worker dies (or its error handler cannot write)."""
    params = {"changelog": str(changelog.pk)}
    return PackJob.objects.create(
        kind="changelog",
        params=params,
        params_key=params_key("changelog", params),
        requested_by=cast.auditor,
        created_at=timezone.now() - timedelta(minutes=3),
        **state,
    )


def running_job(cast: Cast, changelog: Changelog, *, owner: str, lease_left: timedelta) -> PackJob:
    """A job whose worker started it three minutes ago, with ``lease_left`` on its lease
    (negative: the lease ran out)."""
    return stuck_job(
        cast,
        changelog,
        status=PackStatus.RUNNING,
        attempts=1,
        started_at=timezone.now() - timedelta(minutes=3),
        lease_owner=owner,
        lease_expires_at=timezone.now() + lease_left,
    )


@pytest.fixture
def changelog(cast: Cast, eager_celery: None) -> Changelog:
    return ready_changelog(cast)


def interrupt_signing(monkeypatch: pytest.MonkeyPatch, meanwhile: Any) -> None:
    """Run ``meanwhile`` once, in the middle of the first build (after its data is read, before
    its files are stored): where a redelivered message or a re-dispatch lands in production."""
    sign = builds.sign_document
    calls = []

    def signing(pdf: bytes, reason: str) -> bytes:
        if not calls:
            calls.append(1)
            meanwhile()
        return sign(pdf, reason)

    monkeypatch.setattr(builds, "sign_document", signing)


def test_a_second_delivery_during_a_build_walks_away_and_the_pack_stays_valid(
    cast: Cast, changelog: Changelog, monkeypatch: pytest.MonkeyPatch
) -> None:
    second: list[str] = []
    interrupt_signing(monkeypatch, lambda: second.append(pack_build.apply(args=[str(PackJob.objects.get().pk)]).result))

    response = ask(cast, changelog)

    assert response.status_code == 202
    assert second == ["skipped"]
    job = PackJob.objects.get()
    assert job.attempts == 1
    the_pack_is_valid(job)


def test_a_delivery_whose_lease_ran_out_keeps_nothing_and_the_one_that_took_over_makes_the_pack(
    cast: Cast, changelog: Changelog, monkeypatch: pytest.MonkeyPatch
) -> None:
    second: list[str] = []

    def take_over() -> None:
        job = PackJob.objects.get()
        PackJob.objects.filter(pk=job.pk).update(lease_expires_at=timezone.now() - timedelta(seconds=1))
        second.append(pack_build.apply(args=[str(job.pk)]).result)

    interrupt_signing(monkeypatch, take_over)

    ask(cast, changelog)

    assert second == ["built"]
    job = PackJob.objects.get()
    assert job.attempts == 2
    the_pack_is_valid(job)
    assert len(folders_of(job)) == 1  # the first delivery removed what it had written


def test_asking_again_for_a_stuck_job_hands_it_over_and_it_finishes(cast: Cast, changelog: Changelog) -> None:
    job = running_job(cast, changelog, owner="a-worker-that-died", lease_left=timedelta(minutes=-1))

    response = ask(cast, changelog)

    assert response.status_code == 200
    assert response.json()["id"] == str(job.pk)
    the_pack_is_valid(job)


def test_beat_hands_over_a_job_whose_worker_died_within_minutes_not_half_an_hour(
    cast: Cast, changelog: Changelog
) -> None:
    job = running_job(cast, changelog, owner="a-worker-that-died", lease_left=timedelta(seconds=-10))
    alive = running_job(
        cast, ready_changelog(cast, approved=False), owner="a-worker-still-building", lease_left=timedelta(minutes=1)
    )

    assert packs_resume() == 1

    the_pack_is_valid(job)
    alive.refresh_from_db()
    assert alive.status == PackStatus.RUNNING  # its builder still holds it


def test_asking_again_for_a_failed_pack_starts_a_new_attempt(cast: Cast, changelog: Changelog) -> None:
    failed = stuck_job(cast, changelog, status=PackStatus.FAILED, attempts=4, error="OperationalError: gone")

    response = ask(cast, changelog)

    assert response.status_code == 202
    assert response.json()["id"] != str(failed.pk)
    the_pack_is_valid(PackJob.objects.get(pk=response.json()["id"]))


def test_a_database_blip_mid_build_ends_in_one_valid_pack(
    cast: Cast, celery_worker_process: Any, settings: Any
) -> None:
    """A real worker whose database connections are cut again and again for two seconds in the
    middle of a build (PostgreSQL's pg_terminate_backend: what a restart or a failover does to
    a connection). Before issue 19 the failure handler wrote over the dead connection and the
    job stayed running for 30 minutes."""
    from tests.packs.test_worker import CHANGES, _many_changes

    _many_changes(cast, CHANGES)
    from tests.packs.test_packs import first_day

    start, end = first_day().isoformat(), (timezone.now() + timedelta(days=1)).isoformat()
    auditor = cast.session(cast.auditor)
    job_id = auditor.post(
        "/api/v1/packs/", {"kind": "population", "start": start, "end": end, "seed": 7}, format="json"
    ).json()["id"]
    wait_for(lambda: PackJob.objects.get(pk=job_id).status == "running", what="the build to start", timeout=60)

    deadline = timezone.now() + timedelta(seconds=2)
    cut = 0
    while timezone.now() < deadline:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
            cut += cursor.fetchone()[0]

    assert cut >= 1
    wait_for(lambda: PackJob.objects.get(pk=job_id).status == "done", what="one valid pack", timeout=90)
    the_pack_is_valid(PackJob.objects.get(pk=job_id))


def test_a_pack_on_a_full_disk_leaves_no_file_and_is_built_once_space_is_back(
    cast: Cast, changelog: Changelog, settings: Any, tmp_path: Path
) -> None:
    """Seen: a population pack on the full disk left a 0-byte PDF."""
    root = tmp_path / "store"
    settings.STORAGES = {
        **settings.STORAGES,
        "evidence": {
            **settings.STORAGES["evidence"],
            "OPTIONS": {**settings.STORAGES["evidence"]["OPTIONS"], "location": str(root)},
        },
    }
    storages._storages = {}
    evidence = [(Path(settings.EVIDENCE_STORAGE_DIR) / e.storage_key).read_bytes() for e in Evidence.objects.all()]
    with small_disk(root, size_kb=256) as disk:
        for data in evidence:  # the changelog's evidence, in the store the pack reads it from
            blob_put(data)
        filler = fill(disk, leave_bytes=2048)

        ask(cast, changelog)

        job = PackJob.objects.get()
        assert job.status != PackStatus.DONE
        assert "storage" in job.error.lower() or "space" in job.error.lower(), job.error
        assert [path for path in (disk / "packs").rglob("*") if path.is_file()] == []

        filler.unlink()
        settings.PACK_QUEUED_STALE_SECONDS = 0
        PackJob.objects.filter(pk=job.pk).update(created_at=timezone.now() - timedelta(seconds=1))
        packs_resume()

        the_pack_is_valid(job)
