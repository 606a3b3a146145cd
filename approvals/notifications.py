"""The notification outbox: e-mail to people and a signed webhook to machines.

Services write outbox rows in the transaction of the change they announce
(``notification_enqueue``); after commit the rows are handed to Celery. A row is delivered by
``notification_attempt`` (one attempt, under a row lock) and retried with back-off by the
Celery task in ``approvals.tasks``; ``notification_dispatch_due`` (the beat-driven flush) hands
over again every pending row whose time has come, so a broker that was down when the change
committed, or a worker that died mid-retry, only delays a notification.

Delivery is at least once: a worker can die between the receiver's 2xx and the commit that
marks the row sent, and the row is then sent again with the same delivery id. Receivers
deduplicate on it (docs/notifications.md).
"""

import hashlib
import hmac
import json
import logging
import urllib.error
import urllib.request
from collections.abc import Sequence
from datetime import datetime
from email.utils import parseaddr
from typing import Any
from urllib.parse import urlsplit
from uuid import UUID

from django.conf import settings
from django.core.mail import EmailMessage
from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction

from approvals.models import Channel, DeliveryStatus, Notification
from audit.clock import business_now
from audit.models import AuditAlarm
from outbox.attempts import (
    Attempt,
    AttemptOutcome,
    attempt_claim,
    attempt_failed,
    attempts_hand_over_due,
)
from outbox.services import outbox_put
from tlog.canonical import canonical_json

logger = logging.getLogger(__name__)

DELIVER_TASK = "approvals.tasks.notification_deliver"
WEBHOOK_TIMEOUT_SECONDS = 10
WEBHOOK_USER_AGENT = "ReleaseGate-Webhook/1"
# Rows handed over per flush; the next flush (30 s later) takes the rest.
FLUSH_BATCH = 500
_SUBJECT_MAX = Notification._meta.get_field("subject").max_length or 200


def notification_enqueue(
    *,
    event: str,
    subject: str,
    payload: dict[str, Any],
    emails: Sequence[str],
    now: datetime | None = None,
) -> list[Notification]:
    """Write the outbox rows in the caller's transaction: one e-mail notification when there are
    recipients, one webhook notification when NOTIFY_WEBHOOK_URL is set; after commit, hand them
    to Celery (robust: a broker that is down only leaves them pending for the flush task)."""
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("notifications are enqueued inside the transaction of the change they announce")
    now = now or business_now()
    # What is stored is exactly what is signed and sent later: dates, UUIDs and decimals take
    # their JSON form now, and a payload JSON cannot carry (NaN, sets…) fails the caller now.
    plain = json.loads(json.dumps(payload, cls=DjangoJSONEncoder))
    canonical_json(plain)
    subject = _one_line(subject, _SUBJECT_MAX)
    recipients = list(dict.fromkeys(address.strip() for address in emails if address.strip()))

    rows: list[Notification] = []
    if recipients:
        rows.append(
            Notification(event=event, channel=Channel.EMAIL, recipients=recipients, subject=subject, payload=plain)
        )
    if settings.NOTIFY_WEBHOOK_URL:
        rows.append(Notification(event=event, channel=Channel.WEBHOOK, subject=subject, payload=plain))
    for row in rows:
        row.created_at = now
        row.next_attempt_at = now
        row.save(force_insert=True)
    for row in rows:
        # The single outbox publishes after the commit with short timeouts; what does not go
        # is published by its flush (a broker that is down or hung never holds the request).
        outbox_put(task=DELIVER_TASK, args=[str(row.pk)])
    return rows


def audit_alarm_notify(*, alarm: AuditAlarm, **_signal: Any) -> list[Notification]:
    """``audit.alarms.alarm_raised``: tell ``AUDIT_ALARM_EMAILS`` (and the webhook) that the audit
    log cannot be trusted until an operator has looked (docs/audit.md)."""
    return notification_enqueue(
        event="audit.alarm_raised",
        subject=f"Audit log alarm: {alarm.kind}",
        payload={
            "alarm": alarm.pk,
            "kind": alarm.kind,
            "detail": alarm.detail,
            "raised_at": alarm.raised_at,
            "resolve_with": "python manage.py audit_alarm_resolve",
        },
        emails=settings.AUDIT_ALARM_EMAILS,
    )


def notification_dispatch_due(*, now: datetime | None = None, limit: int = FLUSH_BATCH) -> int:
    """Hand every pending notification whose next attempt is due to Celery (the flush, run by
    beat)."""
    pending = Notification.objects.filter(status=DeliveryStatus.PENDING)
    return attempts_hand_over_due(pending, task=DELIVER_TASK, now=now or business_now(), limit=limit)


def notification_attempt(
    *, notification_id: UUID | str, now: datetime | None = None, only_when_due: bool = True
) -> Attempt:
    """Make one delivery attempt and record its outcome, under the row's lock
    (``outbox.attempts.attempt_claim``: two workers never send it at once)."""
    now = now or business_now()
    with transaction.atomic():
        pending = Notification.objects.filter(status=DeliveryStatus.PENDING)
        notification: Notification | None = attempt_claim(
            pending, pk=notification_id, now=now, only_when_due=only_when_due
        )
        if notification is None:
            return Attempt(AttemptOutcome.SKIPPED)

        error = _send(notification, now=now)

        notification.attempts += 1
        if error is None:
            notification.status = DeliveryStatus.SENT
            notification.sent_at = now
            notification.save(update_fields=["status", "sent_at", "attempts"])
            return Attempt(AttemptOutcome.SENT)

        return attempt_failed(
            notification,
            error,
            now=now,
            max_attempts=settings.NOTIFY_MAX_ATTEMPTS,
            retry_base=settings.NOTIFY_RETRY_BASE_SECONDS,
            what=f"notification {notification.pk} ({notification.event} via {notification.channel})",
        )


def webhook_body(notification: Notification) -> bytes:
    """The canonical JSON the webhook posts, the same bytes on every attempt."""
    envelope = {
        "delivery": str(notification.pk),
        "event": notification.event,
        "created_at": notification.created_at,
        "payload": notification.payload,
    }
    return canonical_json(json.loads(json.dumps(envelope, cls=DjangoJSONEncoder)))


def webhook_signature(secret: str, timestamp: str, body: bytes) -> str:
    """``sha256=`` + hex HMAC-SHA256 over ``timestamp + "." + body``."""
    digest = hmac.new(secret.encode("utf-8"), timestamp.encode("ascii") + b"." + body, hashlib.sha256)
    return f"sha256={digest.hexdigest()}"


def _send(notification: Notification, *, now: datetime) -> str | None:
    """Deliver once; None on success, otherwise what went wrong, for ``last_error``."""
    try:
        if notification.channel == Channel.EMAIL:
            _send_email(notification)
        elif notification.channel == Channel.WEBHOOK:
            return _send_webhook(notification, now=now)
        else:
            return f"unknown channel {notification.channel!r}"
    except Exception as error:  # whatever the outside world throws is an attempt that failed
        return f"{type(error).__name__}: {error}"
    return None


def _send_email(notification: Notification) -> None:
    sender = settings.NOTIFY_EMAIL_FROM
    domain = parseaddr(sender)[1].rpartition("@")[2] or "releasegate"
    message = EmailMessage(
        subject=notification.subject,
        body=_email_body(notification),
        from_email=sender,
        to=list(notification.recipients),
        headers={
            # The same id on every attempt lets mail systems drop a copy sent twice.
            "Message-ID": f"<{notification.pk}@{domain}>",
            "X-ReleaseGate-Event": notification.event,
            "X-ReleaseGate-Delivery": str(notification.pk),
        },
    )
    message.send(fail_silently=False)


def _email_body(notification: Notification) -> str:
    lines = [notification.subject, "", f"Event: {notification.event}"]
    for key, value in sorted(notification.payload.items()):
        shown = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, sort_keys=True)
        lines.append(f"{key}: {shown}")
    lines += ["", f"Delivery: {notification.pk}", "Sent by Release Gate."]
    return "\n".join(lines) + "\n"


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A redirect would re-send (or drop) the signed body somewhere nobody configured: a 3xx is
    a failed attempt like any other non-2xx."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_opener = urllib.request.build_opener(_NoRedirects)


def _send_webhook(notification: Notification, *, now: datetime) -> str | None:
    url = settings.NOTIFY_WEBHOOK_URL
    if not url:
        return "NOTIFY_WEBHOOK_URL is not set"
    if urlsplit(url).scheme not in {"http", "https"}:
        return "NOTIFY_WEBHOOK_URL must be an http or https URL"
    body = webhook_body(notification)
    timestamp = str(int(now.timestamp()))
    request = urllib.request.Request(  # noqa: S310 - the scheme is checked above
        url,
        data=body,
        method="POST",
        headers={
            "Content-Type": "application/json",
            "User-Agent": WEBHOOK_USER_AGENT,
            "X-ReleaseGate-Event": notification.event,
            "X-ReleaseGate-Delivery": str(notification.pk),
            "X-ReleaseGate-Timestamp": timestamp,
            "X-ReleaseGate-Signature": webhook_signature(settings.NOTIFY_WEBHOOK_SECRET, timestamp, body),
        },
    )
    try:
        with _opener.open(request, timeout=WEBHOOK_TIMEOUT_SECONDS) as response:
            response.read(65536)
            status = int(response.status)
    except urllib.error.HTTPError as error:
        # urllib raises for every status outside 2xx; the error holds the open response.
        with error:
            return f"HTTP {error.code} {error.reason}"
    except (urllib.error.URLError, OSError) as error:  # refused, unreachable, TLS, timeout
        reason = getattr(error, "reason", error)
        return f"{type(error).__name__}: {reason}"
    if not 200 <= status < 300:  # urllib raises for these; kept so that the rule stands written here
        return f"HTTP {status}"
    return None


def _one_line(text: str, limit: int) -> str:
    """E-mail subjects are one line (Django refuses newlines in headers) and the column has a
    limit; neither should turn a business transaction into an error."""
    single = " ".join(text.split())
    return single if len(single) <= limit else single[: limit - 1] + "…"
