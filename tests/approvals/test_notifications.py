"""The notification outbox: rows written with the change, delivered after commit by Celery,
retried with back-off, never lost while the broker is down. Real parts throughout: the
database, Celery (eager, or a real worker on a real broker), an HTTP receiver on 127.0.0.1,
Django's locmem e-mail backend."""

import json
import logging
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.core import mail
from django.db import connection, transaction
from django.utils import timezone

from approvals.models import Channel, DeliveryStatus, Notification
from approvals.notifications import notification_attempt, notification_enqueue
from approvals.tasks import notifications_flush
from audit import record
from audit.models import AuditEvent
from outbox.attempts import AttemptOutcome, retry_delay
from tests.approvals.brokers import PrivateRedis, publishing_to
from tests.approvals.webhooks import SECRET, Receiver, docs_verifier, running_receiver
from tests.clock import time_passes
from tests.conftest import wait_for
from tests.factories import FACTORY_ACTOR
from tests.settings_import import import_settings
from tests.workers import celery_worker

ROOT = Path(__file__).resolve().parents[2]
APPROVERS = ["ada@bank.example", "grace@bank.example"]
PAYLOAD = {"changelog": "0b1e7c2a-5f0e-4d8e-9a57-3c1f5a6d2b10", "service": "payments-api", "revision": 1}

Verify = Callable[..., dict[str, Any]]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with running_receiver() as running:
        yield running


@pytest.fixture
def webhook(receiver: Receiver, settings: Any) -> Receiver:
    settings.NOTIFY_WEBHOOK_URL = receiver.url
    settings.NOTIFY_WEBHOOK_SECRET = SECRET
    settings.NOTIFY_RETRY_BASE_SECONDS = 0
    return receiver


@pytest.fixture
def no_webhook(settings: Any) -> None:
    settings.NOTIFY_WEBHOOK_URL = ""


@pytest.fixture
def verify() -> Verify:
    return docs_verifier()


def announce(*, emails: list[str] | None = None, event: str = "changelog.submitted") -> list[Notification]:
    """A committed change that audits itself and enqueues its notifications, as services do."""
    with transaction.atomic():
        record(actor=FACTORY_ACTOR, action="test:changed", target=("test.thing", "1"), data={})
        return notification_enqueue(
            event=event,
            subject="[Release Gate] payments-api 1.4.2 waits for sign-off",
            payload=PAYLOAD,
            emails=emails or [],
        )


def assert_authentic(verify: Verify, receiver: Receiver, notification: Notification) -> None:
    for request in receiver.received:
        event = verify(SECRET.encode(), request.headers, request.body)
        assert event["delivery"] == request.delivery == str(notification.pk)
        assert event["event"] == request.headers["X-ReleaseGate-Event"] == notification.event
        assert event["payload"] == PAYLOAD
        assert request.headers["Content-Type"] == "application/json"


# E-mail


@pytest.mark.usefixtures("transactional_db", "eager_celery", "no_webhook")
def test_an_email_goes_to_the_recipients_once_the_change_commits() -> None:
    with transaction.atomic():
        [notification] = notification_enqueue(
            event="changelog.submitted",
            subject="[Release Gate] payments-api 1.4.2\nwaits for sign-off",
            payload=PAYLOAD,
            emails=[*APPROVERS, APPROVERS[0], " "],
        )
        assert mail.outbox == []  # nothing leaves before the commit
        assert notification.status == DeliveryStatus.PENDING

    [message] = mail.outbox
    assert message.to == APPROVERS
    assert message.subject == "[Release Gate] payments-api 1.4.2 waits for sign-off"
    assert message.from_email == "release-gate@localhost"
    assert message.extra_headers["X-ReleaseGate-Delivery"] == str(notification.pk)
    assert "service: payments-api" in message.body
    notification.refresh_from_db()
    assert (notification.channel, notification.status, notification.attempts) == (Channel.EMAIL, "sent", 1)
    assert notification.sent_at is not None


@pytest.mark.usefixtures("transactional_db", "eager_celery")
def test_a_rolled_back_change_sends_nothing_and_leaves_no_row(webhook: Receiver) -> None:
    class ChangeFailedError(Exception):
        pass

    def change_that_fails() -> None:
        with transaction.atomic():
            notification_enqueue(event="changelog.submitted", subject="s", payload=PAYLOAD, emails=APPROVERS)
            assert Notification.objects.count() == 2
            raise ChangeFailedError

    with pytest.raises(ChangeFailedError):
        change_that_fails()

    assert mail.outbox == []
    assert webhook.received == []
    assert not Notification.objects.exists()


@pytest.mark.usefixtures("transactional_db", "no_webhook")
def test_nothing_is_written_without_recipients_or_a_webhook() -> None:
    assert announce(emails=[]) == []
    assert not Notification.objects.exists()


@pytest.mark.usefixtures("transactional_db")
def test_notifications_are_only_enqueued_inside_the_change_s_transaction() -> None:
    with pytest.raises(RuntimeError, match="inside the transaction"):
        notification_enqueue(event="changelog.submitted", subject="s", payload=PAYLOAD, emails=APPROVERS)


@pytest.mark.usefixtures("transactional_db", "eager_celery", "no_webhook")
def test_a_mail_server_that_refuses_is_retried_and_given_up(settings: Any, caplog: pytest.LogCaptureFixture) -> None:
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", 1  # nothing listens on port 1
    settings.NOTIFY_RETRY_BASE_SECONDS, settings.NOTIFY_MAX_ATTEMPTS = 0, 2

    with caplog.at_level(logging.ERROR, logger="approvals.notifications"):
        [notification] = announce(emails=APPROVERS)

    notification.refresh_from_db()
    assert (notification.status, notification.attempts) == (DeliveryStatus.FAILED, 2)
    assert "ConnectionRefusedError" in notification.last_error
    assert "giving up" in caplog.text


# Webhook


@pytest.mark.usefixtures("transactional_db", "eager_celery", "no_webhook")
def test_the_webhook_is_only_sent_when_a_url_is_configured() -> None:
    assert [n.channel for n in announce(emails=APPROVERS)] == [Channel.EMAIL]


@pytest.mark.usefixtures("transactional_db", "eager_celery")
def test_a_webhook_that_fails_twice_arrives_once_per_delivery_id_with_a_valid_signature(
    webhook: Receiver, verify: Verify
) -> None:
    webhook.answer([500, 500])

    [email, hook] = announce(emails=APPROVERS)

    assert webhook.statuses() == [500, 500, 200]  # three attempts, exactly one accepted
    assert {request.delivery for request in webhook.received} == {str(hook.pk)}
    assert_authentic(verify, webhook, hook)
    assert {request.path for request in webhook.received} == {"/hooks/release-gate"}
    bodies = {request.body for request in webhook.received}
    assert len(bodies) == 1  # the same bytes on every attempt; only timestamp and signature change
    assert json.loads(bodies.pop())["created_at"] == hook.created_at.isoformat(timespec="milliseconds").replace(
        "+00:00", "Z"
    )
    hook.refresh_from_db()
    assert (hook.status, hook.attempts, hook.last_error) == (DeliveryStatus.SENT, 3, "HTTP 500 Internal Server Error")
    assert hook.sent_at is not None
    email.refresh_from_db()
    assert email.status == DeliveryStatus.SENT
    assert len(mail.outbox) == 1


@pytest.mark.usefixtures("transactional_db", "eager_celery")
def test_a_receiver_that_always_fails_ends_failed_after_the_maximum_attempts(
    webhook: Receiver, settings: Any, caplog: pytest.LogCaptureFixture
) -> None:
    settings.NOTIFY_MAX_ATTEMPTS = 4
    webhook.answer([], otherwise=503)

    with caplog.at_level(logging.ERROR, logger="approvals.notifications"):
        [hook] = announce()

    assert webhook.statuses() == [503] * 4
    hook.refresh_from_db()
    assert (hook.status, hook.attempts, hook.sent_at) == (DeliveryStatus.FAILED, 4, None)
    assert hook.last_error == "HTTP 503 Service Unavailable"
    assert [r.levelname for r in caplog.records] == ["ERROR"]
    assert str(hook.pk) in caplog.text

    notifications_flush.delay()  # a failed notification is never sent again
    assert len(webhook.received) == 4


@pytest.mark.usefixtures("transactional_db", "eager_celery")
def test_a_redirect_is_a_failed_attempt_and_is_not_followed(webhook: Receiver) -> None:
    webhook.answer([307])

    [hook] = announce()

    assert webhook.statuses() == [307, 200]
    assert {request.path for request in webhook.received} == {"/hooks/release-gate"}
    hook.refresh_from_db()
    assert (hook.status, hook.attempts) == (DeliveryStatus.SENT, 2)


@pytest.mark.usefixtures("transactional_db", "eager_celery")
def test_an_unreachable_receiver_is_a_failed_attempt(settings: Any) -> None:
    with running_receiver() as gone:
        url = gone.url
    settings.NOTIFY_WEBHOOK_URL, settings.NOTIFY_WEBHOOK_SECRET = url, SECRET
    settings.NOTIFY_RETRY_BASE_SECONDS, settings.NOTIFY_MAX_ATTEMPTS = 0, 2

    [hook] = announce()

    hook.refresh_from_db()
    assert (hook.status, hook.attempts) == (DeliveryStatus.FAILED, 2)
    assert "Connection refused" in hook.last_error


def test_the_docs_signature_check_refuses_forgeries_and_replays(verify: Verify) -> None:
    from approvals.notifications import webhook_signature

    body = b'{"delivery":"d1","event":"e","created_at":"2026-01-01T00:00:00Z","payload":{}}'
    now = 1_800_000_000
    headers = {
        "X-ReleaseGate-Delivery": "d1",
        "X-ReleaseGate-Timestamp": str(now),
        "X-ReleaseGate-Signature": webhook_signature(SECRET, str(now), body),
    }

    assert verify(SECRET.encode(), headers, body, now=now + 60)["delivery"] == "d1"
    with pytest.raises(ValueError, match="bad signature"):
        verify(b"another secret", headers, body, now=now)
    with pytest.raises(ValueError, match="bad signature"):
        verify(SECRET.encode(), headers, body.replace(b"d1", b"d2"), now=now)
    with pytest.raises(ValueError, match="bad signature"):  # the timestamp is signed too
        verify(SECRET.encode(), {**headers, "X-ReleaseGate-Timestamp": str(now + 1)}, body, now=now)
    with pytest.raises(ValueError, match="too old"):
        verify(SECRET.encode(), headers, body, now=now + 301)


# Retries and the flush


@pytest.mark.parametrize(
    ("attempts", "base", "delay"),
    [(1, 2, 2), (2, 2, 4), (3, 2, 8), (7, 2, 128), (12, 2, 3600), (60, 2, 3600), (3, 0, 0), (1, 30, 30)],
)
def test_the_back_off_doubles_up_to_an_hour(attempts: int, base: int, delay: int) -> None:
    assert retry_delay(attempts, base=base) == delay


@pytest.mark.usefixtures("transactional_db", "eager_celery")
def test_the_flush_hands_over_only_notifications_that_are_due(webhook: Receiver) -> None:
    start = timezone.now() - timedelta(seconds=1)
    due, later = (
        Notification.objects.create(
            event=f"test.{name}", channel=Channel.WEBHOOK, payload=PAYLOAD, created_at=start, next_attempt_at=at
        )
        for name, at in [("due", start), ("later", start + timedelta(minutes=5))]
    )

    assert notifications_flush.delay().get() == 1
    # a worker holding the id of a row that is not due yet leaves it alone
    assert notification_attempt(notification_id=later.pk).outcome is AttemptOutcome.SKIPPED
    assert [request.delivery for request in webhook.received] == [str(due.pk)]

    time_passes(timedelta(minutes=5))  # due times are the database's: its clock decides
    assert notifications_flush.delay().get() == 1
    assert [request.delivery for request in webhook.received] == [str(due.pk), str(later.pk)]
    assert set(Notification.objects.values_list("status", flat=True)) == {DeliveryStatus.SENT}


@pytest.mark.usefixtures("transactional_db", "on_postgres")
def test_two_workers_never_send_the_same_notification_at_once(webhook: Receiver) -> None:
    now = timezone.now()
    notification = Notification.objects.create(
        event="test.race", channel=Channel.WEBHOOK, payload=PAYLOAD, created_at=now, next_attempt_at=now
    )
    webhook.hold = threading.Event()
    outcomes: list[AttemptOutcome] = []

    def first_worker() -> None:
        try:
            outcomes.append(notification_attempt(notification_id=notification.pk).outcome)
        finally:
            connection.close()

    thread = threading.Thread(target=first_worker)
    thread.start()
    assert webhook.arrived.wait(timeout=10)  # the first worker holds the row and is sending

    second = notification_attempt(notification_id=notification.pk)  # returns at once: SKIP LOCKED

    webhook.hold.set()
    thread.join(timeout=20)
    assert second.outcome is AttemptOutcome.SKIPPED
    assert outcomes == [AttemptOutcome.SENT]
    assert len(webhook.received) == 1
    assert notification_attempt(notification_id=notification.pk).outcome is AttemptOutcome.SKIPPED  # already sent


# A real worker on a real broker that goes away


def worker_env(receiver: Receiver, *, base_seconds: int) -> dict[str, str]:
    return {
        "NOTIFY_WEBHOOK_URL": receiver.url,
        "NOTIFY_WEBHOOK_SECRET": SECRET,
        "NOTIFY_RETRY_BASE_SECONDS": str(base_seconds),
    }


def test_with_the_broker_down_the_outbox_keeps_the_notification_until_it_is_back(
    private_broker: PrivateRedis, webhook: Receiver, verify: Verify, tmp_path: Path
) -> None:
    private_broker.start()
    with publishing_to(private_broker.url):
        private_broker.stop()

        started = time.monotonic()
        [hook] = announce()  # the change commits although Celery cannot be reached
        took = time.monotonic() - started

        assert AuditEvent.objects.filter(action="test:changed").count() == 1
        hook.refresh_from_db()
        assert (hook.status, hook.attempts) == (DeliveryStatus.PENDING, 0)
        assert took < 10, f"the commit waited {took:.1f}s for the broker"

        private_broker.start()
        log = tmp_path / "worker.log"
        with celery_worker(private_broker.url, log=log, env=worker_env(webhook, base_seconds=1)) as worker:
            notifications_flush.delay()  # what beat does every 30 s

            wait_for(
                lambda: Notification.objects.filter(pk=hook.pk, status=DeliveryStatus.SENT).exists(),
                what="the worker to deliver the notification",
                log=log,
            )
            notifications_flush.delay()  # a second flush finds nothing pending
            time.sleep(1.5)
            assert worker.poll() is None

    assert webhook.statuses() == [200]  # exactly once
    assert_authentic(verify, webhook, hook)
    hook.refresh_from_db()
    assert (hook.status, hook.attempts) == (DeliveryStatus.SENT, 1)


def test_a_worker_retries_a_failed_webhook_after_the_back_off(
    private_broker: PrivateRedis, webhook: Receiver, verify: Verify, tmp_path: Path
) -> None:
    private_broker.start()
    webhook.answer([502])
    log = tmp_path / "worker.log"
    with (
        publishing_to(private_broker.url),
        celery_worker(private_broker.url, log=log, env=worker_env(webhook, base_seconds=1)),
    ):
        [hook] = announce()

        wait_for(
            lambda: Notification.objects.filter(pk=hook.pk, status=DeliveryStatus.SENT).exists(),
            what="the worker's retry",
            log=log,
        )

    assert webhook.statuses() == [502, 200]
    assert_authentic(verify, webhook, hook)
    first, second = (int(request.headers["X-ReleaseGate-Timestamp"]) for request in webhook.received)
    assert second - first >= 1  # Celery's countdown, not an immediate re-run
    hook.refresh_from_db()
    assert (hook.status, hook.attempts) == (DeliveryStatus.SENT, 2)


# Settings


def _import_settings(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return import_settings(env)


def test_production_refuses_a_webhook_without_a_secret() -> None:
    result = _import_settings({"NOTIFY_WEBHOOK_URL": "https://hooks.bank.example/release-gate"})

    assert result.returncode != 0
    assert "NOTIFY_WEBHOOK_SECRET must be set when NOTIFY_WEBHOOK_URL is set" in result.stderr
    assert _import_settings({"NOTIFY_WEBHOOK_URL": "https://h.example/", "NOTIFY_WEBHOOK_SECRET": "s"}).returncode == 0


def test_a_webhook_url_must_be_http() -> None:
    result = _import_settings({"NOTIFY_WEBHOOK_URL": "file:///etc/passwd", "NOTIFY_WEBHOOK_SECRET": "s"})

    assert result.returncode != 0
    assert "NOTIFY_WEBHOOK_URL must be an http(s) URL" in result.stderr
