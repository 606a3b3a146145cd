"""Access review: who holds which signing authority (directly and through groups), granted
and confirmed by whom and when, and when last used; as CSV and as a signed PDF. And the
periodic review: every grant in force is put to the domain's owners (its other signing
authorities and the administrators) to re-confirm; one not re-confirmed by the deadline
(ACCESS_REVIEW_DEADLINE_DAYS) is revoked. Every step is an audit event."""

import csv
import io
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import Max
from django.utils import timezone
from guardian.shortcuts import remove_perm

import audit
from approvals.audit_actions import ApprovalAction
from approvals.models import Approval, AuthorityGrant, GrantKind, GrantStatus
from approvals.notifications import notification_enqueue
from approvals.rules import Authority
from approvals.selectors import authorities_of, authority_holders
from audit.services import SYSTEM
from changelogs.models import Domain, Service
from changelogs.selectors import service_list_managed
from core.actors import ActingUser, Actor
from core.errors import Conflict, PermissionDenied
from releasegate.access import deployment_reporters, override_deciders
from releasegate.models import AccessReview, AccessReviewItem, AccessReviewItemStatus, AccessReviewStatus, ApiToken
from releasegate.tokens import TokenScope


class ReviewAction:
    OPENED = "access_review:opened"
    OWNERS_ASKED = "access_review:owners_asked"
    RECONFIRMED = "access_review:reconfirmed"
    REVOKED = "access_review:revoked"
    CLOSED = "access_review:closed"
    REPORT = "access_review:report_downloaded"


class ReviewError:
    NOT_AN_OWNER = "not_a_domain_owner"
    ITEM_NOT_PENDING = "review_item_not_pending"
    REVIEW_OPEN = "review_already_open"
    NOT_AN_ADMINISTRATOR = "not_an_administrator"


@dataclass(frozen=True)
class AuthorityRow:
    person: str
    domain: str
    authority: str
    via: str  # "direct" or "group <name>"
    granted_by: str
    granted_at: str
    confirmed_by: str
    confirmed_at: str
    membership_granted_by: str
    membership_confirmed_by: str
    last_used: str


COLUMNS = list(AuthorityRow.__dataclass_fields__)


def _name(user: ActingUser | None) -> str:
    return user.username if user is not None else ""


def _time(value: datetime | None) -> str:
    return value.isoformat() if value else ""


def access_report() -> list[AuthorityRow]:
    """Every way a person holds a signing authority now: a grant to them, or a grant to a group
    with their membership grant of it. Sorted by domain, person, authority."""
    grants = AuthorityGrant.objects.filter(status=GrantStatus.ACTIVE).select_related(
        "domain", "user", "group", "requested_by", "decided_by"
    )
    memberships: dict[int, list[AuthorityGrant]] = {}
    for found in grants.filter(kind=GrantKind.MEMBERSHIP):
        memberships.setdefault(found.group_id or 0, []).append(found)
    last_used = {
        (row["approver_id"], row["changelog__service__domain_id"]): row["last"]
        for row in Approval.objects.values("approver_id", "changelog__service__domain_id").annotate(
            last=Max("decided_at")
        )
    }
    rows = []
    for grant in grants.filter(kind=GrantKind.AUTHORITY):
        holders: list[tuple[Any, AuthorityGrant | None]]
        if grant.user is not None:
            holders = [(grant.user, None)]
        else:
            holders = [(member.user, member) for member in memberships.get(grant.group_id or 0, [])]
        for person, membership in holders:
            rows.append(
                AuthorityRow(
                    person=person.username,
                    domain=grant.domain.slug if grant.domain else "",
                    authority=grant.authority,
                    via="direct" if membership is None else f"group {grant.group.name if grant.group else ''}",
                    granted_by=_name(grant.requested_by),
                    granted_at=_time(grant.requested_at),
                    confirmed_by=_name(grant.decided_by),
                    confirmed_at=_time(grant.decided_at),
                    membership_granted_by=_name(membership.requested_by) if membership else "",
                    membership_confirmed_by=_name(membership.decided_by) if membership else "",
                    last_used=_time(last_used.get((person.pk, grant.domain_id))),
                )
            )
    return sorted(rows, key=lambda row: (row.domain, row.person, row.authority, row.via))


class Right:
    REQUEST_AND_REPORT = "request_and_report_deployments"
    DEPLOYMENT_TOKEN = "issued_deployment_token"  # noqa: S105 - a right's name, not a secret
    ADMINISTER = "administer_authorities"
    DECIDE_OVERRIDES = "decide_gate_overrides"


@dataclass(frozen=True)
class RightRow:
    """A right other than signing: requesting changes and reporting deployments (one
    permission in Release Gate, ``manage_changelogs`` on the service), having issued a live
    pipeline token with the deployments scope, administering signing authorities, deciding
    gate overrides. ``domain`` is empty for a right over every domain."""

    person: str
    human: bool
    domain: str
    right: str
    via: str


@dataclass(frozen=True)
class SodConflict:
    """A separation-of-duties conflict: the person can approve changes of the domain and also
    put them into production (report deployments, or hold a pipeline's deployment token)."""

    person: str
    domain: str
    approves_as: str
    also: str


def rights_report(*, now: datetime | None = None) -> list[RightRow]:
    now = now or timezone.now()
    domain_of = dict(Service.objects.values_list("slug", "domain__slug"))
    rows: set[RightRow] = set()
    for reporter in deployment_reporters(now=now):
        person = reporter["principal"].partition(":")[2]
        via = "; ".join(reporter["via"])
        for service in reporter["services"]:
            rows.add(RightRow(person, reporter["human"], domain_of[service], Right.REQUEST_AND_REPORT, via))
    tokens = ApiToken.objects.filter(revoked_at__isnull=True, expires_at__gt=now, created_by__isnull=False)
    for token in tokens.select_related("created_by", "service_account"):
        if token.created_by is None or TokenScope.DEPLOYMENTS not in (token.scopes or []):
            continue
        for service in service_list_managed(user=token.service_account).select_related("domain"):
            via = f"token {token.name} of {token.service_account.username} for {service.slug}"
            rows.add(RightRow(token.created_by.username, True, service.domain.slug, Right.DEPLOYMENT_TOKEN, via))
    for user in _administrators():
        rows.add(
            RightRow(user.username, True, "", Right.ADMINISTER, "superuser" if user.is_superuser else "permission")
        )
    for decider in override_deciders():
        for domain in decider["domains"]:
            rows.add(RightRow(decider["principal"].partition(":")[2], True, domain, Right.DECIDE_OVERRIDES, "sign_off"))
    return sorted(rows, key=lambda row: (row.domain, row.person, row.right, row.via))


def conflicts_of(authorities: list[AuthorityRow], rights: list[RightRow]) -> list[SodConflict]:
    """Who can both approve in a domain and report its deployments or hold its pipeline's token."""
    deploys: dict[tuple[str, str], set[str]] = {}
    for right in rights:
        if right.right in (Right.REQUEST_AND_REPORT, Right.DEPLOYMENT_TOKEN):
            deploys.setdefault((right.person, right.domain), set()).add(right.right)
    found: dict[tuple[str, str], set[str]] = {}
    for row in authorities:
        if (row.person, row.domain) in deploys:
            found.setdefault((row.person, row.domain), set()).add(row.authority)
    return [
        SodConflict(person, domain, ", ".join(sorted(held)), ", ".join(sorted(deploys[(person, domain)])))
        for (person, domain), held in sorted(found.items())
    ]


@dataclass(frozen=True)
class Report:
    authorities: list[AuthorityRow]
    rights: list[RightRow]
    conflicts: list[SodConflict]


def full_report(*, now: datetime | None = None) -> Report:
    authorities = access_report()
    rights = rights_report(now=now)
    return Report(authorities, rights, conflicts_of(authorities, rights))


CSV_COLUMNS = ["kind", *COLUMNS, "right", "human", "conflict"]


def report_csv(report: Report) -> bytes:
    """One row per right held: kind "authority" (signing, with its grant) or "right"; the
    conflict column names the SoD conflict the person has in that domain, if any."""
    conflicts = {
        (found.person, found.domain): f"approves ({found.approves_as}) and {found.also}" for found in report.conflicts
    }
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS, lineterminator="\n", restval="")
    writer.writeheader()
    for row in report.authorities:
        writer.writerow(
            {
                "kind": "authority",
                **row.__dict__,
                "human": True,
                "conflict": conflicts.get((row.person, row.domain), ""),
            }
        )
    for right in report.rights:
        writer.writerow(
            {"kind": "right", **right.__dict__, "conflict": conflicts.get((right.person, right.domain), "")}
        )
    return out.getvalue().encode("utf-8")


def _table(header: list[str], rows: list[list[str]]) -> Any:
    from reportlab.lib import colors
    from reportlab.lib.styles import getSampleStyleSheet
    from reportlab.platypus import Paragraph, Table, TableStyle

    cell = getSampleStyleSheet()["BodyText"]
    table = Table([header] + [[Paragraph(value, cell) for value in row] for row in rows], repeatRows=1)
    table.setStyle(
        TableStyle([("GRID", (0, 0), (-1, -1), 0.25, colors.grey), ("BACKGROUND", (0, 0), (-1, 0), colors.lightgrey)])
    )
    return table


def report_pdf(report: Report, *, generated_at: datetime) -> bytes:
    """The report as a PDF signed with the organisation's document-signing key (as evidence
    packs are: pdfsig verifies it): the signing authorities, the other rights, the conflicts."""
    from reportlab.lib.pagesizes import A4, landscape
    from reportlab.lib.styles import getSampleStyleSheet
    from reportlab.platypus import Paragraph, SimpleDocTemplate

    from releasegate.documents import sign_document

    styles = getSampleStyleSheet()
    buffer = io.BytesIO()
    document = SimpleDocTemplate(buffer, pagesize=landscape(A4), title="Access review: who may sign")
    rows = report.authorities
    authorities = _table(
        ["Person", "Domain", "Authority", "Via", "Granted by", "Confirmed by", "Confirmed at", "Last used"],
        [
            [
                row.person,
                row.domain,
                row.authority,
                row.via + (f" (membership {row.membership_confirmed_by})" if row.membership_confirmed_by else ""),
                row.granted_by or "(before grants)",
                row.confirmed_by or "(before grants)",
                row.confirmed_at[:19],
                row.last_used[:19] or "never",
            ]
            for row in rows
        ],
    )
    rights = _table(
        ["Person", "Human", "Domain", "Right", "Via"],
        [[r.person, "yes" if r.human else "pipeline", r.domain or "(all)", r.right, r.via] for r in report.rights],
    )
    conflicts = _table(
        ["Person", "Domain", "Approves as", "And can"],
        [[c.person, c.domain, c.approves_as, c.also] for c in report.conflicts],
    )
    story = [
        Paragraph(f"Access review: who may sign — {settings.ORGANISATION_NAME}", styles["Title"]),
        Paragraph(
            f"Generated {generated_at.isoformat()}; {len(rows)} authorities held; {len(report.rights)} other "
            f"rights; {len(report.conflicts)} separation-of-duties conflicts.",
            styles["BodyText"],
        ),
        Paragraph("Signing authorities", styles["Heading2"]),
        authorities,
        Paragraph("Request, deployment, administration and override rights", styles["Heading2"]),
        rights,
        Paragraph(
            "Separation-of-duties conflicts: approves in a domain and can report its deployments or holds its "
            "pipeline's deployment token",
            styles["Heading2"],
        ),
        conflicts,
    ]
    document.build(story)
    return sign_document(buffer.getvalue(), reason="Access review report")


@transaction.atomic
def report_downloaded_record(*, acting_user: ActingUser, kind: str, report: Report) -> None:
    audit.record(
        actor=acting_user,
        action=ReviewAction.REPORT,
        target=("releasegate.accessreview", ""),
        data={
            "kind": kind,
            "rows": len(report.authorities),
            "rights": len(report.rights),
            "conflicts": len(report.conflicts),
        },
    )


# --- The periodic review ---------------------------------------------------------------------


def _administrators() -> list[Any]:
    users = get_user_model().objects.filter(is_active=True, is_service_account=False)
    return [user for user in users if user.has_perm("approvals.change_authoritygrant")]


def domains_of(grant: AuthorityGrant) -> list[Domain]:
    """The domains a grant gives authority in: its own, or, for a membership of a group, every
    domain where the group holds a signing authority in force."""
    if grant.kind == GrantKind.AUTHORITY or grant.group is None:
        return [grant.domain] if grant.domain is not None else []
    held = AuthorityGrant.objects.filter(
        status=GrantStatus.ACTIVE, kind=GrantKind.AUTHORITY, group=grant.group, domain__isnull=False
    )
    return list(Domain.objects.filter(pk__in=held.values("domain_id")).order_by("slug"))


def domain_owners(domain: Domain) -> list[Any]:
    """A domain's owners: the people who hold a signing authority in it."""
    found: dict[int, Any] = {}
    for authority in Authority:
        for user in authority_holders(domain=domain, authority=authority):
            found[user.pk] = user
    return sorted(found.values(), key=lambda user: user.username)


def _emails(users: list[Any]) -> list[str]:
    return sorted({user.email for user in users if user.email})


@transaction.atomic
def review_open(*, acting_user: ActingUser | Actor = SYSTEM, now: datetime | None = None) -> AccessReview:
    """Put every grant in force to its owners; notify them. One review open at a time."""
    now = now or timezone.now()
    if not isinstance(acting_user, Actor) and not acting_user.has_perm("approvals.change_authoritygrant"):
        raise PermissionDenied(ReviewError.NOT_AN_ADMINISTRATOR, "Administrators open access reviews.")
    if AccessReview.objects.select_for_update().filter(status=AccessReviewStatus.OPEN).exists():
        raise Conflict(ReviewError.REVIEW_OPEN, "An access review is open already.")
    review = AccessReview.objects.create(
        opened_at=now,
        deadline=now + timedelta(days=settings.ACCESS_REVIEW_DEADLINE_DAYS),
        opened_by=None if isinstance(acting_user, Actor) else acting_user,
    )
    grants = list(AuthorityGrant.objects.filter(status=GrantStatus.ACTIVE).select_related("domain"))
    AccessReviewItem.objects.bulk_create([AccessReviewItem(review=review, grant=grant) for grant in grants])
    audit.record(
        actor=acting_user,
        action=ReviewAction.OPENED,
        target=review,
        data={"deadline": review.deadline, "grants": len(grants)},
    )
    notification_enqueue(
        event="access_review.opened",
        subject=f"[Release Gate] Re-confirm who may sign by {review.deadline:%Y-%m-%d}",
        payload={"review": review.pk, "deadline": review.deadline.isoformat(), "grants": len(grants)},
        emails=_emails(_administrators()),
        now=now,
    )
    # Each domain's owners are asked for their domain's grants.
    per_domain: dict[Domain, list[AuthorityGrant]] = {}
    for grant in grants:
        for domain in domains_of(grant):
            per_domain.setdefault(domain, []).append(grant)
    for domain, held in sorted(per_domain.items(), key=lambda pair: pair[0].slug):
        owners = domain_owners(domain)
        audit.record(
            actor=acting_user,
            action=ReviewAction.OWNERS_ASKED,
            target=domain,
            data={"review": review.pk, "owners": [user.username for user in owners], "grants": len(held)},
        )
        notification_enqueue(
            event="access_review.domain",
            subject=f"[Release Gate] {domain.name}: re-confirm {len(held)} authorities by {review.deadline:%Y-%m-%d}",
            payload={
                "review": review.pk,
                "domain": domain.slug,
                "deadline": review.deadline.isoformat(),
                "grants": [grant.describe() for grant in held],
            },
            emails=_emails(owners),
            now=now,
        )
    return review


def may_reconfirm(user: ActingUser, grant: AuthorityGrant) -> bool:
    """A domain's owners re-confirm its authorities: an administrator, or a signing authority
    of the domain; never the grantee (or a member of the grantee group)."""
    if not (getattr(user, "is_active", False) and not user.is_service_account):
        return False
    if grant.user_id == user.pk or (grant.group is not None and grant.group.user_set.filter(pk=user.pk).exists()):
        return False
    if user.has_perm("approvals.change_authoritygrant"):
        return True
    return any(authorities_of(user=user, domain=domain) for domain in domains_of(grant))


@dataclass(frozen=True)
class ReviewItemView:
    item: AccessReviewItem
    domains: list[str]


def review_items_for(*, user: ActingUser, review: AccessReview) -> list[ReviewItemView]:
    """The review's items this user sees, with the domains each gives authority in: every item
    for auditors and administrators, the items they may re-confirm for a domain's owners."""
    sees_all = user.is_superuser or user.has_perm("audit.view_auditevent")
    return [
        ReviewItemView(item, [domain.slug for domain in domains_of(item.grant)])
        for item in review.items.select_related("grant__domain", "grant__user", "grant__group", "decided_by")
        if sees_all or may_reconfirm(user, item.grant)
    ]


@transaction.atomic
def review_item_reconfirm(
    *, acting_user: ActingUser, item: AccessReviewItem, now: datetime | None = None
) -> AccessReviewItem:
    item = (
        AccessReviewItem.objects.select_for_update(of=("self",))
        .select_related("grant__group", "grant__domain")
        .get(pk=item.pk)
    )
    if item.status != AccessReviewItemStatus.PENDING:
        raise Conflict(ReviewError.ITEM_NOT_PENDING, f"This item is {item.status}.")
    if not may_reconfirm(acting_user, item.grant):
        raise PermissionDenied(
            ReviewError.NOT_AN_OWNER, "Only the domain's owners re-confirm its authorities, never the grantee."
        )
    item.status, item.decided_by, item.decided_at = (
        AccessReviewItemStatus.RECONFIRMED,
        acting_user,
        now or timezone.now(),
    )
    item.save(update_fields=["status", "decided_by", "decided_at"])
    audit.record(
        actor=acting_user,
        action=ReviewAction.RECONFIRMED,
        target=item.grant,
        data={"review": item.review_id, "grant": str(item.grant_id), "grant_of": item.grant.describe()},
    )
    return item


def _revoke_unconfirmed(item: AccessReviewItem, now: datetime) -> None:
    grant = (
        AuthorityGrant.objects.select_for_update(of=("self",))
        .select_related("domain", "user", "group")
        .get(pk=item.grant_id)
    )
    if grant.status != GrantStatus.ACTIVE:
        item.status = AccessReviewItemStatus.ENDED
        item.save(update_fields=["status"])
        return
    domains = domains_of(grant)  # before the revocation: a group's domains go with it
    grant.status, grant.revoked_at = GrantStatus.REVOKED, now
    grant.save(update_fields=["status", "revoked_at"])
    if grant.kind == GrantKind.MEMBERSHIP and grant.user is not None and grant.group is not None:
        grant.user.groups.remove(grant.group)
    elif grant.kind == GrantKind.AUTHORITY:
        remove_perm(f"changelogs.{grant.authority}", grant.user or grant.group, grant.domain)
    item.status, item.decided_at = AccessReviewItemStatus.REVOKED, now
    item.save(update_fields=["status", "decided_at"])
    audit.record(
        actor=SYSTEM,
        action=ApprovalAction.AUTHORITY_REVOKED,
        target=grant.domain if grant.kind == GrantKind.AUTHORITY else ("auth.group", str(grant.group_id)),
        data={
            "grant": str(grant.id),
            "grant_of": grant.describe(),
            "status": {"from": GrantStatus.ACTIVE, "to": GrantStatus.REVOKED},
            "because": "not re-confirmed by the access review's deadline",
            "review": item.review_id,
        },
    )
    audit.record(
        actor=SYSTEM,
        action=ReviewAction.REVOKED,
        target=grant,
        data={
            "review": item.review_id,
            "grant": str(grant.id),
            "grant_of": grant.describe(),
            "deadline": item.review.deadline,
        },
    )
    grantees = [grant.user] if grant.user is not None else list(grant.group.user_set.all()) if grant.group else []
    owners = [owner for domain in domains for owner in domain_owners(domain)]
    notification_enqueue(
        event="access_review.revoked",
        subject=f"[Release Gate] Revoked, not re-confirmed by the access review: {grant.describe()}",
        payload={"review": item.review_id, "grant": str(grant.id), "grant_of": grant.describe()},
        emails=_emails(grantees + owners + _administrators()),
        now=now,
    )


def reviews_close_due(*, now: datetime | None = None) -> int:
    """Close open reviews past their deadline: every grant not re-confirmed is revoked, each in
    its own transaction with its audit events. Then open the next review when the last one
    opened ACCESS_REVIEW_INTERVAL_DAYS ago. Run by beat; returns the grants revoked."""
    now = now or timezone.now()
    revoked = 0
    for review in AccessReview.objects.filter(status=AccessReviewStatus.OPEN, deadline__lte=now):
        for item_id in review.items.filter(status=AccessReviewItemStatus.PENDING).values_list("pk", flat=True):
            with transaction.atomic():
                item = (
                    AccessReviewItem.objects.select_for_update(skip_locked=True, of=("self",))
                    .select_related("review")
                    .filter(pk=item_id, status=AccessReviewItemStatus.PENDING)
                    .first()
                )
                if item is not None:
                    _revoke_unconfirmed(item, now)
                    revoked += item.status == AccessReviewItemStatus.REVOKED
        with transaction.atomic():
            review.status, review.closed_at = AccessReviewStatus.CLOSED, now
            review.save(update_fields=["status", "closed_at"])
            audit.record(actor=SYSTEM, action=ReviewAction.CLOSED, target=review, data={"revoked": revoked})
    last = AccessReview.objects.order_by("-opened_at").values_list("opened_at", flat=True).first()
    interval = timedelta(days=settings.ACCESS_REVIEW_INTERVAL_DAYS)
    due = bool(settings.ACCESS_REVIEW_INTERVAL_DAYS) and (last is None or now - last >= interval)
    if due and not AccessReview.objects.filter(status=AccessReviewStatus.OPEN).exists():
        review_open(now=now)
    return revoked
