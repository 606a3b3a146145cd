"""Celery tasks of the packs: a build, and beat's hand-over of builds nobody runs.

Registered under the names they had in ``releasegate.packs`` (messages already queued, outbox
rows and beat's schedule name them), whatever module defines them now."""

from typing import Any

from celery import shared_task
from django.conf import settings

from audit.sequencer import database_now
from packs.builds import (
    LeaseHeld,
    LeaseLost,
    build_claim,
    build_discard,
    build_finish,
    build_give_up,
    build_run,
    lease_owner,
    with_fresh_connection,
)
from packs.services import BUILD_TASK, RESUME_TASK, packs_hand_over


@shared_task(name=BUILD_TASK, bind=True, acks_late=True, reject_on_worker_lost=True, max_retries=3, ignore_result=True)
def pack_build(self: Any, job_id: str) -> str:
    """Build one pack, once. Safe to deliver twice: a done job is left alone, a job another
    delivery holds is left to it, an interrupted one is rebuilt from the start. Database errors
    are retried on a fresh connection; a delivery that cannot even record its failure leaves a
    lease that runs out, and ``packs_resume`` hands the job over."""
    owner = lease_owner()
    try:
        job = with_fresh_connection(lambda: build_claim(job_id, owner), what="claiming the job")
    except LeaseHeld as held:
        if self.request.is_eager:
            return "skipped"
        # Look again when the holder's lease would run out: if it is still building it will
        # have renewed it (or finished), and if it died this delivery takes over.
        raise self.retry(countdown=int(held.seconds) + 1, max_retries=None) from held
    if job is None:
        return "skipped"
    try:
        files = with_fresh_connection(lambda: build_run(job, owner), what="building")
        finished = with_fresh_connection(lambda: build_finish(job_id, owner, files), what="recording the pack")
    except LeaseLost:
        build_discard(job_id, owner)
        return "skipped"
    except Exception as error:
        build_discard(job_id, owner)
        # The job's own count decides (a delivery that waited on another's lease used Celery's).
        final = job.attempts >= settings.PACK_MAX_ATTEMPTS
        failure = error
        with_fresh_connection(lambda: build_give_up(job_id, owner, failure, final=final), what="recording the failure")
        if not final:
            raise self.retry(exc=error, countdown=2 ** min(job.attempts, 6), max_retries=None) from error
        raise
    if finished:
        return "built"
    build_discard(job_id, owner)  # another delivery finished first; its files are the pack
    return "skipped"


@shared_task(name=RESUME_TASK, ignore_result=True)
def packs_resume() -> int:
    """Run by beat every minute: hands over again the pack jobs nobody is building (the message
    was lost, a worker was killed, a database blip left the job running): within
    PACK_LEASE_SECONDS plus a minute, not half an hour. A delivery that finds another holding a
    live lease walks away, so handing over too often is harmless."""
    return packs_hand_over(now=database_now())
