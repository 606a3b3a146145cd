"""Building a pack under a lease: claim the job, gather, render, sign and store its files, then
record them with the ``pack:built`` event in one transaction. Each delivery writes under its own
folder, so a late or duplicate delivery never overwrites a recorded pack (docs/packs.md)."""

import dataclasses
import hashlib
import io
import logging
import os
import secrets
import socket
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, TypeVar

from django.conf import settings
from django.db import InterfaceError, OperationalError, connection, transaction

import audit
from audit.sequencer import database_now, sequence_pending
from audit.services import SYSTEM
from changelogs.models import Changelog
from changelogs.storage import evidence_storage, stored_write
from packs.audit_actions import PackAction
from packs.gather import audit_items, changelog_pack_data, population_pack_data
from packs.models import PackJob, PackKind, PackStatus, audit_target
from packs.population_json import population_json
from packs.render.archive import (
    build_changelog_zip,
    changelog_manifest,
    changelog_members,
    standalone_verifier_sources,
    write_population_csv,
)
from packs.render.pdf.changelog import render_changelog_pdf
from packs.render.pdf.population import render_population_pdf
from releasegate.documents import key_passphrase, sign_document, signing_material
from releasegate.pdfsign import sign_manifest

logger = logging.getLogger(__name__)

T = TypeVar("T")


class LeaseLost(Exception):
    """Another delivery holds the job now (ours ran out): stop, and keep nothing."""


_DB_ERRORS = (OperationalError, InterfaceError)


def with_fresh_connection(work: Callable[[], T], *, what: str) -> T:
    """Run ``work``; on a database error (a restart, a blip, a dropped connection) close the
    connection and try again on a fresh one, for up to PACK_DB_RETRY_SECONDS. The error handler
    of a build used to write over the dead connection, fail, and leave the job running."""
    deadline = time.monotonic() + settings.PACK_DB_RETRY_SECONDS
    pause = 0.25
    while True:
        try:
            return work()
        except _DB_ERRORS as error:
            if connection.in_atomic_block or time.monotonic() + pause > deadline:
                raise
            logger.warning("pack build: database error while %s (%s); retrying on a fresh connection", what, error)
            connection.close()
            time.sleep(pause)
            pause = min(pause * 2, 4.0)


def _lease_until() -> datetime:
    return database_now() + timedelta(seconds=settings.PACK_LEASE_SECONDS)


class LeaseHeld(Exception):
    """Another delivery is building the job; look again when its lease would run out."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"another delivery holds the job for {seconds:.0f} s more")
        self.seconds = seconds


def lease_owner() -> str:
    """Who builds: this machine and process (so that a delivery on the same machine can tell
    a holder that was killed), and a token of the delivery."""
    return f"{socket.gethostname()[:32]}:{os.getpid()}:{secrets.token_hex(6)}"


def _holder_is_dead(owner: str) -> bool:
    """A holder on this machine whose process is gone (a pool process killed mid-build) holds
    nothing: the redelivered message takes over at once instead of waiting out the lease."""
    host, _, rest = owner.partition(":")
    pid = rest.partition(":")[0]
    if host != socket.gethostname()[:32] or not pid.isdigit() or int(pid) == os.getpid():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, another user's
        return False
    return False


def build_claim(job_id: str, owner: str) -> PackJob | None:
    """Take the job for this delivery; None when it is done. Raises ``LeaseHeld`` while
    another delivery holds an unexpired lease on it."""
    with transaction.atomic():
        job: PackJob | None = PackJob.objects.select_for_update().filter(pk=job_id).first()
        if job is None or job.status == PackStatus.DONE:
            return None
        now = database_now()
        if (
            job.lease_owner
            and job.lease_expires_at
            and job.lease_expires_at > now
            and not _holder_is_dead(job.lease_owner)
        ):
            raise LeaseHeld((job.lease_expires_at - now).total_seconds())
        job.status = PackStatus.RUNNING
        job.attempts += 1
        job.started_at = now
        job.progress = 0
        job.stage = "starting"
        job.error = ""
        job.lease_owner = owner
        job.lease_expires_at = now + timedelta(seconds=settings.PACK_LEASE_SECONDS)
        job.save(
            update_fields=[
                "status",
                "attempts",
                "started_at",
                "progress",
                "stage",
                "error",
                "lease_owner",
                "lease_expires_at",
            ]
        )
        return job


def _progress(job_id: Any, owner: str, percent: int, stage: str) -> None:
    """Report progress and renew the lease; a delivery that lost its lease stops here."""
    held = PackJob.objects.filter(pk=job_id, lease_owner=owner, status=PackStatus.RUNNING).update(
        progress=max(0, min(percent, 99)), stage=stage, lease_expires_at=_lease_until()
    )
    if not held:
        raise LeaseLost(f"pack job {job_id}: another delivery took it over")


def _store(job: PackJob, owner: str, name: str, data: bytes, media_type: str) -> dict[str, Any]:
    """Each delivery writes under its own folder: nothing ever overwrites the files another
    delivery recorded. The job's record points at them only once it is done."""
    key = f"packs/{job.pk}/{owner}/{name}"
    sha256 = stored_write(evidence_storage(), key, data)
    return {"storage_key": key, "sha256": sha256, "size": len(data), "media_type": media_type}


def build_discard(job_id: str, owner: str) -> None:
    """Remove what this delivery wrote (a build cut short, or one another delivery beat)."""
    storage = evidence_storage()
    folder = f"packs/{job_id}/{owner}"
    try:
        names = storage.listdir(folder)[1] if storage.exists(folder) else []
        for name in names:
            storage.delete(f"{folder}/{name}")
    except OSError as error:  # an orphan file is untidy, not wrong: nothing points at it
        logger.warning("pack build: could not remove %s (%s)", folder, error)


def build_finish(job_id: str, owner: str, files: dict[str, Any]) -> bool:
    """Switch the job to done with its files and the audit event, in one transaction, if
    this delivery still holds the lease."""
    with transaction.atomic():
        job = PackJob.objects.select_for_update().get(pk=job_id)
        if job.status == PackStatus.DONE or job.lease_owner != owner:
            return False
        job.status = PackStatus.DONE
        job.files = files
        job.progress = 100
        job.stage = "done"
        job.error = ""
        job.finished_at = database_now()
        job.lease_owner = ""
        job.lease_expires_at = None
        job.save(
            update_fields=[
                "status",
                "files",
                "progress",
                "stage",
                "error",
                "finished_at",
                "lease_owner",
                "lease_expires_at",
            ]
        )
        audit.record(
            actor=SYSTEM,
            action=PackAction.PACK_BUILT,
            target=audit_target(job),
            data={"kind": job.kind, "params": job.params, "files": {name: f["sha256"] for name, f in files.items()}},
        )
    return True


def _trail_vouches() -> None:
    """No pack from a trail under alarm, or without the witnesses' quorum the policy requires."""
    from audit.trail import trail_facts

    inconsistent, quorum_missing = trail_facts()
    if inconsistent:
        raise RuntimeError("audit_log_inconsistent: an audit alarm is open; an operator must resolve it")
    if quorum_missing:
        raise RuntimeError("witness_quorum_missing: too few witnesses have recently cosigned the audit log")


def build_give_up(job_id: str, owner: str, error: BaseException, *, final: bool) -> None:
    """Record the failed attempt and release the lease (only this delivery's)."""
    values: dict[str, Any] = {
        "error": f"{type(error).__name__}: {error}"[:2000],
        "lease_owner": "",
        "lease_expires_at": None,
    }
    if final:
        values.update(status=PackStatus.FAILED, finished_at=database_now())
    else:
        values.update(status=PackStatus.QUEUED)
    PackJob.objects.filter(pk=job_id, lease_owner=owner).update(**values)


def build_run(job: PackJob, owner: str) -> dict[str, Any]:
    """Render, sign and store the pack's files; returns their names, keys and hashes."""
    sequence_pending()  # the pack's proofs cover everything committed before the build
    _trail_vouches()
    now = database_now()
    if job.kind == PackKind.CHANGELOG:
        _progress(job.pk, owner, 10, "collecting the change")
        changelog = Changelog.objects.select_related("service", "service__domain", "created_by").get(
            pk=job.params["changelog"]
        )
        pack, evidence_files = changelog_pack_data(changelog=changelog, now=now)
        key_pem, cert_pem, _ = signing_material()
        members = changelog_members(
            pack=pack,
            evidence_files=evidence_files,
            verifier_sources=standalone_verifier_sources(),
            signing_certificate_pem=cert_pem,
        )
        manifest = changelog_manifest(pack, members)
        pack = dataclasses.replace(pack, manifest_sha256=hashlib.sha256(manifest).hexdigest())
        _progress(job.pk, owner, 40, "rendering the PDF")
        pdf = sign_document(render_changelog_pdf(pack), reason=f"Evidence pack of changelog {changelog.pk}")
        _progress(job.pk, owner, 70, "building the ZIP")
        archive = build_changelog_zip(
            pack=pack,
            signed_pdf=pdf,
            evidence_files=evidence_files,
            verifier_sources=standalone_verifier_sources(),
            signing_certificate_pem=cert_pem,
            manifest_signature=sign_manifest(
                manifest,
                key_pem=key_pem,
                cert_pem=cert_pem,
                key_passphrase=key_passphrase(),
            ),
        )
        _progress(job.pk, owner, 90, "storing")
        return {
            "pack.pdf": _store(job, owner, "pack.pdf", pdf, "application/pdf"),
            "pack.zip": _store(job, owner, "pack.zip", archive, "application/zip"),
        }
    params = job.params
    population = population_pack_data(
        start=datetime.fromisoformat(params["start"]),
        end=datetime.fromisoformat(params["end"]),
        domain=params["domain"],
        sample_size=params["sample_size"],
        seed=params["seed"],
        now=now,
        progress=lambda done, total: _progress(job.pk, owner, 5 + 60 * done // max(total, 1), "listing changes"),
    )
    # The CSV first: the signed PDF prints its SHA-256, which binds the two.
    _progress(job.pk, owner, 5, "writing the CSV")
    table = io.StringIO(newline="")
    write_population_csv(population, table)
    csv_bytes = table.getvalue().encode("utf-8")
    population = dataclasses.replace(population, csv_sha256=hashlib.sha256(csv_bytes).hexdigest())
    _progress(job.pk, owner, 10, "rendering the PDF")
    rendered = io.BytesIO()
    render_population_pdf(population, rendered)
    _progress(job.pk, owner, 70, "signing")
    pdf = sign_document(rendered.getvalue(), reason=f"Population pack {params['start']} to {params['end']}")
    document = population_json(population, audit_items=audit_items)
    _progress(job.pk, owner, 90, "storing")
    return {
        "population.pdf": _store(job, owner, "population.pdf", pdf, "application/pdf"),
        "population.csv": _store(job, owner, "population.csv", csv_bytes, "text/csv"),
        "population.json": _store(job, owner, "population.json", document, "application/json"),
    }
