"""The sequencer as a Celery task, run by a real worker process over a real broker."""

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.db import connection, transaction

from audit import record
from audit.models import AuditEvent, Checkpoint, WitnessCosignature
from audit.signing import verifier_key
from audit.tasks import audit_sequence
from tests.audit.support import sequence_all, witness_start
from tests.conftest import wait_for
from tests.factories import FACTORY_ACTOR
from tests.processes import process_stop
from tests.workers import celery_worker


def test_a_worker_sequences_the_log_when_beat_asks(celery_worker_process: subprocess.Popen[bytes]) -> None:
    assert not settings.CELERY_TASK_ALWAYS_EAGER
    for number in range(20):
        with transaction.atomic():
            record(actor=FACTORY_ACTOR, action="test:event", target=("test.thing", str(number)), data={})
    assert not Checkpoint.objects.exists()

    audit_sequence.delay()

    total = AuditEvent.objects.count()
    wait_for(lambda: Checkpoint.objects.filter(tree_size=total).exists(), what="the worker's checkpoint")
    assert celery_worker_process.poll() is None


def test_a_worker_submits_each_signed_checkpoint_to_the_witnesses(
    transactional_db: None, settings: Any, tmp_path: Path
) -> None:
    """The submissions travel through the outbox and the broker to a real worker, which gathers
    both witnesses' cosignatures (tests/audit/test_witnesses.py checks what a submission does)."""
    if not settings.CELERY_BROKER_URL or connection.vendor != "postgresql":
        pytest.skip("needs a real broker and worker: runs in CI's PostgreSQL pass (CELERY_BROKER_URL=redis://…)")
    witnesses = [witness_start(f"witness.test/w{number}", tmp_path, verifier_key()) for number in (1, 2)]
    settings.AUDIT_SEQUENCE_ON_COMMIT = False
    settings.AUDIT_WITNESSES = [config for _, config, _ in witnesses]
    try:
        with celery_worker(
            settings.CELERY_BROKER_URL, env={"AUDIT_WITNESSES": json.dumps(settings.AUDIT_WITNESSES)}, purge=True
        ):
            with transaction.atomic():
                record(actor=FACTORY_ACTOR, action="test:event", target=("test.thing", "1"), data={})
            sequence_all()
            latest = Checkpoint.objects.order_by("-tree_size").first()
            assert latest is not None

            wait_for(
                lambda: WitnessCosignature.objects.filter(checkpoint=latest).count() == 2,
                what="both witnesses' cosignatures, gathered by the worker",
            )
    finally:
        for process, _, _ in witnesses:
            process_stop(process, timeout=10)
    assert sorted(WitnessCosignature.objects.values_list("witness", flat=True)) == [
        "witness.test/w1",
        "witness.test/w2",
    ]
