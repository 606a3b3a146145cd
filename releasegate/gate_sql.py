"""The gate's read and write on PostgreSQL: one prepared statement each.

The gate is on every pipeline's way to production, and what it costs is not the decision but
getting the facts to it: through the ORM a check took 25 statements (bench/gate.py), each
built by the ORM and parsed and planned by PostgreSQL, for a decision that takes microseconds.
Here the same facts come back as one JSON document from one statement, and the decision and
its audit event go in with one more:

- ``read`` gathers, for one service (named by its slug) and one artifact digest: the service
  and its domain, the permissions by which the asking user may act on the service (what
  ``changelogs.selectors.service_list_managed`` looks at through django-guardian), the policy
  version in force, the domain's critical journeys, the revision carrying the digest with its
  changelog (its content holds the planned window the gate checks the time against), the
  evidence attached to it, everyone who requested the change, the commit authors read from the
  source host for the revision, the approvals of the changelog with the authorities that count
  for each approver now (and those held only through a grant the approver asked for or
  confirmed), the service's overdue hotfix retrospectives and the freezes active at ``now``
  with their overrides.
- ``write`` inserts the gate decision and its audit event (a data-modifying CTE).

Both run as prepared statements (``audit.database.prepared_cursor``): the read takes
PostgreSQL several times longer to plan than to run, and prepared it is planned once per
connection. Its one text column keeps its type whatever a migration changes, so a prepared
read never fails on a changed row type.

The read also takes the business clock's time (``audit.clock.business_now``: the statement's
timestamp) unless the caller gives one, which saves the check a round trip.

The statements name their tables and compare with their constants (statuses, kinds, the
permission's codename) through ``statement_names``, from the models' ``_meta.db_table`` and
choices: a table renamed in a model is renamed here, and test_gate_sql.py checks that every
table the SQL names is a model's.

``releasegate.gate.facts_from_postgresql`` turns the document into the same ``Snapshot`` as its
ORM backend, which stays the reference and the backend on SQLite; on PostgreSQL the tests read
every gate check both ways and compare the snapshots (tests/releasegate/conftest.py,
test_gate_sql.py). One statement also reads at one moment in
the strict sense: it sees one snapshot of the database, where the ORM's statements each see
their own.
"""

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from string import Template
from typing import Any
from uuid import UUID

from django.contrib.auth.models import Group, Permission
from django.contrib.contenttypes.models import ContentType
from django.db import DatabaseError, connection, models
from guardian.models import GroupObjectPermission, UserObjectPermission

from approvals.models import (
    Approval,
    ApprovalSignature,
    AuthorityGrant,
    GrantKind,
    GrantStatus,
    Retrospective,
    RetrospectiveStatus,
)
from approvals.rules import Authority
from audit.database import prepared_cursor
from audit.models import AuditAlarm, AuditEvent
from changelogs import models as changelogs_models
from changelogs.policy import READINESS_SUMMARY_KEYS
from changelogs.selectors import MANAGE_CHANGELOGS
from incidents.models import Incident, IncidentGatePolicy
from incidents.rules import DEFAULT_GATE_SEVERITY, UNRESOLVED
from releasegate.models import ApiToken, FreezeOverride, FreezeWindow, GateDecision, User

_READ = """
WITH clock AS (
    -- The business clock (audit.clock.business_now), unless the caller gives the time.
    SELECT coalesce(%(now)s::timestamptz, statement_timestamp()) AS now
),
-- The API token named by its public prefix, when the caller is authenticated together with the
-- facts (releasegate.apis.GateCheckApi.token_read_with_facts, which checks it exactly as every endpoint
-- does), and the user the facts are read for: the one given, else the token's service account.
token AS (
    SELECT t.* FROM ${api_token} t WHERE t.prefix = %(token_prefix)s
),
caller AS (
    SELECT coalesce(%(user)s::bigint, (SELECT token.service_account_id FROM token)) AS id
),
service AS (
    SELECT s.id, s.slug, s.name, s.repository_url, s.domain_id,
           d.slug AS domain_slug, d.name AS domain_name, d.owning_squad AS domain_owning_squad
    FROM ${service} s
    JOIN ${domain} d ON d.id = s.domain_id
    WHERE s.slug = %(service)s
),
content_types AS (
    SELECT (SELECT id FROM ${content_type} WHERE app_label = ${service_app} AND model = ${service_model}) AS service
),
-- Signing authorities in force on the service's domain (approvals.AuthorityGrant), per person,
-- with the administrators who asked for or confirmed any grant on the way (NULL for grants held
-- before the two-person rule): a grant to the person, or a grant to a group and the person's
-- membership grant of that group (approvals.selectors._paths).
held AS (
    SELECT g.user_id, g.authority, ARRAY[g.requested_by_id, g.decided_by_id] AS involved
    FROM ${grant} g
    WHERE g.status = ${active} AND g.kind = ${authority_kind} AND g.user_id IS NOT NULL
      AND g.domain_id = (SELECT domain_id FROM service) AND g.authority = ANY(%(authorities)s::text[])
    UNION ALL
    SELECT m.user_id, g.authority, ARRAY[g.requested_by_id, g.decided_by_id, m.requested_by_id, m.decided_by_id]
    FROM ${grant} g
    JOIN ${grant} m ON m.group_id = g.group_id AND m.kind = ${membership_kind} AND m.status = ${active}
    WHERE g.status = ${active} AND g.kind = ${authority_kind} AND g.group_id IS NOT NULL
      AND g.domain_id = (SELECT domain_id FROM service) AND g.authority = ANY(%(authorities)s::text[])
),
-- The revision of the service carrying the digest: a submitted one if there is one, else the
-- newest (so that a draft or superseded one can be named in the denial).
revision AS (
    SELECT r.id, r.number, r.status, r.content, r.content_hash, r.artifact_digest, r.changelog_id,
           c.kind AS changelog_kind, c.status AS changelog_status, c.created_by_id AS changelog_created_by_id
    FROM ${revision} r
    JOIN ${changelog} c ON c.id = r.changelog_id
    WHERE c.service_id = (SELECT id FROM service) AND r.artifact_digest = %(digest)s
      AND (%(changelog)s::uuid IS NULL OR r.changelog_id = %(changelog)s::uuid)
    ORDER BY r.status <> ${submitted}, r.created_at DESC, r.id
    LIMIT 1
)
SELECT json_build_object(
    'now', (SELECT now FROM clock),
    'token', (SELECT row_to_json(token) FROM token),
    'token_account', (SELECT row_to_json(u) FROM ${user} u WHERE u.id = (SELECT token.service_account_id FROM token)),
    'service', json_build_object(
        'id', service.id, 'slug', service.slug, 'name', service.name, 'repository_url', service.repository_url,
        'domain_id', service.domain_id,
        'domain', json_build_object('id', service.domain_id, 'slug', service.domain_slug, 'name', service.domain_name,
                                    'owning_squad', service.domain_owning_squad)),
    -- May the user act on the service? The permissions django-guardian's get_objects_for_user(
    -- user, 'changelogs.manage_changelogs', Service, accept_global_perms=True) looks at: held
    -- globally (directly or through a group; it counts for active users only, which
    -- releasegate.gate decides with the user's flags) or on this service (directly or through
    -- a group).
    'manage_globally', EXISTS (
        SELECT 1 FROM ${permission} p JOIN ${content_type} ct ON ct.id = p.content_type_id
        WHERE ct.app_label = ${service_app} AND p.codename = ${manage}
          AND (EXISTS (SELECT 1 FROM ${user_permissions} up
                       WHERE up.user_id = (SELECT id FROM caller) AND up.permission_id = p.id)
               OR EXISTS (SELECT 1 FROM ${group_permissions} gp
                          JOIN ${user_groups} ug ON ug.group_id = gp.group_id
                          WHERE ug.user_id = (SELECT id FROM caller) AND gp.permission_id = p.id))),
    'manage_service', EXISTS (
        SELECT 1 FROM ${user_object_permission} g JOIN ${permission} p ON p.id = g.permission_id
        WHERE g.user_id = (SELECT id FROM caller) AND g.object_pk = service.id::text
          AND p.codename = ${manage} AND p.content_type_id = content_types.service
        UNION ALL
        SELECT 1 FROM ${group_object_permission} g JOIN ${permission} p ON p.id = g.permission_id
        JOIN ${user_groups} ug ON ug.group_id = g.group_id
        WHERE ug.user_id = (SELECT id FROM caller) AND g.object_pk = service.id::text
          AND p.codename = ${manage} AND p.content_type_id = content_types.service),
    -- The policy in force: the service's latest version, else its domain's, else none (the
    -- defaults). Its rules as text: they are parsed once per process (releasegate.gate).
    'policy', CASE WHEN policy.id IS NOT NULL THEN json_build_object(
        'id', policy.id, 'of_service', policy.service_id IS NOT NULL, 'version', policy.version,
        'rules', policy.rules::text) END,
    'critical_journeys', ARRAY(
        SELECT j.journey_id FROM ${journey} j
        WHERE j.domain_id = service.domain_id AND j.critical ORDER BY j.journey_id),
    'overdue_retrospectives', (
        SELECT count(*) FROM ${retrospective} t WHERE t.service_id = service.id AND t.status = ${overdue}),
    'revision', CASE WHEN revision.id IS NOT NULL THEN json_build_object(
        'id', revision.id, 'number', revision.number, 'status', revision.status, 'content', revision.content,
        'content_hash', revision.content_hash, 'artifact_digest', revision.artifact_digest,
        'changelog_id', revision.changelog_id, 'changelog_kind', revision.changelog_kind,
        'changelog_status', revision.changelog_status,
        'changelog_created_by_id', revision.changelog_created_by_id) END,
    -- The revision's evidence, with only the summary keys readiness reads: a test report's
    -- summary lists every test case, which readiness never looks at (and which is not even
    -- copied: only the wanted keys are looked up).
    'evidence', coalesce((
        SELECT json_agg(json_build_object(
            'id', e.id, 'kind', e.kind, 'format', e.format, 'file_name', e.file_name,
            'environment', e.environment, 'verdict', e.verdict, 'artifact_digest', e.artifact_digest,
            'sha256', e.sha256,
            'summary', (SELECT coalesce(jsonb_object_agg(key, e.summary -> key), '{}')
                        FROM unnest(%(summary_keys)s::text[]) AS key WHERE e.summary ? key),
            'uploaded_by_id', e.uploaded_by_id) ORDER BY e.uploaded_at, e.id)
        FROM ${evidence} e JOIN ${evidence_revisions} er ON er.evidence_id = e.id
        WHERE er.changelogrevision_id = revision.id), '[]'),
    -- The changes a train lists (content 'bundles'), of the same service, as they are now. By
    -- their ids as UUIDs (content validation made them so; a malformed one fails the read, as
    -- the ORM's lookup fails): compared as text, no index served them and the generic plan
    -- read every changelog of the service (21 ms for two on bench/gate.py's large history).
    'bundled', coalesce((
        SELECT json_agg(json_build_object('id', c.id, 'status', c.status, 'content_hash', cr.content_hash))
        FROM ${changelog} c LEFT JOIN ${revision} cr ON cr.id = c.current_revision_id
        WHERE c.service_id = service.id AND c.id IN (
            SELECT (b ->> 'changelog')::uuid
            FROM jsonb_array_elements(coalesce(revision.content -> 'bundles', '[]')) b)),
        '[]'),
    -- Who created, edited into being or submitted any revision of the change (with the
    -- changelog's creator, in 'revision'; duplicates and nulls are left to releasegate.gate).
    'requester_ids', ARRAY(
        SELECT r.created_by_id FROM ${revision} r WHERE r.changelog_id = revision.changelog_id
        UNION ALL
        SELECT r.submitted_by_id FROM ${revision} r WHERE r.changelog_id = revision.changelog_id),
    -- The revision's commit authors as read from the source host (changelogs.selectors.
    -- commit_authors_of; which of them count is decided in Python, changelogs/authors.py).
    'commit_authors', (
        SELECT json_build_object('status', ca.status, 'source', ca.source, 'authors', ca.authors)
        FROM ${commit_authors} ca WHERE ca.revision_id = revision.id),
    -- Every approval of the changelog (of any revision), with the signing authorities that
    -- count for its approver on the domain now: held through grants in force (approvals.
    -- AuthorityGrant: a grant to the person, or to a group with a membership grant), none of
    -- which the approver asked for or confirmed; and those held only through such a grant.
    -- None for an inactive user or a service account (approvals.selectors.authorities_of).
    'approvals', coalesce((
        SELECT json_agg(json_build_object(
            'id', a.id, 'approver_id', a.approver_id, 'approver_username', u.username, 'approver_email', u.email,
            'decision', a.decision, 'revision_number', ar.number, 'content_hash', a.content_hash,
            'decided_at', a.decided_at, 'expires_at', a.expires_at,
            'signed', EXISTS (SELECT 1 FROM ${approval_signature} s WHERE s.approval_id = a.id),
            'authorities_now', CASE WHEN u.is_active AND NOT u.is_service_account THEN ARRAY(
                SELECT DISTINCT h.authority FROM held h
                WHERE h.user_id = u.id AND array_position(h.involved, u.id) IS NULL ORDER BY 1)
            ELSE '{}' END,
            'authorities_self_granted', CASE WHEN u.is_active AND NOT u.is_service_account THEN ARRAY(
                SELECT h.authority FROM held h WHERE h.user_id = u.id
                EXCEPT
                SELECT h.authority FROM held h WHERE h.user_id = u.id AND array_position(h.involved, u.id) IS NULL
                ORDER BY 1)
            ELSE '{}' END) ORDER BY a.decided_at, a.id)
        FROM ${approval} a
        JOIN ${user} u ON u.id = a.approver_id
        JOIN ${revision} ar ON ar.id = a.revision_id
        WHERE a.changelog_id = revision.changelog_id), '[]'),
    -- Freezes active now, of the service's domain or global, and whether an approved override
    -- covers this changelog.
    'freezes', coalesce((
        SELECT json_agg(json_build_object(
            'id', f.id, 'scope', coalesce(fd.slug, 'global'), 'reason', f.reason,
            'overridden', EXISTS (SELECT 1 FROM ${freeze_override} o
                                  WHERE o.freeze_id = f.id AND o.changelog_id = revision.changelog_id))
            ORDER BY f.starts_at DESC, f.id)
        FROM ${freeze} f LEFT JOIN ${domain} fd ON fd.id = f.domain_id
        WHERE f.ends_at > (SELECT now FROM clock) AND f.starts_at <= (SELECT now FROM clock)
          AND (f.domain_id IS NULL OR f.domain_id = service.domain_id)), '[]'),
    -- The domain's incident rule (incidents.IncidentGatePolicy; without one, high and above;
    -- NULL when switched off) and its unresolved incidents, as (reference, severity): which
    -- of them stop this change is decided in Python (incidents.rules.blocking_incidents).
    'incident_min_severity', coalesce((
        SELECT CASE WHEN ip.enabled THEN ip.min_severity END FROM ${incident_gate_policy} ip
        WHERE ip.domain_id = service.domain_id), CASE WHEN NOT EXISTS (
            SELECT 1 FROM ${incident_gate_policy} ip WHERE ip.domain_id = service.domain_id)
            THEN %(incident_default_severity)s END),
    'open_incidents', coalesce((
        SELECT json_agg(json_build_array(i.reference, i.severity) ORDER BY i.reference, i.severity)
        FROM ${incident} i
        WHERE i.status IN (${unresolved}) AND EXISTS (
            SELECT 1 FROM ${incident_services} isv JOIN ${service} sv ON sv.id = isv.service_id
            WHERE isv.incident_id = i.id AND sv.domain_id = service.domain_id)), '[]'),
    -- An open audit alarm (audit.alarms): the trail cannot vouch for a decision now.
    'audit_alarm_open', EXISTS (SELECT 1 FROM ${alarm} al WHERE al.resolved_at IS NULL)
)::text
FROM service
CROSS JOIN content_types
LEFT JOIN LATERAL (
    SELECT p.id, p.service_id, p.version, p.rules FROM ${policy} p
    WHERE p.service_id = service.id OR (p.domain_id = service.domain_id AND p.service_id IS NULL)
    ORDER BY p.service_id IS NULL, p.version DESC
    LIMIT 1
) AS policy ON true
LEFT JOIN revision ON true
"""

# The decision and its audit event, in one statement: PostgreSQL runs a data-modifying WITH
# to completion whether or not the main statement reads it, so the event is written whenever
# the decision is, in the same transaction (an answer of the gate is never unaudited).
_WRITE = """
WITH decision AS (
    INSERT INTO ${gate_decision} (
        id, service_id, environment, artifact_digest, changelog_id, revision_id, outcome, reasons, policy,
        requested_by_id, token_prefix, evaluated_at, valid_until, duration_ms)
    VALUES (%(id)s, %(service_id)s, %(environment)s, %(artifact_digest)s, %(changelog_id)s, %(revision_id)s,
            %(outcome)s, %(reasons)s::jsonb, %(policy)s, %(requested_by_id)s, %(token_prefix)s, %(evaluated_at)s,
            %(valid_until)s, %(duration_ms)s)
)
INSERT INTO ${audit_event} (actor, actor_id, action, target_type, target_id, data, request_id)
VALUES (%(actor)s, %(actor_id)s, %(action)s, %(target_type)s, %(target_id)s, %(data)s, %(request_id)s)
"""


def _literal(value: str) -> str:
    """A string constant of the statements (a status, a codename: never input), quoted."""
    return "'" + value.replace("'", "''") + "'"


def _through(model: type[models.Model], field: str) -> type[models.Model]:
    through: type[models.Model] = model._meta.get_field(field).remote_field.through  # type: ignore[union-attr]
    return through


def statement_names() -> dict[str, str]:
    """Every table the statements name, from the models (``_meta.db_table``), and every
    constant they compare with, from the models' choices: a renamed table or status changes
    the SQL with it (tests/releasegate/test_gate_sql.py checks the SQL against the models)."""
    tables: Mapping[str, type[models.Model]] = {
        "alarm": AuditAlarm,
        "api_token": ApiToken,
        "approval": Approval,
        "approval_signature": ApprovalSignature,
        "audit_event": AuditEvent,
        "changelog": changelogs_models.Changelog,
        "commit_authors": changelogs_models.CommitAuthors,
        "content_type": ContentType,
        "domain": changelogs_models.Domain,
        "evidence": changelogs_models.Evidence,
        "evidence_revisions": _through(changelogs_models.Evidence, "revisions"),
        "freeze": FreezeWindow,
        "freeze_override": FreezeOverride,
        "gate_decision": GateDecision,
        "grant": AuthorityGrant,
        "group_object_permission": GroupObjectPermission,
        "group_permissions": _through(Group, "permissions"),
        "incident": Incident,
        "incident_gate_policy": IncidentGatePolicy,
        "incident_services": _through(Incident, "services"),
        "journey": changelogs_models.Journey,
        "permission": Permission,
        "policy": changelogs_models.Policy,
        "retrospective": Retrospective,
        "revision": changelogs_models.ChangelogRevision,
        "service": changelogs_models.Service,
        "user": User,
        "user_groups": _through(User, "groups"),
        "user_object_permission": UserObjectPermission,
        "user_permissions": _through(User, "user_permissions"),
    }
    codename = MANAGE_CHANGELOGS.split(".")[1]
    return {
        **{name: model._meta.db_table for name, model in tables.items()},
        "service_app": _literal(changelogs_models.Service._meta.app_label),
        "service_model": _literal(changelogs_models.Service._meta.model_name or ""),
        "manage": _literal(codename),
        "active": _literal(GrantStatus.ACTIVE),
        "authority_kind": _literal(GrantKind.AUTHORITY),
        "membership_kind": _literal(GrantKind.MEMBERSHIP),
        "overdue": _literal(RetrospectiveStatus.OVERDUE),
        "submitted": _literal(changelogs_models.RevisionStatus.SUBMITTED),
        "unresolved": ", ".join(_literal(status) for status in sorted(UNRESOLVED)),
    }


def statements(names: Mapping[str, str] | None = None) -> tuple[str, str]:
    """The read and the write, with the names of ``statement_names``."""
    names = statement_names() if names is None else names
    return Template(_READ).substitute(names), Template(_WRITE).substitute(names)


READ_SQL, WRITE_SQL = statements()


@dataclass(frozen=True)
class GateRow:
    """What ``read`` found, as plain values (see READ_SQL for each). ``revision`` is None when
    no revision of the service carries the digest; the changelog's lists are empty then."""

    now: datetime  # the time the facts are read at: the caller's, or the business clock's
    token: dict[str, Any] | None  # the API token's row by column, when read by its prefix; None: not found
    token_account: dict[str, Any] | None  # its service account's row by column

    service: dict[str, Any]  # with its "domain"
    manage_globally: bool  # holds changelogs.manage_changelogs globally (directly or through a group)
    manage_service: bool  # holds it on this service (directly or through a group)
    policy: dict[str, Any] | None  # id, of_service, version, rules (JSON text); None: the defaults
    critical_journeys: tuple[str, ...]
    overdue_retrospectives: int
    revision: dict[str, Any] | None  # with its changelog's id, kind, status and created_by_id
    evidence: list[dict[str, Any]]
    requester_ids: frozenset[int]  # everyone who requested the change
    commit_authors: dict[str, Any] | None  # status, source, authors as read; None: not read
    approvals: list[dict[str, Any]]
    freezes: list[dict[str, Any]]
    incident_min_severity: str | None  # None: the domain's incident rule is off
    open_incidents: list[tuple[str, str]]  # the domain's unresolved incidents (reference, severity)
    bundled: list[dict[str, Any]]  # a train's listed changes now: id, status, content_hash
    audit_alarm_open: bool  # an audit alarm is open (audit.alarms.alarm_open_exists)


def read(
    *,
    service_slug: str,
    digest: str,
    changelog_id: UUID | str | None,
    user_id: int | None = None,
    now: datetime | None = None,
    token_prefix: str | None = None,
) -> GateRow | None:
    """The facts for one gate question, in one statement; None when there is no such service.
    One JSON document comes back: one value to load, rather than a column at a time. Without
    ``now``, the facts are read at the business clock's time (audit.clock): the statement's.
    Without ``user_id``, they are read for the service account of the token ``token_prefix``
    names, whose row and its account's come back with them (not checked: that is the caller's)."""
    params = {
        "user": user_id,
        "token_prefix": token_prefix,
        "service": service_slug,
        "digest": digest,
        "changelog": str(changelog_id) if changelog_id else None,
        "now": now,
        # Only the summary keys readiness reads; the authorities that count (approvals.rules).
        "summary_keys": list(READINESS_SUMMARY_KEYS),
        "authorities": [authority.value for authority in Authority],
        "incident_default_severity": DEFAULT_GATE_SEVERITY.value,
    }
    found = _read_row(params)
    if found is None:
        return None
    document = json.loads(found[0])
    revision = document["revision"]
    if revision is not None:
        revision["id"] = UUID(revision["id"])
        revision["changelog_id"] = UUID(revision["changelog_id"])
    approvals = document["approvals"]
    for approval in approvals:
        # json_build_object renders timestamptz in the session's time zone: Django's UTC.
        approval["decided_at"] = datetime.fromisoformat(approval["decided_at"])
        approval["expires_at"] = datetime.fromisoformat(approval["expires_at"])
        approval["authorities_now"] = frozenset(approval["authorities_now"])
        approval["authorities_self_granted"] = frozenset(approval["authorities_self_granted"])
    return GateRow(
        now=datetime.fromisoformat(document["now"]),
        token=document["token"],
        token_account=document["token_account"],
        service=document["service"],
        manage_globally=document["manage_globally"],
        manage_service=document["manage_service"],
        policy=document["policy"],
        critical_journeys=tuple(document["critical_journeys"]),
        overdue_retrospectives=document["overdue_retrospectives"],
        revision=revision,
        evidence=document["evidence"],
        requester_ids=(
            frozenset({revision["changelog_created_by_id"], *document["requester_ids"]} - {None})
            if revision is not None
            else frozenset()
        ),
        commit_authors=document["commit_authors"],
        approvals=approvals,
        freezes=document["freezes"],
        incident_min_severity=document["incident_min_severity"],
        open_incidents=[(reference, severity) for reference, severity in document["open_incidents"]],
        bundled=document["bundled"],
        audit_alarm_open=document["audit_alarm_open"],
    )


def _fetch(params: dict[str, Any]) -> Any:
    with prepared_cursor() as cursor:
        cursor.execute(READ_SQL, params)
        return cursor.fetchone()


def _read_row(params: dict[str, Any]) -> Any:
    """The read's row. When Django's health check of the connection (``CONN_HEALTH_CHECKS``: a
    ``SELECT 1`` round trip before a request's first statement) is still due and no transaction
    is open, as for the API's gate check, the read stands in for it: it only reads, so if it
    fails because the connection is broken (the database restarted meanwhile), it runs again
    once on a fresh connection, which is what the health check would have led to. One round trip
    fewer per check (issue 17, bench/gate.py); an error on a sound connection is raised as ever."""
    # Django's health check flags (BaseDatabaseWrapper, Django 4.1+; not in django-stubs).
    database: Any = connection
    due = (
        database.connection is not None
        and database.health_check_enabled
        and not database.health_check_done
        and not database.in_atomic_block
    )
    if not due:
        return _fetch(params)
    database.health_check_done = True
    try:
        return _fetch(params)
    except DatabaseError:
        if database.is_usable():
            raise
        database.close()
    return _fetch(params)


def write(*, decision: dict[str, Any], event: dict[str, Any]) -> None:
    """Insert the decision (its columns by name, ``reasons`` as JSON text) and its audit
    event (``audit.services.EventRow``'s columns by name) in one statement."""
    with prepared_cursor() as cursor:
        cursor.execute(WRITE_SQL, {**decision, **event})
