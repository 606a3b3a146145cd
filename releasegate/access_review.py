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
from approvals.selectors import authorities_of
from audit.services import SYSTEM
from core.actors import ActingUser, Actor
from core.errors import Conflict, PermissionDenied
from releasegate.models import AccessReview, AccessReviewItem, AccessReviewItemStatus, AccessReviewStatus


class ReviewAction:
    OPENED = "access_review:opened"
    RECONFIRMED = "access_review:reconfirmed"
    REVOKED = "access_review:revoked"
    CLOSED = "access_review:closed"
    REPORT = "access_review:report_downloaded"


class ReviewError:
    NOT_AN_OWNER = "not_a_domain_owner"
    ITEM_NOT_PENDING = "review_item_not_pending"
    REVIEW_OPEN = "review_already_open"


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


def _name(user: Any) -> str:
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


def report_csv(rows: list[AuthorityRow]) -> bytes:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow(row.__dict__)
    return out.getvalue().encode("utf-8")


def report_pdf(rows: list[AuthorityRow], *, generated_at: datetime) -> bytes:
    """The report as a PDF signed with the organisation's document-signing key (as evidence
    packs are: pdfsig verifies it)."""
    from reportlab.lib import colors
    from reportlab.lib.pagesizes import A4, landscape
    from reportlab.lib.styles import getSampleStyleSheet
    from reportlab.platypus import Paragraph, SimpleDocTemplate, Table, TableStyle

    from releasegate.documents import sign_document

    styles = getSampleStyleSheet()
    buffer = io.BytesIO()
    document = SimpleDocTemplate(buffer, pagesize=landscape(A4), title="Access review: signing authorities")
    header = ["Person", "Domain", "Authority", "Via", "Granted by", "Confirmed by", "Confirmed at", "Last used"]
    cell = styles["BodyText"]
    data = [header] + [
        [
            Paragraph(value, cell)
            for value in (
                row.person,
                row.domain,
                row.authority,
                row.via + (f" (membership {row.membership_confirmed_by})" if row.membership_confirmed_by else ""),
                row.granted_by or "(before grants)",
                row.confirmed_by or "(before grants)",
                row.confirmed_at[:19],
                row.last_used[:19] or "never",
            )
        ]
        for row in rows
    ]
    table = Table(data, repeatRows=1)
    table.setStyle(
        TableStyle([("GRID", (0, 0), (-1, -1), 0.25, colors.grey), ("BACKGROUND", (0, 0), (-1, 0), colors.lightgrey)])
    )
    story = [
        Paragraph(f"Access review: who may sign — {settings.ORGANISATION_NAME}", styles["Title"]),
        Paragraph(f"Generated {generated_at.isoformat()}; {len(rows)} authorities held.", styles["BodyText"]),
        table,
    ]
    document.build(story)
    return sign_document(buffer.getvalue(), reason="Access review report")


@transaction.atomic
def report_downloaded_record(*, acting_user: ActingUser, kind: str, rows: int) -> None:
    audit.record(
        actor=acting_user,
        action=ReviewAction.REPORT,
        target=("releasegate.accessreview", ""),
        data={"kind": kind, "rows": rows},
    )


# --- The periodic review ---------------------------------------------------------------------


def _administrators() -> list[Any]:
    users = get_user_model().objects.filter(is_active=True, is_service_account=False)
    return [user for user in users if user.has_perm("approvals.change_authoritygrant")]


@transaction.atomic
def review_open(*, acting_user: ActingUser | Actor = SYSTEM, now: datetime | None = None) -> AccessReview:
    """Put every grant in force to its owners; notify them. One review open at a time."""
    now = now or timezone.now()
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
        emails=sorted({user.email for user in _administrators() if user.email}),
        now=now,
    )
    return review


def may_reconfirm(user: Any, grant: AuthorityGrant) -> bool:
    """A domain's owners re-confirm its authorities: an administrator, or a signing authority
    of the domain; never the grantee (or a member of the grantee group)."""
    if not (getattr(user, "is_active", False) and not user.is_service_account):
        return False
    if grant.user_id == user.pk or (grant.group is not None and grant.group.user_set.filter(pk=user.pk).exists()):
        return False
    if user.has_perm("approvals.change_authoritygrant"):
        return True
    return grant.domain is not None and bool(authorities_of(user=user, domain=grant.domain))


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
