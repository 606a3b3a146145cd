"""The single outbox (issue 19): the broker is never on a request's path.

A request that wants work done later (deliver a notification, answer GitHub, build a pack)
writes an outbox row in its own transaction (``outbox_put``). After the commit the row is
published to Celery with short connect and socket timeouts (``OUTBOX_PUBLISH_TIMEOUT_MS``) and
no retries: a broker that is down, refusing or hung costs a request at most that timeout, and
the first failure stops the publishing of the rest. Whatever did not go stays in the table and
the beat flush (``outbox_flush``, every ``OUTBOX_FLUSH_SECONDS``) publishes it. Tasks are
idempotent on their own rows, so a row published twice (a process that died between the publish
and the delete) does no harm.
"""

import contextlib
import importlib
import logging
from collections.abc import Iterable, Sequence
from datetime import timedelta
from functools import partial
from typing import Any
from uuid import UUID

from celery import current_app
from django.conf import settings
from django.db import DatabaseError, transaction
from django.db.models.functions import Now
from django.utils import timezone

from outbox.models import Message

logger = logging.getLogger(__name__)
_ERROR_MAX = 1000


def outbox_put(*, task: str, args: Sequence[Any] = ()) -> Message:
    """Write the row in the caller's transaction; publish it after the commit."""
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("outbox rows are written inside the transaction of the change that needs them")
    # The database's clock (Now()): the flush, on another machine, compares with the same clock.
    message = Message.objects.create(task=task, args=list(args), created_at=Now())
    transaction.on_commit(partial(_after_commit, message.pk), robust=True)
    return message


def _after_commit(message_id: UUID) -> None:
    outbox_publish([message_id])


def publish_timeouts() -> dict[str, Any]:
    seconds = settings.OUTBOX_PUBLISH_TIMEOUT_MS / 1000
    return {
        "connect_timeout": seconds,
        "transport_options": {
            # Redis: connecting, and every command once connected (a SIGSTOPped server
            # accepts the connection and then never answers).
            "socket_connect_timeout": seconds,
            "socket_timeout": seconds,
            "max_retries": 0,
        },
    }


def publish_now(task: str, args: Sequence[Any] = ()) -> None:
    """Publish one task with the outbox's timeouts and no retries; raises when it did not go.
    In eager mode (no broker) the task runs here and now."""
    app = current_app
    registered = _task(task)
    if app.conf.task_always_eager:
        registered.apply_async(args=tuple(args))
        return
    with app.connection_for_write(**publish_timeouts()) as connection:
        producer = app.amqp.Producer(connection)
        registered.apply_async(args=tuple(args), producer=producer, retry=False)


def _task(name: str) -> Any:
    """The task registered under ``name``; a web process need not have imported it yet. Celery
    names a task by its module and function, so importing that module registers it; a task
    registered under a name of its own (the packs' tasks keep the names they had in
    ``releasegate.packs``) is found once the apps' task modules are imported."""
    app = current_app
    if name not in app.tasks:
        try:
            importlib.import_module(name.rpartition(".")[0])
        except ModuleNotFoundError:
            app.loader.import_default_modules()
    return app.tasks[name]


def publish_many(calls: Iterable[tuple[str, Sequence[Any]]]) -> int:
    """Publish each call; stop at the first that fails (the broker is not answering, and the
    next would wait as long). Returns how many went. For workers' own hand-overs."""
    sent = 0
    for task, args in calls:
        try:
            publish_now(task, args)
        except Exception as error:  # the broker, or in eager mode the task itself
            _log_failure(task, args, error)
            if not current_app.conf.task_always_eager:
                break
        else:
            sent += 1
    return sent


def outbox_publish(message_ids: Iterable[UUID]) -> int:
    """Publish the given rows and delete those that went. Never raises: the caller's change
    is committed, and what did not go is the flush's."""
    try:
        messages = list(Message.objects.filter(pk__in=list(message_ids)))
    except DatabaseError as error:
        logger.warning("outbox: could not read rows to publish (%s); the flush will", error)
        return 0
    return _publish_rows(messages)


def _publish_rows(messages: list[Message]) -> int:
    eager = current_app.conf.task_always_eager
    published: list[UUID] = []
    failed: Message | None = None
    failure = ""
    for message in messages:
        if eager:
            # The row goes first: an eager task that fails has its own rows and retries.
            _delete([message.pk])
        try:
            publish_now(message.task, message.args)
        except Exception as error:
            _log_failure(message.task, message.args, error)
            if not eager:
                failed, failure = message, f"{type(error).__name__}: {error}"
                break
        else:
            published.append(message.pk)
    if not eager:
        _delete(published)
    if failed is not None:
        with contextlib.suppress(DatabaseError):  # the flush counts it next time
            Message.objects.filter(pk=failed.pk).update(attempts=failed.attempts + 1, last_error=failure[:_ERROR_MAX])
    return len(published)


def _delete(message_ids: list[UUID]) -> None:
    if not message_ids:
        return
    try:
        Message.objects.filter(pk__in=message_ids).delete()
    except DatabaseError as error:  # published twice later: the tasks are idempotent
        logger.warning("outbox: could not delete %d published rows (%s)", len(message_ids), error)


def outbox_flush(*, limit: int = 500) -> int:
    """Publish the rows that were not published right after their commit (beat)."""
    older = Now() - timedelta(seconds=settings.OUTBOX_FLUSH_AFTER_SECONDS)
    with transaction.atomic():
        # SKIP LOCKED: two flushes at once take different rows instead of publishing twice.
        messages = list(
            Message.objects.select_for_update(skip_locked=True)
            .filter(created_at__lte=older)
            .order_by("created_at")[:limit]
        )
        return _publish_rows(messages)


def outbox_waiting() -> tuple[int, float | None]:
    """How many rows wait to be published, and the age in seconds of the oldest."""
    oldest = Message.objects.order_by("created_at").values_list("created_at", flat=True).first()
    count = Message.objects.count() if oldest else 0
    return count, (timezone.now() - oldest).total_seconds() if oldest else None


def _log_failure(task: str, args: Sequence[Any], error: Exception) -> None:
    logger.warning(
        "outbox: could not publish %s%s (%s: %s); it waits for the flush",
        task,
        tuple(args),
        type(error).__name__,
        error,
        exc_info=bool(current_app.conf.task_always_eager),
    )
