"""The audit tables refuse UPDATE and DELETE through the ORM, the admin and SQL."""

from collections.abc import Iterator

import pytest
from django.db import DatabaseError, connection, transaction

from audit import record
from audit.models import AppendOnlyError, AuditEvent, AuditLeaf, AuditNode, Checkpoint
from audit.sequencer import sequence_pending
from audit.triggers import APPEND_ONLY_TABLES
from tests.audit.support import horizon_passed
from tests.conftest import Cast
from tests.factories import FACTORY_ACTOR

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def logged() -> AuditEvent:
    for number in range(3):
        with transaction.atomic():
            record(actor=FACTORY_ACTOR, action="test:event", target=("x", str(number)), data={"n": number})
    horizon_passed()
    sequence_pending()
    return AuditEvent.objects.filter(action="test:event").order_by("id").first()  # type: ignore[return-value]


@pytest.mark.requirement("PR-11")
def test_the_orm_refuses_to_update_or_delete_an_event(logged: AuditEvent) -> None:
    logged.action = "test:rewritten"

    with pytest.raises(AppendOnlyError):
        logged.save()
    with pytest.raises(AppendOnlyError):
        logged.delete()
    with pytest.raises(AppendOnlyError):
        AuditEvent.objects.filter(pk=logged.pk).update(action="test:rewritten")
    with pytest.raises(AppendOnlyError):
        AuditEvent.objects.all().delete()
    assert AuditEvent.objects.get(pk=logged.pk).action == "test:event"


@pytest.mark.parametrize("model", [AuditLeaf, AuditNode, Checkpoint])
@pytest.mark.requirement("PR-11")
def test_the_orm_refuses_to_change_the_log(logged: AuditEvent, model: type) -> None:
    row = model.objects.first()

    with pytest.raises(AppendOnlyError):
        row.save()
    with pytest.raises(AppendOnlyError):
        row.delete()
    with pytest.raises(AppendOnlyError):
        model.objects.all().delete()


@pytest.fixture
def application_role_cursor() -> Iterator[object]:
    """Raw SQL as the application's database user. On PostgreSQL a plain (non-superuser)
    role with the application's table privileges; on SQLite the only user there is."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("DROP ROLE IF EXISTS releasegate_app_test")
            cursor.execute("CREATE ROLE releasegate_app_test NOSUPERUSER")
            cursor.execute(
                "GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE ON ALL TABLES IN SCHEMA public TO releasegate_app_test"
            )
            cursor.execute("SET ROLE releasegate_app_test")
            try:
                yield cursor
            finally:
                cursor.execute("RESET ROLE")
                cursor.execute("REVOKE ALL ON ALL TABLES IN SCHEMA public FROM releasegate_app_test")
                cursor.execute("DROP ROLE releasegate_app_test")
        else:
            yield cursor


@pytest.mark.parametrize("table", APPEND_ONLY_TABLES)
@pytest.mark.parametrize("statement", ["UPDATE {table} SET {column} = {column}", "DELETE FROM {table}"])
@pytest.mark.requirement("PR-11")
def test_sql_as_the_application_user_cannot_update_or_delete(
    logged: AuditEvent, application_role_cursor: object, table: str, statement: str
) -> None:
    column = {"audit_auditevent": "action", "audit_auditleaf": "leaf_hash"}.get(table, "hash")
    if table == "audit_checkpoint":
        column = "signed_note"
    before = AuditEvent.objects.count(), AuditLeaf.objects.count(), Checkpoint.objects.count()

    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        application_role_cursor.execute(statement.format(table=table, column=column))  # type: ignore[attr-defined]

    assert (AuditEvent.objects.count(), AuditLeaf.objects.count(), Checkpoint.objects.count()) == before


@pytest.mark.parametrize("table", APPEND_ONLY_TABLES)
@pytest.mark.requirement("PR-11")
def test_sql_as_the_application_user_cannot_truncate(
    logged: AuditEvent, application_role_cursor: object, table: str, on_postgres: None
) -> None:
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        application_role_cursor.execute(f"TRUNCATE {table} CASCADE")  # type: ignore[attr-defined]

    assert AuditEvent.objects.filter(action="test:event").count() == 3


def test_the_application_user_cannot_set_the_event_time_or_transaction(logged: AuditEvent, on_postgres: None) -> None:
    with transaction.atomic():
        forged = AuditEvent.objects.create(
            actor="user:mallory", action="test:forged", target_type="x", target_id="1", data="{}", txid=1
        )
    stored = AuditEvent.objects.get(pk=forged.pk)

    assert stored.txid != 1
    assert stored.created_at > logged.created_at


@pytest.mark.requirement("PR-11")
def test_the_admin_shows_events_without_any_way_to_change_them(cast: Cast, logged: AuditEvent) -> None:
    admin = cast.session(cast.admin)
    change_url = f"/admin/audit/auditevent/{logged.pk}/change/"

    page = admin.get(change_url)
    assert page.status_code == 200
    assert b'name="_save"' not in page.content
    assert admin.post(change_url, {"action": "test:rewritten"}).status_code == 403
    assert admin.post(f"/admin/audit/auditevent/{logged.pk}/delete/", {"post": "yes"}).status_code == 403
    assert admin.get("/admin/audit/auditevent/add/").status_code == 403
    assert AuditEvent.objects.get(pk=logged.pk).action == "test:event"
