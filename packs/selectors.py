"""Reading pack jobs: the list, one job, a done job's file, and the jobs nobody is building."""

import base64
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db.models import Q

from changelogs.storage import blob_read
from core.errors import Conflict, NotFound
from packs.errors import PackError
from packs.models import PackJob, PackStatus


def pack_job_list() -> Any:
    return PackJob.objects.select_related("requested_by").order_by("-created_at")


def pack_job_get(*, job_id: Any) -> PackJob:
    job: PackJob | None = PackJob.objects.select_related("requested_by").filter(pk=job_id).first()
    if job is None:
        raise NotFound(PackError.PACK_NOT_FOUND, "No such pack.")
    return job


def pack_file(*, job_id: Any, name: str) -> tuple[bytes, dict[str, Any]]:
    job = pack_job_get(job_id=job_id)
    if job.status != PackStatus.DONE:
        raise Conflict(PackError.PACK_NOT_READY, f"The pack is {job.status}; its files appear when it is done.")
    meta = job.files.get(name)
    if meta is None:
        raise NotFound(PackError.PACK_NOT_FOUND, f"The pack has no file {name!r}.")
    data = blob_read(meta["storage_key"], sha256=meta["sha256"])
    return data, {**meta, "sha256_b64": base64.b64encode(bytes.fromhex(meta["sha256"])).decode()}


def stale_jobs(now: datetime) -> Any:
    """Jobs nobody is building: running with a lease that ran out (a worker killed, a build
    that could not record its failure), or queued for longer than a hand-over takes."""
    queued_before = now - timedelta(seconds=settings.PACK_QUEUED_STALE_SECONDS)
    return PackJob.objects.filter(
        Q(status=PackStatus.RUNNING, lease_expires_at__lt=now)
        | Q(status=PackStatus.RUNNING, lease_expires_at__isnull=True, started_at__lt=queued_before)
        | Q(status=PackStatus.QUEUED, created_at__lt=queued_before, lease_owner="")
    ).values_list("id", flat=True)
