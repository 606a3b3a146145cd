"""The fixed cast every endpoint is tried with (STYLE.md): a requester, an approver of the
same domain, an approver of another domain, an auditor, an admin, a pipeline token of the
service, a pipeline token of another service, and anonymous."""

import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

# reportlab reads its settings files from the home directory when first imported: here, before
# the guard against outside reads is armed, rather than in whichever test renders a PDF first.
import reportlab.rl_config  # noqa: F401
from django.contrib.auth.models import Group
from django.db import connection
from django.test import TransactionTestCase
from guardian.shortcuts import assign_perm
from rest_framework.test import APIClient

from audit.triggers import create_statements, drop_statements
from changelogs.models import Domain, Service
from changelogs.selectors import MANAGE_CHANGELOGS
from releasegate.models import User
from releasegate.roles import AUDITORS
from releasegate.services import api_token_issue, service_account_create
from releasegate.tokens import ALL_SCOPES
from tests.approvals.brokers import PrivateRedis
from tests.factories import (
    FACTORY_ACTOR,
    DomainFactory,
    ServiceFactory,
    UserFactory,
    authority_give,
    second_factor_session,
)
from tests.network_guard import OutsideConnections
from tests.outside_reads import OutsideReads, allowed_roots
from tests.requirement_skips import pytest_runtest_makereport  # noqa: F401  (a hook: pytest finds it here)
from tests.thread_starts import patient_trace_installs

patient_trace_installs()
OUTSIDE_READS = OutsideReads(allowed_roots())
OUTSIDE_CONNECTIONS = OutsideConnections()
sys.addaudithook(OUTSIDE_READS.hook)
sys.addaudithook(OUTSIDE_CONNECTIONS.hook)


@pytest.fixture(autouse=True)
def _nothing_from_outside() -> Iterator[None]:
    """Fails the test if it read a file outside the repository (tests/outside_reads.py) or
    connected beyond the loopback (tests/network_guard.py)."""
    for guard in (OUTSIDE_READS, OUTSIDE_CONNECTIONS):
        guard.seen.clear()
        guard.armed = True
    try:
        yield
    finally:
        OUTSIDE_READS.armed = OUTSIDE_CONNECTIONS.armed = False
    if OUTSIDE_READS.seen:
        pytest.fail(f"the test read files outside the repository: {sorted(set(OUTSIDE_READS.seen))[:5]}")
    if OUTSIDE_CONNECTIONS.seen:
        pytest.fail(f"the test reached beyond this machine: {sorted(set(OUTSIDE_CONNECTIONS.seen))[:5]}")


@pytest.fixture(autouse=True)
def _audit_sequencer_state(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test's database starts empty, so each gets a fresh sequencer state file (audit/trust.py),
    also for the worker processes it starts."""
    path = str(tmp_path_factory.mktemp("audit-state") / "audit-sequencer-state.json")
    from django.conf import settings

    monkeypatch.setattr(settings, "AUDIT_SEQUENCER_STATE_FILE", path)
    monkeypatch.setenv("AUDIT_SEQUENCER_STATE_FILE", path)


def _deletes_instead_of_truncate(original: Any) -> Any:
    """Django flushes PostgreSQL with one TRUNCATE of every table, which makes new files for
    each table and index (0.7-1.3 s for 80 small tables on this machine's disk, more under
    load); a test leaves a few rows, which DELETE removes in milliseconds. Only under the
    replication role below, which skips the foreign keys' triggers, so that the order of the
    tables does not matter. The audit log's tables are still truncated: in production they
    are append-only and never hold deleted rows, and the verifier's server-side scan is
    tested on tables as production has them (rows out of physical order are a case of their
    own: test_verify_paths' test_leaves_stored_out_of_order_...). Sequences are left alone as TRUNCATE without RESTART IDENTITY
    leaves them; a flush that resets them keeps Django's statement."""

    def sql_flush(style: Any, tables: Any, *, reset_sequences: bool = False, allow_cascade: bool = False) -> Any:
        if reset_sequences:
            return original(style, tables, reset_sequences=reset_sequences, allow_cascade=allow_cascade)
        log = [table for table in tables if table.startswith("audit_")]
        deletes = [f"DELETE FROM {connection.ops.quote_name(table)};" for table in tables if table not in log]  # noqa: S608 - Django's table names
        return [*original(style, log, reset_sequences=False, allow_cascade=allow_cascade), *deletes]

    return sql_flush


# Django's catalogue of models and their permissions, which the flush after each committing test
# would empty and post_migrate fill again: inserting every app's permissions anew was about 70 %
# of that flush's cost (py-spy over the suite, 2026-12-05). No test adds or removes either kind of
# row, so the flush leaves them; post_migrate still runs and finds them all there.
KEPT_BY_FLUSH = frozenset({"django_content_type", "auth_permission"})


def _catalogue_kept(original: Any) -> Any:
    def sql_flush(style: Any, tables: Any, **options: Any) -> Any:
        return original(style, [table for table in tables if table not in KEPT_BY_FLUSH], **options)

    return sql_flush


def _flush_with_audit_triggers_suspended(original: Any) -> Any:
    """Tests that commit (transactional_db) end with a flush, which the append-only triggers
    rightly refuse. Suspend them for the flush only: on PostgreSQL with the superuser's
    replication role (the CI database user is a superuser), on SQLite by dropping and
    re-creating the triggers."""

    def teardown(self: TransactionTestCase) -> None:
        flushing = connection.ops.sql_flush
        postgres = connection.vendor == "postgresql"
        if postgres:
            suspend, resume = ["SET session_replication_role = replica"], ["SET session_replication_role = DEFAULT"]
        else:
            suspend, resume = drop_statements("sqlite"), create_statements("sqlite")
        with connection.cursor() as cursor:
            for statement in suspend:
                cursor.execute(statement)
        flushed = _deletes_instead_of_truncate(flushing) if postgres else flushing
        connection.ops.sql_flush = _catalogue_kept(flushed)  # type: ignore[method-assign]
        try:
            original(self)
        finally:
            connection.ops.sql_flush = flushing  # type: ignore[method-assign]
            with connection.cursor() as cursor:
                for statement in resume:
                    cursor.execute(statement)

    return teardown


TransactionTestCase._fixture_teardown = _flush_with_audit_triggers_suspended(  # type: ignore[method-assign]
    TransactionTestCase._fixture_teardown
)


COMMITTING_FIXTURES = frozenset({"transactional_db", "live_server", "django_db_serialized_rollback"})


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark the tests that commit as ``serial``. On PostgreSQL the audit sequencer appends only
    events of transactions older than every transaction still open on the server (docs/audit.md),
    and the server's transaction ids are shared by all its databases: a test of one pytest-xdist
    worker, open in its rollback transaction, holds back the sequencing another worker's
    committing test waits for. On one server, run ``-m "not serial"`` in parallel and then
    ``-m serial`` with ``-n 0``; CI gives each worker a server of its own (TEST_DATABASE_URLS,
    tests/settings.py) and runs everything in parallel, as on SQLite."""
    for item in items:
        fixtures = set(getattr(item, "fixturenames", ()))
        marker = item.get_closest_marker("django_db")
        commits = bool(marker and (marker.kwargs.get("transaction") or (marker.args and marker.args[0])))
        if commits or fixtures & COMMITTING_FIXTURES:
            item.add_marker(pytest.mark.serial)


@dataclass
class Pipeline:
    account: User
    token: str

    def client(self) -> APIClient:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {self.token}")
        return client


@dataclass
class Cast:
    payments: Domain
    transfers: Domain
    payments_api: Service
    transfers_api: Service
    requester: User
    approver: User
    other_approver: User
    auditor: User
    admin: User
    pipeline: Pipeline
    other_pipeline: Pipeline

    def session(self, user: User) -> APIClient:
        """Logged in, with a second factor proved just now (what deciding needs)."""
        client: APIClient = second_factor_session(APIClient(), user)
        return client


def _pipeline(name: str, service: Service) -> Pipeline:
    account = service_account_create(acting_user=FACTORY_ACTOR, name=name, services=[service])
    _, token = api_token_issue(acting_user=FACTORY_ACTOR, account=account, name=f"{name} token", scopes=ALL_SCOPES)
    return Pipeline(account=account, token=token)


@pytest.fixture
def cast(db: None) -> Cast:
    payments = DomainFactory(slug="payments", name="Payments")
    transfers = DomainFactory(slug="transfers", name="Transfers")
    payments_api = ServiceFactory(slug="payments-api", domain=payments)
    transfers_api = ServiceFactory(slug="transfers-api", domain=transfers)
    requester = UserFactory(username="requester")
    assign_perm(MANAGE_CHANGELOGS, requester, payments_api)
    auditor = UserFactory(username="auditor")
    auditor.groups.add(Group.objects.get(name=AUDITORS))
    approver = UserFactory(username="approver")
    authority_give(domain=payments, user=approver)
    other_approver = UserFactory(username="other-approver")
    authority_give(domain=transfers, user=other_approver)
    return Cast(
        payments=payments,
        transfers=transfers,
        payments_api=payments_api,
        transfers_api=transfers_api,
        requester=requester,
        approver=approver,
        other_approver=other_approver,
        auditor=auditor,
        admin=UserFactory(username="admin", is_superuser=True),
        pipeline=_pipeline("payments-ci", payments_api),
        other_pipeline=_pipeline("transfers-ci", transfers_api),
    )


@pytest.fixture
def migrations_restored(transactional_db: None) -> Iterator[None]:
    """For tests that migrate an app back and forward to a named migration: afterwards every
    app is migrated to its latest migration again, so that migrations added later (by anyone)
    are not left unapplied for the tests that follow on the same worker."""
    yield
    from django.db.migrations.executor import MigrationExecutor

    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(executor.loader.graph.leaf_nodes())


@pytest.fixture
def anonymous() -> APIClient:
    return APIClient()


@pytest.fixture
def on_postgres() -> None:
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL: runs in CI's PostgreSQL pass (DATABASE_URL=postgres://…)")


@pytest.fixture
def celery_worker_process(transactional_db: None, settings: Any) -> Iterator[subprocess.Popen[bytes]]:
    """A real `celery worker` process on the configured broker, using the test database.
    Only with a broker and PostgreSQL (CI's PostgreSQL pass): eager mode has no worker to talk
    to, and a worker process cannot share SQLite's test database."""
    if not settings.CELERY_BROKER_URL:
        pytest.skip("needs a real broker and worker: runs in CI's PostgreSQL pass (CELERY_BROKER_URL=redis://…)")
    if connection.vendor != "postgresql":
        pytest.skip("a worker process cannot share SQLite's test database; runs in CI's PostgreSQL pass")
    from tests.workers import celery_worker

    with celery_worker(settings.CELERY_BROKER_URL, purge=True) as worker:
        yield worker


@pytest.fixture
def private_broker(transactional_db: None, settings: Any, tmp_path: Path) -> Iterator[PrivateRedis]:
    """A redis-server of this test's own, so that stopping it disturbs nothing else. Only in CI's
    PostgreSQL pass: a worker process cannot share SQLite's in-memory test database."""
    if not settings.CELERY_BROKER_URL:
        pytest.skip("needs a real broker and worker: runs in CI's PostgreSQL pass (CELERY_BROKER_URL=redis://…)")
    if connection.vendor != "postgresql":
        pytest.skip("a worker process cannot share SQLite's test database; runs in CI's PostgreSQL pass")
    if shutil.which("redis-server") is None:
        pytest.skip("needs redis-server on PATH for a private broker")
    broker = PrivateRedis(tmp_path)
    try:
        yield broker
    finally:
        broker.stop()


def wait_for(condition: Any, *, timeout: float = 30.0, what: str = "condition", log: Path | None = None) -> None:
    """Poll ``condition`` until it holds; on timeout, fail with ``what`` and the ``log`` file as
    it stands then (a worker's output, read when it can tell why)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    output = f"; its log:\n{log.read_text(errors='replace')}" if log is not None and log.exists() else ""
    raise AssertionError(f"timed out after {timeout}s waiting for {what}{output}")


@pytest.fixture
def eager_celery() -> Iterator[None]:
    """Celery in-process even in CI's broker pass, for tests about what a delivery does rather
    than how a worker gets it (tests with a real worker use celery_worker_process)."""
    from releasegate.celery import app as celery_app

    saved = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = True
    assert celery_app.conf.task_eager_propagates
    try:
        yield
    finally:
        celery_app.conf.task_always_eager = saved
