"""Submitting checkpoints to witnesses (C2SP tlog-witness) and keeping their cosignatures.

When the sequencer signs a checkpoint it writes, in the same transaction, one outbox row per
witness in ``AUDIT_WITNESSES`` (``witness_submissions_enqueue``); after the commit the outbox
publishes them and ``audit.tasks.witness_submission`` sends the checkpoint with a consistency proof
from the size that witness last cosigned, retrying with back-off while the witness cannot be
reached. A witness that answers 409 with a size larger than the log, or 422 (the proof does not
verify), has seen a different history: the log was rolled back or rebuilt. That raises the
``witness_refused`` alarm. Cosignatures are checked against the witness's key (tlog.cosignature)
before they are stored, and served with the checkpoint.
"""

import base64
import logging
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from django.conf import settings
from django.utils import timezone

from audit.alarms import alarm_raise
from audit.models import AlarmKind, Checkpoint, WitnessCosignature
from outbox.services import outbox_put
from tlog.cosignature import CosignatureVerifier
from tlog.merkle import consistency_proof

logger = logging.getLogger(__name__)

SUBMIT_TASK = "audit.tasks.witness_submission"
# However many attempts are configured, a submission waits at most this long between two.
RETRY_MAX_DELAY_SECONDS = 600


@dataclass(frozen=True)
class WitnessKey:
    """A configured witness: where to submit, and the key its cosignatures verify with."""

    url: str
    verifier: CosignatureVerifier

    @property
    def name(self) -> str:
        return self.verifier.name

    @classmethod
    def parse(cls, url: str, vkey: str) -> "WitnessKey":
        return cls(url=url, verifier=CosignatureVerifier.parse(vkey))

    def cosignature_time(self, line: str, body: str) -> datetime | None:
        """The cosignature's time if ``line`` is this witness's valid cosignature of ``body``."""
        timestamp = self.verifier.cosignature_time(line, body)
        return None if timestamp is None else datetime.fromtimestamp(timestamp, tz=UTC)


class SubmitOutcome(StrEnum):
    COSIGNED = "cosigned"
    REFUSED = "refused"  # the witness saw another history: the alarm is raised
    RETRY = "retry"  # unreachable, or an answer that says nothing about the log: try again later
    SKIPPED = "skipped"  # already cosigned, superseded by a later checkpoint, or no longer configured


def witnesses() -> list[WitnessKey]:
    return [WitnessKey.parse(item["url"], item["key"]) for item in settings.AUDIT_WITNESSES]


def witness_submissions_enqueue(checkpoint: Checkpoint) -> None:
    """In the sequencer's transaction: one outbox row per witness, published after the commit."""
    for witness in witnesses():
        outbox_put(task=SUBMIT_TASK, args=[checkpoint.tree_size, witness.name])


def retry_delay(attempt: int) -> int:
    """Seconds before the next attempt after the ``attempt``-th failed one (1-based)."""
    return int(min(settings.AUDIT_WITNESS_RETRY_BASE_SECONDS * 2 ** (attempt - 1), RETRY_MAX_DELAY_SECONDS))


def _body(checkpoint: Checkpoint) -> str:
    return checkpoint.signed_note[: checkpoint.signed_note.index("\n\n") + 1]


def _post(url: str, data: bytes) -> tuple[int, str]:
    request = urllib.request.Request(url, data=data, method="POST", headers={"Content-Type": "text/plain"})  # noqa: S310 - configured URL
    try:
        with urllib.request.urlopen(request, timeout=settings.AUDIT_WITNESS_TIMEOUT_SECONDS) as response:  # noqa: S310
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode(errors="replace")


def _request(old: int, checkpoint: Checkpoint) -> bytes:
    from audit.selectors import fetch_nodes

    proof = consistency_proof(old, checkpoint.tree_size, fetch_nodes) if 0 < old < checkpoint.tree_size else []
    lines = [f"old {old}", *(base64.b64encode(node).decode() for node in proof)]
    return ("\n".join(lines) + "\n\n" + checkpoint.signed_note).encode()


def witness_submit(*, tree_size: int, witness_name: str) -> SubmitOutcome:
    """One attempt to have one witness cosign the checkpoint of ``tree_size``; the cosignature
    is stored when it comes back. A checkpoint that a later one superseded is not sent: the
    later one's own submission carries the witness forward (with a proof from the size it
    last cosigned)."""
    witness = next((w for w in witnesses() if w.name == witness_name), None)
    checkpoint = Checkpoint.objects.filter(tree_size=tree_size).first()
    if witness is None or checkpoint is None:
        return SubmitOutcome.SKIPPED
    cosigned = WitnessCosignature.objects.filter(witness=witness.name)
    if cosigned.filter(checkpoint=checkpoint).exists() or Checkpoint.objects.filter(tree_size__gt=tree_size).exists():
        return SubmitOutcome.SKIPPED
    last = cosigned.order_by("-checkpoint__tree_size").values_list("checkpoint__tree_size", flat=True).first()
    try:
        status, answer = _post(witness.url, _request(last or 0, checkpoint))
        if status == 409 and answer.strip().isdigit():
            known = int(answer.strip())
            if known > checkpoint.tree_size:
                _refused(witness, f"it cosigned a log of {known} leaves; this checkpoint has {checkpoint.tree_size}")
                return SubmitOutcome.REFUSED
            status, answer = _post(witness.url, _request(known, checkpoint))
    except (OSError, ValueError) as error:
        logger.warning("witness %s unreachable: %s", witness.name, error)
        return SubmitOutcome.RETRY
    if status in (409, 422):
        _refused(witness, f"it answered {status} to the checkpoint at size {checkpoint.tree_size}: {answer.strip()}")
        return SubmitOutcome.REFUSED
    if status != 200:
        logger.warning("witness %s answered %s: %s", witness.name, status, answer.strip()[:200])
        return SubmitOutcome.RETRY
    body = _body(checkpoint)
    for line in answer.splitlines():
        signed_at = witness.cosignature_time(line, body)
        if signed_at is None:
            continue
        # A checkpoint is cosigned once per witness (witness_cosigns_once): a repeat keeps the first.
        WitnessCosignature.objects.get_or_create(
            checkpoint=checkpoint,
            witness=witness.name,
            defaults={"signature_line": line, "signed_at": signed_at},
        )
        return SubmitOutcome.COSIGNED
    logger.warning("witness %s answered without a valid cosignature of size %s", witness.name, tree_size)
    return SubmitOutcome.RETRY


def _refused(witness: WitnessKey, why: str) -> None:
    alarm_raise(
        kind=AlarmKind.WITNESS_REFUSED,
        detail=f"witness {witness.name} refused the log: {why}. The log was rolled back or rebuilt.",
    )


def note_with_cosignatures(checkpoint: Checkpoint) -> str:
    """The checkpoint's signed note with its witnesses' cosignature lines appended."""
    lines = "".join(
        line + "\n" for line in checkpoint.cosignatures.order_by("witness").values_list("signature_line", flat=True)
    )
    return checkpoint.signed_note + lines


def quorum_met() -> bool:
    """At least AUDIT_WITNESS_QUORUM configured witnesses cosigned within the maximum age."""
    fresh = timezone.now() - timedelta(seconds=settings.AUDIT_WITNESS_MAX_AGE_SECONDS)
    names = {witness.name for witness in witnesses()}
    recent = set(
        WitnessCosignature.objects.filter(signed_at__gte=fresh, witness__in=names).values_list("witness", flat=True)
    )
    return len(recent) >= settings.AUDIT_WITNESS_QUORUM
