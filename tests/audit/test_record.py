"""Every state change writes exactly one audit event in its own transaction: no change
without its event, no event without its change."""

from collections.abc import Callable
from typing import Any

import pytest
from django.db import DatabaseError, connection, transaction

from audit import record
from audit import services as audit_services
from audit.models import AuditEvent
from changelogs import services as changelog_services
from changelogs.content_rules import content_validate
from changelogs.models import Changelog, ChangelogRevision, Domain, Journey, Service
from releasegate import services as identity_services
from releasegate.models import ApiToken, User
from tests.conftest import Cast
from tests.factories import FACTORY_ACTOR, changelog_content, changelog_make


def _state() -> list[str]:
    """Every row of everything a service may change, as text: equal means nothing changed."""
    from guardian.models import UserObjectPermission

    models = (Changelog, ChangelogRevision, Domain, Service, Journey, User, ApiToken, UserObjectPermission)
    return [repr(list(model.objects.order_by("pk").values_list())) for model in models]


def _create(cast: Cast) -> Any:
    content = content_validate(kind="train", content=changelog_content())
    return changelog_services.changelog_create(
        acting_user=cast.requester, service=cast.payments_api, kind="train", content=content
    )


def _edit_draft(cast: Cast) -> Any:
    changelog = changelog_make(service=cast.payments_api)
    content = content_validate(kind="train", content=changelog_content(reason="Edited."))
    return lambda: changelog_services.changelog_edit(acting_user=cast.requester, changelog=changelog, changes=content)


def _revise(cast: Cast) -> Any:
    changelog = changelog_make(service=cast.payments_api, submitted=True)
    content = content_validate(kind="train", content=changelog_content(reason="Revised."))
    return lambda: changelog_services.changelog_edit(acting_user=cast.requester, changelog=changelog, changes=content)


def _submit(cast: Cast) -> Any:
    changelog = changelog_make(service=cast.payments_api)
    return lambda: changelog_services.changelog_submit(acting_user=cast.requester, changelog=changelog)


def _domain_save(cast: Cast) -> Any:
    return lambda: changelog_services.catalog_save(
        acting_user=cast.admin, instance=Domain(slug="cards", name="Cards", owning_squad="Cards squad")
    )


def _service_change(cast: Cast) -> Any:
    service = Service.objects.get(pk=cast.payments_api.pk)
    service.name = "Payments API v2"
    return lambda: changelog_services.catalog_save(acting_user=cast.admin, instance=service)


def _journey_save(cast: Cast) -> Any:
    return lambda: changelog_services.catalog_save(
        acting_user=cast.admin, instance=Journey(journey_id="PAY-009", name="Pay", domain=cast.payments, critical=True)
    )


def _domain_delete(cast: Cast) -> Any:
    empty = Domain.objects.create(slug="empty", name="Empty", owning_squad="Nobody")
    return lambda: changelog_services.catalog_delete(acting_user=cast.admin, instance=empty)


def _account_create(cast: Cast) -> Any:
    return lambda: identity_services.service_account_create(acting_user=cast.admin, name="cards-ci", services=[])


def _grant(cast: Cast) -> Any:
    return lambda: identity_services.service_account_grant(
        acting_user=cast.admin, account=cast.pipeline.account, service=cast.transfers_api
    )


def _revoke_scope(cast: Cast) -> Any:
    return lambda: identity_services.service_account_revoke(
        acting_user=cast.admin, account=cast.pipeline.account, service=cast.payments_api
    )


def _token_issue(cast: Cast) -> Any:
    return lambda: identity_services.api_token_issue(
        acting_user=cast.admin, account=cast.pipeline.account, name="second", scopes=["gate"]
    )


def _token_revoke(cast: Cast) -> Any:
    token = ApiToken.objects.get(service_account=cast.pipeline.account)
    return lambda: identity_services.api_token_revoke(acting_user=cast.admin, token=token)


STATUS_CHANGED = "changelog:status_changed"
SERVICES: list[tuple[str, Callable[[Cast], Any], str | tuple[str, ...]]] = [
    ("changelog_create", lambda cast: lambda: _create(cast), "changelog:created"),
    ("changelog_edit (draft)", _edit_draft, "changelog:edited"),
    # A new revision puts the changelog back to draft, and the submission moves it on: the
    # lifecycle service records each status change as an event of its own.
    ("changelog_edit (revision)", _revise, ("changelog:revised", STATUS_CHANGED)),
    ("changelog_submit", _submit, ("changelog:submitted", STATUS_CHANGED)),
    ("catalog_save (new domain)", _domain_save, "domain:saved"),
    ("catalog_save (changed service)", _service_change, "service:saved"),
    ("catalog_save (new journey)", _journey_save, "journey:saved"),
    ("catalog_delete", _domain_delete, "domain:deleted"),
    ("service_account_create", _account_create, "service_account:created"),
    ("service_account_grant", _grant, "service_account:scope_granted"),
    ("service_account_revoke", _revoke_scope, "service_account:scope_revoked"),
    ("api_token_issue", _token_issue, "api_token:issued"),
    ("api_token_revoke", _token_revoke, "api_token:revoked"),
]
IDS = [name for name, _, _ in SERVICES]


@pytest.mark.parametrize(("name", "prepare", "action"), SERVICES, ids=IDS)
def test_a_successful_change_leaves_exactly_its_matching_events(
    cast: Cast, name: str, prepare: Callable[[Cast], Any], action: str | tuple[str, ...]
) -> None:
    run = prepare(cast)
    before = AuditEvent.objects.count()

    run()

    events = list(AuditEvent.objects.filter(id__gt=0).order_by("id"))[before:]
    assert [event.action for event in events] == ([action] if isinstance(action, str) else list(action))
    assert {event.actor for event in events} <= {"user:admin", "user:requester"}


class Boom(Exception):
    pass


@pytest.mark.parametrize(("name", "prepare", "action"), SERVICES, ids=IDS)
def test_a_failure_inside_the_transaction_leaves_neither_change_nor_event(
    cast: Cast, name: str, prepare: Callable[[Cast], Any], action: str | tuple[str, ...]
) -> None:
    run = prepare(cast)
    state, events = _state(), AuditEvent.objects.count()

    def change_then_fail() -> None:
        with transaction.atomic():
            run()
            raise Boom

    with pytest.raises(Boom):
        change_then_fail()

    assert _state() == state
    assert AuditEvent.objects.count() == events


@pytest.mark.parametrize(("name", "prepare", "action"), SERVICES, ids=IDS)
def test_when_the_event_cannot_be_written_the_change_is_not_made(
    cast: Cast,
    name: str,
    prepare: Callable[[Cast], Any],
    action: str | tuple[str, ...],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    run = prepare(cast)
    state, events = _state(), AuditEvent.objects.count()

    # A real refusal by the database: the event's insert names a table that is not there.
    insert_sql = audit_services._event_insert_sql
    monkeypatch.setattr(
        audit_services,
        "_event_insert_sql",
        lambda alias: insert_sql(alias).replace('"audit_auditevent"', '"audit_unavailable"'),
    )
    with pytest.raises(DatabaseError), transaction.atomic():
        run()

    monkeypatch.undo()
    assert _state() == state
    assert AuditEvent.objects.count() == events


def test_an_event_outside_a_transaction_is_refused(transactional_db: None) -> None:
    with pytest.raises(RuntimeError, match="inside the transaction"):
        record(actor=FACTORY_ACTOR, action="test:nothing", target=("x", "1"), data={})


def test_the_actor_survives_the_deletion_of_the_account(cast: Cast) -> None:
    person = User.objects.create(username="leaver")
    with transaction.atomic():
        record(actor=person, action="test:acted", target=("x", "1"), data={})
    person.delete()

    event = AuditEvent.objects.get(action="test:acted")

    assert event.actor == "user:leaver"
    assert event.actor_id is not None


def test_an_api_request_stamps_its_events_with_the_request_id(cast: Cast) -> None:
    from tests.changelogs.test_apis_changelogs import create_body

    response = cast.pipeline.client().post(
        "/api/v1/changelogs/", create_body(), format="json", HTTP_X_REQUEST_ID="ci-run-4711-step-3"
    )

    assert response["X-Request-ID"] == "ci-run-4711-step-3"
    event = AuditEvent.objects.get(action="changelog:created")
    assert event.request_id == "ci-run-4711-step-3"
    assert event.actor == "service_account:svc-payments-ci"


def test_event_data_is_canonical_json(cast: Cast) -> None:
    with transaction.atomic():
        record(actor=FACTORY_ACTOR, action="test:data", target=("x", "1"), data={"b": "é", "a": [1, 2]})

    assert AuditEvent.objects.get(action="test:data").data == '{"a":[1,2],"b":"é"}'


def test_record_returns_the_event_as_stored(cast: Cast) -> None:
    with transaction.atomic():
        event = record(actor=cast.requester, action="test:returned", target=("x", "7"), data={"n": 1})

    stored = AuditEvent.objects.get(pk=event.pk)
    assert (event.actor, event.actor_id, event.action, event.target_type, event.target_id, event.data) == (
        stored.actor,
        stored.actor_id,
        stored.action,
        stored.target_type,
        stored.target_id,
        stored.data,
    )
    assert event.created_at == stored.created_at  # stamped by the database, loaded when read
    assert event.txid == stored.txid


def test_on_postgres_the_event_insert_is_prepared_unless_turned_off(
    transactional_db: None, on_postgres: None, settings: Any
) -> None:
    def prepared_inserts() -> int:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM pg_prepared_statements WHERE statement LIKE %s",
                ['INSERT INTO "audit_auditevent"%'],
            )
            return int(cursor.fetchone()[0])

    connection.close()  # a new session: nothing prepared yet
    settings.DATABASE_PREPARED_STATEMENTS = False
    with transaction.atomic():
        record(actor=FACTORY_ACTOR, action="test:unprepared", target=("x", "1"), data={})
    assert prepared_inserts() == 0

    settings.DATABASE_PREPARED_STATEMENTS = True
    with transaction.atomic():
        record(actor=FACTORY_ACTOR, action="test:prepared", target=("x", "1"), data={})
    assert prepared_inserts() == 1
    assert AuditEvent.objects.filter(action__in=["test:unprepared", "test:prepared"]).count() == 2
    # Django's own setting is left as it was: its cursors never prepare.
    assert connection.connection.prepare_threshold is None
