"""Asking for evidence packs: validate the request, reuse a job already asked for, or create one
and queue its build (through the outbox) with its audit event, in one transaction."""

import hashlib
import json
import secrets
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

import audit
from audit.models import AuditEvent
from audit.sequencer import database_now
from changelogs.models import Domain
from changelogs.selectors import changelog_list_visible
from core.actors import ActingUser
from core.errors import InvalidInput, NotFound
from outbox.services import outbox_put, publish_many
from packs.audit_actions import PackAction
from packs.errors import PackError
from packs.gather import time_text
from packs.models import PackJob, PackKind, PackStatus, audit_target
from packs.selectors import stale_jobs

# The build task's registered name: queued messages and outbox rows carry it, so it stays the
# name it had before the packs app existed (packs.tasks registers its tasks under these names).
BUILD_TASK = "releasegate.packs.pack_build"
RESUME_TASK = "releasegate.packs.packs_resume"


def params_key(kind: str, params: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps({"kind": kind, "params": params}, sort_keys=True).encode()).hexdigest()


@transaction.atomic
def pack_request(
    *, acting_user: ActingUser, kind: str, params: dict[str, Any], now: datetime | None = None
) -> tuple[PackJob, bool]:
    """Ask for a pack. The same request while its job is queued or running, or done within
    PACK_REUSE_MINUTES, returns that job rather than building again. A job that is stuck (its
    builder's lease ran out, or it waited in the queue past PACK_QUEUED_STALE_SECONDS) is handed
    over again on the way; a failed job is not reused: asking again starts a new one."""
    now = now or database_now()
    key = params_key(kind, params)
    reusable = (
        PackJob.objects.select_for_update()
        .filter(params_key=key)
        .filter(
            Q(status__in=[PackStatus.QUEUED, PackStatus.RUNNING])
            | Q(status=PackStatus.DONE, created_at__gte=now - timedelta(minutes=settings.PACK_REUSE_MINUTES))
        )
    )
    existing: PackJob | None = reusable.order_by("-created_at").first()
    if existing is not None:
        if existing.pk in set(stale_jobs(now)):
            outbox_put(task=BUILD_TASK, args=[str(existing.pk)])
        return existing, False
    job = PackJob.objects.create(kind=kind, params=params, params_key=key, requested_by=acting_user, created_at=now)
    audit.record(
        actor=acting_user,
        action=PackAction.PACK_REQUESTED,
        target=audit_target(job),
        data={"kind": kind, "params": params},
    )
    outbox_put(task=BUILD_TASK, args=[str(job.pk)])
    return job, True


def pack_request_for(
    *,
    acting_user: ActingUser,
    kind: str,
    changelog: Any = None,
    start: datetime | None = None,
    end: datetime | None = None,
    domain: str = "",
    sample_size: int = 25,
    seed: int | None = None,
) -> tuple[PackJob, bool]:
    """Validate what is asked for and turn it into a job's params."""
    if kind == PackKind.CHANGELOG:
        found = changelog_list_visible(user=acting_user).filter(pk=changelog).first() if changelog else None
        if found is None:
            raise NotFound(PackError.PACK_NOT_FOUND, "No such changelog.")
        return pack_request(acting_user=acting_user, kind=kind, params={"changelog": str(found.pk)})
    if start is None or end is None or end <= start:
        raise InvalidInput(PackError.INVALID_PERIOD, "A population pack needs a start before its end.")
    _period_bounded(start, end)
    if domain and not Domain.objects.filter(slug=domain).exists():
        raise InvalidInput(PackError.INVALID_PERIOD, f"No domain {domain!r}.")
    params = {
        "start": time_text(start),
        "end": time_text(end),
        "domain": domain,
        "sample_size": sample_size,
        # A seed is drawn when none is given, and printed in the pack.
        "seed": seed if seed is not None else secrets.randbelow(2**31),
    }
    if seed is None:
        reuse = PackJob.objects.filter(
            kind=kind,
            params__start=params["start"],
            params__end=params["end"],
            params__domain=domain,
            params__sample_size=sample_size,
            status__in=[PackStatus.QUEUED, PackStatus.RUNNING],
        ).first()
        if reuse is not None:
            return reuse, False
    return pack_request(acting_user=acting_user, kind=kind, params=params)


def _period_bounded(start: datetime, end: datetime) -> None:
    """A period is no longer than PACK_MAX_PERIOD_DAYS and starts no earlier than the day of
    the first audit event: before it there is nothing to report, and a period from year 1 was
    accepted and then failed its build again and again."""
    longest = timedelta(days=settings.PACK_MAX_PERIOD_DAYS)
    if end - start > longest:
        raise InvalidInput(
            PackError.PERIOD_TOO_LONG,
            f"A population pack covers at most {settings.PACK_MAX_PERIOD_DAYS} days (PACK_MAX_PERIOD_DAYS); "
            "ask for several periods.",
        )
    first = AuditEvent.objects.order_by("id").values_list("created_at", flat=True).first()
    earliest = (first or timezone.now()).replace(hour=0, minute=0, second=0, microsecond=0)
    if start < earliest:
        raise InvalidInput(
            PackError.PERIOD_BEFORE_RECORDS,
            f"The audit trail starts on {earliest:%Y-%m-%d}; a population pack cannot start before "
            f"{earliest:%Y-%m-%dT%H:%M:%SZ}.",
        )


def packs_hand_over(*, now: datetime) -> int:
    """Queue again the builds of the jobs nobody is building (at most 100 at a time); returns how
    many were published."""
    stale = list(stale_jobs(now)[:100])
    return publish_many((BUILD_TASK, [str(job_id)]) for job_id in stale)
