"""Submitting checkpoints to witnesses (C2SP tlog-witness) and keeping their cosignatures.

After the sequencer commits a checkpoint, each witness in ``AUDIT_WITNESSES`` gets it with a
consistency proof from the size it last cosigned. A witness that answers 409 with a size
larger than the log, or 422 (the proof does not verify), has seen a different history: the
log was rolled back or rebuilt. That raises the ``witness_refused`` alarm. Cosignatures are
checked against the witness's key before they are stored, and served with the checkpoint.
"""

import base64
import hashlib
import logging
import struct
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from django.conf import settings
from django.utils import timezone

from audit.alarms import alarm_raise
from audit.merkle import consistency_proof
from audit.models import AlarmKind, Checkpoint, WitnessCosignature

logger = logging.getLogger(__name__)

ALG_COSIGNATURE_V1 = 0x04


@dataclass(frozen=True)
class WitnessKey:
    name: str
    key_id: bytes
    public_key: bytes
    url: str

    @classmethod
    def parse(cls, url: str, vkey: str) -> "WitnessKey":
        name, key_id_hex, material = vkey.strip().split("+", 2)
        raw = base64.b64decode(material, validate=True)
        if len(raw) != 33 or raw[0] != ALG_COSIGNATURE_V1:
            raise ValueError(f"witness key {name} is not an Ed25519 cosignature key")
        key_id = hashlib.sha256(name.encode() + b"\n" + raw[:1] + raw[1:]).digest()[:4]
        if key_id.hex() != key_id_hex:
            raise ValueError(f"witness key {name}: key ID does not match")
        return cls(name=name, key_id=key_id, public_key=raw[1:], url=url)

    def cosignature_time(self, line: str, body: str) -> datetime | None:
        """The cosignature's time if ``line`` is this witness's valid cosignature of ``body``."""
        prefix = f"\u2014 {self.name} "
        if not line.startswith(prefix):
            return None
        raw = base64.b64decode(line[len(prefix) :].strip(), validate=True)
        if len(raw) != 4 + 8 + 64 or raw[:4] != self.key_id:
            return None
        (timestamp,) = struct.unpack(">Q", raw[4:12])
        message = f"cosignature/v1\ntime {timestamp}\n{body}".encode()
        try:
            Ed25519PublicKey.from_public_bytes(self.public_key).verify(raw[12:], message)
        except InvalidSignature:
            return None
        return datetime.fromtimestamp(timestamp, tz=UTC)


def witnesses() -> list[WitnessKey]:
    return [WitnessKey.parse(item["url"], item["key"]) for item in settings.AUDIT_WITNESSES]


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


def submit(checkpoint: Checkpoint) -> int:
    """Submit one checkpoint to every witness; store the cosignatures. Returns how many
    witnesses cosigned. A refusal raises the alarm; an unreachable witness is logged."""
    cosigned = 0
    body = _body(checkpoint)
    for witness in witnesses():
        last = (
            WitnessCosignature.objects.filter(witness=witness.name)
            .order_by("-checkpoint__tree_size")
            .values_list("checkpoint__tree_size", flat=True)
            .first()
        )
        old = last or 0
        try:
            status, answer = _post(witness.url, _request(old, checkpoint))
            if status == 409 and answer.strip().isdigit():
                known = int(answer.strip())
                if known > checkpoint.tree_size:
                    _refused(
                        witness, f"it cosigned a log of {known} leaves; this checkpoint has {checkpoint.tree_size}"
                    )
                    continue
                status, answer = _post(witness.url, _request(known, checkpoint))
        except (OSError, ValueError) as error:
            logger.warning("witness %s unreachable: %s", witness.name, error)
            continue
        if status in (409, 422):
            _refused(
                witness, f"it answered {status} to the checkpoint at size {checkpoint.tree_size}: {answer.strip()}"
            )
            continue
        if status != 200:
            logger.warning("witness %s answered %s: %s", witness.name, status, answer.strip()[:200])
            continue
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
            cosigned += 1
            break
    return cosigned


def _refused(witness: WitnessKey, why: str) -> None:
    alarm_raise(
        kind=AlarmKind.WITNESS_REFUSED,
        detail=f"witness {witness.name} refused the log: {why}. The log was rolled back or rebuilt.",
    )


def submit_latest() -> None:
    if not settings.AUDIT_WITNESSES:
        return
    latest = Checkpoint.objects.order_by("-tree_size").first()
    if latest is not None:
        submit(latest)


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
