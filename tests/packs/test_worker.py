"""A worker killed in the middle of building a pack: nothing half-built is ever visible, the
build is retried, and exactly one pack comes out."""

import os
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.conf import settings
from django.db import connection
from django.utils import timezone

from audit.models import AuditEvent
from changelogs.models import Changelog, ChangelogRevision
from packs.models import PackJob
from tests.conftest import Cast, wait_for
from tests.factories import changelog_content
from tests.packs.test_packs import first_day
from tests.workers import celery_worker

CHANGES = 4000


@pytest.fixture
def prefork_worker(transactional_db: None) -> Iterator[subprocess.Popen[bytes]]:
    """A worker with one pool process: when that process dies, the worker gives the task back
    to the broker (acks_late + reject_on_worker_lost) and it runs again."""
    if not settings.CELERY_BROKER_URL or connection.vendor != "postgresql":
        pytest.skip("needs a real broker and PostgreSQL: runs in CI's PostgreSQL pass")
    with celery_worker(settings.CELERY_BROKER_URL, pool="prefork", purge=True) as worker:
        yield worker


def _many_changes(cast: Cast, count: int) -> None:
    """Submitted changes written in bulk: a population worth a few seconds of rendering."""
    now = timezone.now()
    content = changelog_content()
    changelogs = [
        Changelog(
            id=uuid.uuid4(),
            service=cast.payments_api,
            kind="train",
            status="submitted",
            created_by=cast.requester,
            created_at=now,
            updated_at=now,
        )
        for _ in range(count)
    ]
    Changelog.objects.bulk_create(changelogs, batch_size=1000)
    revisions = [
        ChangelogRevision(
            id=uuid.uuid4(),
            changelog=changelog,
            number=1,
            status="submitted",
            content=content,
            artifact_digest=content["artifact"]["digest"],
            content_hash="ab" * 32,
            created_by=cast.requester,
            created_at=now,
            submitted_by=cast.requester,
            submitted_at=now,
            readiness_at_submit={"policy": "default@v0", "ready": True, "findings": []},
        )
        for changelog in changelogs
    ]
    ChangelogRevision.objects.bulk_create(revisions, batch_size=1000)
    for changelog, revision in zip(changelogs, revisions, strict=True):
        changelog.current_revision = revision
    Changelog.objects.bulk_update(changelogs, ["current_revision"], batch_size=1000)


def _pool_children(worker: subprocess.Popen[bytes]) -> list[int]:
    found = subprocess.run(["pgrep", "-P", str(worker.pid)], capture_output=True, text=True, check=False).stdout
    return [int(pid) for pid in found.split()]


def test_a_worker_killed_mid_build_leaves_no_half_pack_and_the_retry_makes_one(
    cast: Cast, prefork_worker: subprocess.Popen[bytes]
) -> None:
    _many_changes(cast, CHANGES)
    auditor = cast.session(cast.auditor)
    wait_for(lambda: bool(_pool_children(prefork_worker)), what="the worker's pool process")
    start, end = first_day().isoformat(), (timezone.now() + timedelta(days=1)).isoformat()

    requested = auditor.post(
        "/api/v1/packs/", {"kind": "population", "start": start, "end": end, "seed": 7}, format="json"
    ).json()
    job_id = requested["id"]
    wait_for(lambda: PackJob.objects.get(pk=job_id).status == "running", what="the build to start", timeout=60)
    [child] = _pool_children(prefork_worker)
    os.kill(child, signal.SIGKILL)
    time.sleep(0.5)

    mid: Any = auditor.get(f"/api/v1/packs/{job_id}").json()
    assert mid["status"] != "done"
    assert mid["files"] == []
    assert auditor.get(f"/api/v1/packs/{job_id}/files/population.pdf").status_code in (404, 409)

    wait_for(lambda: PackJob.objects.get(pk=job_id).status == "done", what="the retried build", timeout=120)
    job = PackJob.objects.get(pk=job_id)
    assert job.attempts >= 2
    assert sorted(job.files) == ["population.csv", "population.json", "population.pdf"]
    assert AuditEvent.objects.filter(action="pack:built", target_id=job_id).count() == 1
    final = auditor.get(f"/api/v1/packs/{job_id}").json()
    assert {f["name"] for f in final["files"]} == {"population.csv", "population.json", "population.pdf"}
    assert auditor.get(f"/api/v1/packs/{job_id}/files/population.pdf").status_code == 200
    assert prefork_worker.poll() is None
