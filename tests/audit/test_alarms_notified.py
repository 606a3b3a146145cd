"""An audit alarm is announced through the notifications: an e-mail to AUDIT_ALARM_EMAILS and
the signed webhook, once when it is raised (not for each repeat), after the alarm commits.
Real parts: the database, Celery eager, Django's locmem e-mail, an HTTP receiver on 127.0.0.1."""

import json
from collections.abc import Iterator
from typing import Any

import pytest
from django.core import mail

from approvals.models import Notification
from audit.alarms import alarm_raise
from audit.models import AlarmKind, AuditAlarm
from tests.approvals.webhooks import SECRET, Receiver, docs_verifier, running_receiver

pytestmark = [pytest.mark.usefixtures("transactional_db", "eager_celery"), pytest.mark.serial]

OPERATORS = ["audit-ops@bank.example", "ciso-office@bank.example"]


@pytest.fixture
def receiver(settings: Any) -> Iterator[Receiver]:
    with running_receiver() as running:
        settings.NOTIFY_WEBHOOK_URL = running.url
        settings.NOTIFY_WEBHOOK_SECRET = SECRET
        settings.AUDIT_ALARM_EMAILS = OPERATORS
        yield running


def test_a_raised_alarm_is_emailed_to_the_configured_recipients_and_sent_to_the_webhook(receiver: Receiver) -> None:
    alarm = alarm_raise(
        kind=AlarmKind.ROLLED_BACK, detail="this sequencer signed a log of 12 leaves; the database has 6"
    )

    [message] = mail.outbox
    assert message.to == OPERATORS
    assert message.subject == "Audit log alarm: rolled_back"
    assert "this sequencer signed a log of 12 leaves" in message.body
    assert "audit_alarm_resolve" in message.body
    [request] = receiver.received
    event = docs_verifier()(SECRET.encode(), request.headers, request.body)
    assert event["event"] == "audit.alarm_raised"
    assert event["payload"]["alarm"] == alarm.pk
    assert event["payload"]["kind"] == "rolled_back"
    assert set(Notification.objects.values_list("status", flat=True)) == {"sent"}


def test_a_repeat_of_an_open_alarm_is_counted_not_sent_again(receiver: Receiver) -> None:
    alarm_raise(kind=AlarmKind.FORKED, detail="first")
    alarm_raise(kind=AlarmKind.FORKED, detail="again")

    assert AuditAlarm.objects.get(kind="forked").occurrences == 2
    assert len(mail.outbox) == 1
    assert len(receiver.received) == 1
    assert json.loads(receiver.received[0].body)["payload"]["detail"] == "first"


def test_without_recipients_only_the_webhook_is_told(receiver: Receiver, settings: Any) -> None:
    settings.AUDIT_ALARM_EMAILS = []

    alarm_raise(kind=AlarmKind.STORE_FAILED, detail="duplicate key")

    assert mail.outbox == []
    assert len(receiver.received) == 1
