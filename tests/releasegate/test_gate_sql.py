"""The gate's one-statement read and write on PostgreSQL against its ORM path.

Every gate check in tests/releasegate is already read both ways on PostgreSQL (conftest.py).
The cases here are the ones the HTTP tests do not reach: authorities through groups, lost by
deactivation, held by pipelines; approvals that do not count for the subtler reasons; several
revisions and changelogs carrying one digest; policies of the service and of the domain;
freezes of every scope; who may ask about a service; and the rows the two writers store.
"""

import re
from datetime import timedelta
from typing import Any

import pytest
from django.apps import apps
from django.contrib.auth.models import Group, Permission
from django.db import DEFAULT_DB_ALIAS, connection, connections
from django.utils import timezone
from guardian.shortcuts import assign_perm
from rest_framework.test import APIClient

from approvals.models import Approval, Retrospective, RetrospectiveStatus
from audit.models import AuditEvent
from changelogs import parsers
from changelogs.models import Changelog, CommitAuthors, Evidence, RevisionStatus
from changelogs.policy import READINESS_SUMMARY_KEYS, EvidenceFact, PolicyRules, ReadinessFacts, readiness_findings
from changelogs.selectors import MANAGE_CHANGELOGS, changelog_lock, service_list_managed
from changelogs.services import changelog_edit, changelog_submit, commit_authors_record, policy_create
from core.actors import StepUp
from releasegate import gate, gate_sql
from releasegate.freezes import freeze_create, freeze_override_approve
from releasegate.models import GateDecision, User
from tests.changelogs.evidence_files import REAL_SAMPLES, sample
from tests.conftest import Cast
from tests.factories import (
    DIGEST,
    OTHER_DIGEST,
    DomainFactory,
    ServiceFactory,
    UserFactory,
    authority_forced,
    authority_give,
    changelog_content,
    changelog_make,
    unsigned_approvals_count,
)
from tests.releasegate.conftest import assert_backends_agree
from tests.releasegate.gate_support import approve, ready_changelog


def facts(cast: Cast, *, user: Any = None, digest: str = DIGEST, changelog_id: Any = None, now: Any = None) -> Any:
    """Read both ways (the conftest's check) and return the facts."""
    user = user or cast.pipeline.account
    now = now or timezone.now()
    question = {"acting_user": user, "service_slug": "payments-api", "digest": digest, "changelog_id": changelog_id}
    found = gate.facts_from_postgresql(**question, now=now)
    assert_backends_agree(found, **question)
    assert found is not None
    return found.facts


def approval_by(changelog: Changelog, user: User, *, decision: str = "approved", days: int = 7) -> Approval:
    """An approval written behind the service's back (a data fix, a bug): the gate counts again."""
    revision = changelog.current_revision
    assert revision is not None
    return Approval.objects.create(
        changelog=changelog,
        revision=revision,
        content_hash=revision.content_hash,
        decision=decision,
        approver=user,
        authorities=["sign_off"],
        decided_at=timezone.now(),
        expires_at=timezone.now() + timedelta(days=days),
    )


def test_authorities_through_groups_lost_by_deactivation_and_never_held_by_pipelines(
    cast: Cast, on_postgres: None
) -> None:
    unsigned_approvals_count(cast.payments)  # about authorities, not passkey signatures
    changelog = ready_changelog(
        cast, approved=False, risk_tier="high", security_impact={"declared": True, "description": "New TLS settings"}
    )
    signers = Group.objects.create(name="payments-signers")
    deputy = UserFactory(username="deputy")
    deputy.groups.add(signers)
    authority_give(domain=cast.payments, authority="sign_off", group=signers)
    authority_give(domain=cast.payments, authority="security_sign_off", user=cast.approver)
    approve(cast, changelog)
    approve(cast, changelog, deputy)
    assert facts(cast).approvals_missing == ("security_sign_off",)  # one person, one role

    authority_forced(domain=cast.payments, user=cast.other_pipeline.account)
    approval_by(changelog, cast.other_pipeline.account)
    security = UserFactory(username="security")
    authority_give(domain=cast.payments, authority="security_sign_off", user=security)
    approval_by(changelog, security)
    assert facts(cast).approval_status == "approved"

    deputy.is_active = False
    deputy.save(update_fields=["is_active"])
    found = facts(cast)
    assert found.approval_status == "pending"
    assert "no_authority" in found.not_counted


def test_approvals_that_do_not_count_for_the_subtler_reasons(cast: Cast, on_postgres: None) -> None:
    changelog = ready_changelog(cast, approved=False, commit_authors=["Dev@Bank.example", "someone"])
    uploader = UserFactory(username="uploader")
    author = UserFactory(username="SOMEONE", email="")
    dev = UserFactory(username="dev", email="dev@bank.example")
    for user in (uploader, author, dev, cast.requester):
        authority_give(domain=cast.payments, user=user)
    evidence = Evidence.objects.filter(changelog=changelog).first()
    assert evidence is not None
    Evidence.objects.filter(pk=evidence.pk).update(uploaded_by=uploader)
    for user in (uploader, author, dev):
        approval_by(changelog, user)
    approval_by(changelog, cast.approver, days=-1)  # expired
    approval_by(changelog, cast.approver)
    approval_by(changelog, cast.approver)  # the same person again

    found = facts(cast)

    assert found.approval_status == "approved"
    assert sorted(found.not_counted) == sorted(
        ["evidence_uploader", "commit_author", "commit_author", "expired", "duplicate_approver"]
    )
    approval_by(changelog, cast.requester, decision="rejected")
    assert facts(cast).approval_status == "rejected"


def test_commit_authors_read_from_the_source_and_the_policy_that_requires_them(cast: Cast, on_postgres: None) -> None:
    changelog = ready_changelog(cast, approved=False, commit_authors=["dev@bank.example"])
    policy_create(
        acting_user=cast.admin,
        domain=cast.payments,
        rules={"require_verified_commit_authors": ["medium", "high"]},
        reason="Authors from GitHub",
    )
    writer = UserFactory(username="writer", email="writer@bank.example")
    coauthor = UserFactory(username="octo", email="")
    for user in (writer, coauthor):
        authority_give(domain=cast.payments, user=user)
        approval_by(changelog, user)
    assert facts(cast).commit_authors_unverified is True
    assert facts(cast).approval_status == "approved"  # nobody knows yet that they wrote it

    revision = changelog.current_revision
    assert revision is not None
    commit_authors_record(
        revision=revision,
        status="incomplete",
        source="compare",
        authors=[
            {"name": "W", "email": "Writer@Bank.example", "login": "", "role": "author"},
            {"name": "O", "email": "1+octo@users.noreply.github.com", "login": "", "role": "co_author"},
        ],
    )
    found = facts(cast)
    assert found.commit_authors_unverified is True  # read in part: still not verified
    assert sorted(found.not_counted) == ["commit_author", "commit_author"]

    CommitAuthors.objects.filter(revision=revision).update(status="read")
    assert facts(cast).commit_authors_unverified is False


def test_several_revisions_and_changelogs_with_one_digest(cast: Cast, on_postgres: None) -> None:
    first = ready_changelog(cast)
    locked = changelog_lock(changelog=first)
    changelog_edit(acting_user=cast.pipeline.account, changelog=locked, changes=changelog_content(reason="Edited"))
    found = facts(cast)
    assert found.revision_status == RevisionStatus.DRAFT  # the newest, as nothing with the digest is submitted

    second = changelog_make(service=cast.payments_api, by=cast.pipeline.account, submitted=True)
    assert facts(cast).revision_status == RevisionStatus.SUBMITTED  # a submitted one first
    assert facts(cast, changelog_id=first.pk).revision_status == RevisionStatus.DRAFT
    assert facts(cast, changelog_id=second.pk).revision_status == RevisionStatus.SUBMITTED
    assert facts(cast, digest=OTHER_DIGEST).changelog_found is False

    changelog_submit(acting_user=cast.pipeline.account, changelog=changelog_lock(changelog=first))
    assert facts(cast, changelog_id=first.pk).approvals_missing == ("sign_off",)


def test_the_policy_of_the_service_before_its_domains(cast: Cast, on_postgres: None) -> None:
    ready_changelog(cast)
    policy_create(acting_user=cast.admin, domain=cast.payments, rules={"max_p95_ms": 1}, reason="Fast")
    policy_create(
        acting_user=cast.admin, domain=cast.payments, rules={"critical_journeys": ["PAY-009"]}, reason="One journey"
    )
    found = facts(cast)
    assert [code for code, _ in found.findings] == ["journey_not_covered"]
    policy_create(
        acting_user=cast.admin,
        domain=cast.payments,
        service=cast.payments_api,
        rules={"required_approvals": {"low": 2, "medium": 2, "high": 2, "critical": 3}},
        reason="Two people",
    )
    assert facts(cast).approvals_missing == ("sign_off",)


def test_freezes_of_every_scope_with_overrides(cast: Cast, on_postgres: None) -> None:
    changelog = ready_changelog(cast)
    now = timezone.now()
    windows = [
        freeze_create(
            acting_user=cast.admin,
            domain=domain,
            starts_at=now - timedelta(hours=hours),
            ends_at=now + timedelta(hours=1),
            reason=reason,
        )
        for domain, hours, reason in [
            (None, 3, "Year end"),
            (cast.payments, 2, "Payments migration"),
            (cast.transfers, 1, "Transfers migration"),
            (None, 1, "Same start"),
        ]
    ]
    freeze_create(
        acting_user=cast.admin,
        domain=None,
        starts_at=now + timedelta(hours=1),
        ends_at=now + timedelta(hours=2),
        reason="Later",
    )
    freeze_override_approve(
        acting_user=cast.approver,
        freeze=windows[1],
        changelog=changelog,
        reason="Fixes fees",
        step_up=StepUp.of(cast.approver),
    )

    found = facts(cast, now=now)

    # Newest start first; the transfers freeze and the later one do not apply.
    assert [(f.reason, f.overridden) for f in found.active_freezes] == [
        ("Same start", False),
        ("Payments migration", True),
        ("Year end", False),
    ]
    unknown = facts(cast, digest=OTHER_DIGEST, now=now)
    assert [(f.reason, f.overridden) for f in unknown.active_freezes] == [
        ("Same start", False),
        ("Payments migration", False),
        ("Year end", False),
    ]


@pytest.mark.requirement("PR-09")
def test_overdue_retrospectives_of_the_service_only(cast: Cast, on_postgres: None) -> None:
    ready_changelog(cast)
    other = changelog_make(service=cast.transfers_api, kind="hotfix")
    mine = changelog_make(
        service=cast.payments_api, kind="hotfix", artifact={**changelog_content()["artifact"], "digest": OTHER_DIGEST}
    )
    now = timezone.now()
    for changelog in (other, mine, mine.__class__.objects.get(pk=other.pk)):
        Retrospective.objects.get_or_create(
            changelog=changelog,
            defaults={
                "service_id": changelog.service_id,
                "opened_at": now,
                "due_at": now,
                "status": RetrospectiveStatus.OVERDUE,
            },
        )
    assert facts(cast).overdue_retrospectives == 1


@pytest.mark.parametrize(
    "who",
    ["superuser", "global", "global_group", "object", "object_group", "inactive_global", "inactive_object", "nobody"],
)
def test_who_may_ask_about_a_service(cast: Cast, who: str) -> None:
    """On any database: on PostgreSQL the right is read with the facts, elsewhere through guardian."""
    user = UserFactory(
        username=f"asker-{who}", is_superuser=who == "superuser", is_active=not who.startswith("inactive")
    )
    manage = Permission.objects.get(codename="manage_changelogs")
    group = Group.objects.create(name=f"group-{who}")
    user.groups.add(group)
    if who in {"global", "inactive_global"}:
        user.user_permissions.add(manage)
    if who == "global_group":
        group.permissions.add(manage)
    if who in {"object", "inactive_object"}:
        assign_perm(MANAGE_CHANGELOGS, user, cast.payments_api)
    if who == "object_group":
        assign_perm(MANAGE_CHANGELOGS, group, cast.payments_api)
    assign_perm(MANAGE_CHANGELOGS, user, cast.transfers_api)  # another service's right counts for nothing
    user = User.objects.get(pk=user.pk)  # fresh: no permission cache

    decision = gate.gate_check_as_caller(
        acting_user=user, service_slug="payments-api", environment="production", digest=DIGEST
    )

    may = service_list_managed(user=User.objects.get(pk=user.pk)).filter(pk=cast.payments_api.pk).exists()
    assert (decision is not None) == may
    assert may == (who not in {"inactive_global", "nobody"})
    assert (
        gate.gate_check_as_caller(
            acting_user=user, service_slug="no-such-service", environment="production", digest=DIGEST
        )
        is None
    )


def test_both_writers_store_the_same_decision_and_event(
    cast: Cast, on_postgres: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    ready_changelog(cast)
    now = timezone.now()

    def check() -> GateDecision:
        return gate.gate_check(
            acting_user=cast.pipeline.account,
            service=cast.payments_api,
            environment="production",
            digest=DIGEST,
            token_prefix="rgp_x",
            now=now,
        )

    by_sql = check()
    monkeypatch.setattr(gate, "_on_postgresql", lambda: False)
    by_orm = check()

    def stored(decision: GateDecision) -> tuple[dict[str, Any], dict[str, Any]]:
        row = GateDecision.objects.filter(pk=decision.pk).values().get()
        event = (
            AuditEvent.objects.filter(target_type="releasegate.gatedecision", target_id=str(decision.pk)).values().get()
        )
        for key in ("id", "duration_ms"):
            row.pop(key)
        for key in ("id", "created_at", "txid", "target_id"):
            event.pop(key)
        return row, event

    assert stored(by_sql) == stored(by_orm)
    assert by_sql.duration_ms > 0
    assert not by_sql._state.adding


def test_without_prepared_statements(cast: Cast, on_postgres: None, settings: Any) -> None:
    settings.DATABASE_PREPARED_STATEMENTS = False
    ready_changelog(cast)
    assert facts(cast).approval_status == "approved"
    settings.DATABASE_PREPARED_STATEMENTS = True
    assert facts(cast).approval_status == "approved"
    # Django's own setting is left as it was: its cursors never prepare.
    assert connection.connection.prepare_threshold is None


def test_the_summary_keys_the_gate_reads_are_all_readiness_reads() -> None:
    """The gate fetches only READINESS_SUMMARY_KEYS of each summary: readiness must read no
    other key of any real sample's summary, whatever its kind."""
    read: set[str] = set()

    class Recording(dict[str, Any]):
        def get(self, key: str, default: Any = None) -> Any:
            read.add(key)
            return super().get(key, default)

        def __getitem__(self, key: str) -> Any:
            read.add(key)
            return super().__getitem__(key)

    evidence = []
    for path, kind, fmt in REAL_SAMPLES:
        summary = parsers.parse(fmt, sample(path)).to_dict()
        for environment in ("staging", "production"):
            for as_kind in {kind, "sanity", "performance", "security"}:
                evidence.append(
                    EvidenceFact(
                        id=path,
                        kind=as_kind,
                        format=fmt,
                        file_name=path,
                        environment=environment,
                        verdict="pass",
                        summary=Recording(summary),
                    )
                )
    readiness_findings(
        PolicyRules(), ReadinessFacts(changelog_kind="train", domain_critical_journeys=("PAY-001",), evidence=evidence)
    )

    assert read <= set(READINESS_SUMMARY_KEYS)
    assert read


def test_the_facts_of_a_domain_with_no_policy_and_no_journeys(db: None) -> None:
    domain = DomainFactory(slug="cards")
    service = ServiceFactory(slug="cards-api", domain=domain)
    user = UserFactory(username="cards-admin", is_superuser=True)
    decision = gate.gate_check_as_caller(
        acting_user=user, service_slug="cards-api", environment="production", digest=DIGEST
    )
    assert decision is not None
    assert decision.service == service
    assert decision.outcome == "deny"
    assert decision.policy == ""


def test_the_planned_window_and_the_policys_grace_are_read_alike(cast: Cast, on_postgres: None) -> None:
    ready_changelog(cast, planned_window={"start": "2026-12-01T09:00:00Z", "end": "2026-12-01T10:00:00Z"})
    policy_create(
        acting_user=cast.admin, domain=cast.payments, rules={"planned_window_grace_minutes": 45}, reason="Late trains"
    )
    now = timezone.now()

    window = facts(cast, now=now).planned_window

    assert window is not None
    assert (window.start.isoformat(), window.end.isoformat()) == (
        "2026-12-01T09:00:00+00:00",
        "2026-12-01T10:00:00+00:00",
    )
    assert (window.grace_minutes, window.checked_at) == (45, now)


def _tables_named(sql: str) -> set[str]:
    """The tables a statement reads or writes (its CTEs left out)."""
    named = set(re.findall(r"\b(?:FROM|JOIN|INTO)\s+([a-z_][a-z0-9_]*)", sql))
    ctes = set(re.findall(r"\b([a-z_]+) AS \(", sql))
    return named - ctes - {"unnest", "jsonb_array_elements"}


def test_the_statements_name_only_the_models_tables() -> None:
    """gate_sql's statements are built from the models: every table they name is a model's
    table (so a table renamed in a model is renamed in the SQL with it), and no name is left
    hard-coded where the models can no longer see it."""
    read, write = gate_sql.statements()
    tables = {model._meta.db_table for model in apps.get_models(include_auto_created=True)}

    assert _tables_named(read) | _tables_named(write) <= tables
    assert {"changelogs_service", "approvals_approval", "incidents_incident", "releasegate_gatedecision"} <= (
        _tables_named(read) | _tables_named(write)
    )
    assert (read, write) == (gate_sql.READ_SQL, gate_sql.WRITE_SQL)


def test_a_renamed_table_is_renamed_in_the_statements(monkeypatch: pytest.MonkeyPatch) -> None:
    from changelogs.models import Service

    monkeypatch.setattr(Service._meta, "db_table", "changelogs_renamed_service")
    monkeypatch.setattr(Approval._meta, "db_table", "approvals_renamed_approval")
    read, _ = gate_sql.statements()

    assert {"changelogs_renamed_service", "approvals_renamed_approval"} <= _tables_named(read)
    assert not {"changelogs_service", "approvals_approval"} & _tables_named(read)


def test_the_statements_run_against_the_migrated_schema(cast: Cast, on_postgres: None) -> None:
    """What the migrations made is what the models say: PostgreSQL plans both statements."""
    read, write = gate_sql.statements()
    with connection.cursor() as cursor:
        for statement in (read, write):
            cursor.execute("PREPARE gate_statement_check AS " + re.sub(r"%\((\w+)\)s", "NULL", statement))
            cursor.execute("DEALLOCATE gate_statement_check")


GATE_QUESTION = {"service": "payments-api", "environment": "production", "artifact_digest": DIGEST}


def test_a_check_is_its_read_and_its_write_each_a_transaction_of_its_own(
    cast: Cast, on_postgres: None, transactional_db: None
) -> None:
    """Outside the request's transaction (GateCheckApi) a check sends no BEGIN and no COMMIT:
    its read and its write run in autocommit, and the write commits the decision with its
    audit event (issue 17: two round trips fewer)."""
    ready_changelog(cast)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {cast.pipeline.token}")
    client.post("/api/v1/gate/check", GATE_QUESTION, format="json")  # the token's last use is written once
    in_transaction: list[tuple[str, bool]] = []

    def noted(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        # The gate's statements (the tests' conftest also reads each check through the ORM).
        if sql in (gate_sql.READ_SQL, gate_sql.WRITE_SQL):
            name = "read" if sql == gate_sql.READ_SQL else "write"
            in_transaction.append((name, connection.in_atomic_block or not connection.get_autocommit()))
        return execute(sql, params, many, context)

    with connection.execute_wrapper(noted):
        response = client.post("/api/v1/gate/check", GATE_QUESTION, format="json")

    assert response.status_code == 200
    assert response.json()["decision"] == "allow"
    assert in_transaction == [("read", False), ("write", False)]
    decision = GateDecision.objects.get(pk=response.json()["decision_id"])
    assert AuditEvent.objects.filter(target_type="releasegate.gatedecision", target_id=str(decision.pk)).count() == 1


def test_a_write_that_fails_leaves_neither_the_decision_nor_its_event(
    cast: Cast, on_postgres: None, transactional_db: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    ready_changelog(cast)
    events = AuditEvent.objects.count()
    failing = gate_sql.WRITE_SQL.replace(AuditEvent._meta.db_table, "audit_unavailable")
    monkeypatch.setattr(gate_sql, "WRITE_SQL", failing)
    client = APIClient(raise_request_exception=False)
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {cast.pipeline.token}")

    response = client.post("/api/v1/gate/check", GATE_QUESTION, format="json")

    assert response.status_code == 500
    assert not GateDecision.objects.exists()
    assert AuditEvent.objects.count() == events


def test_the_read_stands_in_for_the_connections_health_check(
    cast: Cast, on_postgres: None, transactional_db: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """CONN_HEALTH_CHECKS asks the connection with a round trip of its own before a request's
    first statement; the gate check's read does instead (issue 17), and a connection the
    database dropped meanwhile is replaced as the health check would have replaced it."""
    ready_changelog(cast)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {cast.pipeline.token}")
    client.post("/api/v1/gate/check", GATE_QUESTION, format="json")  # the token's last use is written once
    asked: list[bool] = []
    usable = connection.is_usable
    monkeypatch.setattr(connection, "is_usable", lambda: asked.append(True) or usable())

    def check() -> Any:
        connection.close_if_unusable_or_obsolete()  # a new request, as request_started does under a server
        return client.post("/api/v1/gate/check", GATE_QUESTION, format="json")

    assert check().json()["decision"] == "allow"
    assert asked == []

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        (pid,) = cursor.fetchone()
    other = connections.create_connection(DEFAULT_DB_ALIAS)
    try:
        with other.cursor() as cursor:
            cursor.execute("SELECT pg_terminate_backend(%s, 5000)", [pid])
    finally:
        other.close()
    response = check()

    assert response.status_code == 200
    assert response.json()["decision"] == "allow"
    assert asked == [True]
    assert GateDecision.objects.filter(pk=response.json()["decision_id"]).exists()
