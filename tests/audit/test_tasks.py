"""The sequencer as a Celery task, run by a real worker process over a real broker."""

import subprocess

from django.conf import settings
from django.db import transaction

from audit import record
from audit.models import AuditEvent, Checkpoint
from audit.tasks import audit_sequence
from tests.conftest import wait_for
from tests.factories import FACTORY_ACTOR


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
