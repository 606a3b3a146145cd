"""The front page's selectors: what waits for one person, from the things they may see.

Read-only, a handful of queries, each bounded: the page answers "what do I have to do, and is
anything wrong?" for the person looking at it (approver, requester, auditor, administrator).
"""

from dataclasses import dataclass, field
from typing import Any

from django.db.models import QuerySet

from approvals.models import Retrospective, RetrospectiveStatus
from approvals.selectors import queue_for
from changelogs.models import Changelog, ChangelogStatus, Service
from changelogs.selectors import VIEW_CHANGELOG, domain_list_with_authority, service_list_managed
from core.actors import ActingUser
from releasegate.models import Deployment, GateDecision

LISTED = 10  # of each kind of item; the admin lists the rest


@dataclass(frozen=True)
class Waiting:
    """What waits for one person."""

    to_sign: list[Changelog] = field(default_factory=list)
    in_progress: list[Changelog] = field(default_factory=list)
    retrospectives: list[Retrospective] = field(default_factory=list)
    unauthorised: list[Deployment] = field(default_factory=list)
    decisions: list[GateDecision] = field(default_factory=list)

    @property
    def anything(self) -> bool:
        return any((self.to_sign, self.in_progress, self.retrospectives, self.unauthorised, self.decisions))


def _services_seen(user: ActingUser) -> QuerySet[Service] | None:
    """The services whose deployments and decisions the user may see; None for all of them
    (auditors and administrators)."""
    if user.is_superuser or user.has_perm(VIEW_CHANGELOG):
        return None
    managed = service_list_managed(user=user).values("pk")
    signing = domain_list_with_authority(user=user).values("pk")
    return Service.objects.filter(pk__in=managed) | Service.objects.filter(domain__in=signing)


def waiting_for(*, user: ActingUser) -> Waiting:
    services = _services_seen(user)

    def seen(queryset: QuerySet[Any], service_field: str) -> QuerySet[Any]:
        return queryset if services is None else queryset.filter(**{f"{service_field}__in": services})

    in_progress = (
        Changelog.objects.filter(
            service__in=service_list_managed(user=user),
            status__in=[ChangelogStatus.DRAFT, ChangelogStatus.SUBMITTED, ChangelogStatus.APPROVED],
        )
        .select_related("service", "current_revision")
        .order_by("-updated_at")
    )
    retrospectives = seen(
        Retrospective.objects.filter(status__in=[RetrospectiveStatus.OPEN, RetrospectiveStatus.OVERDUE]),
        "service",
    ).select_related("changelog", "service")
    unauthorised = seen(Deployment.objects.filter(unauthorised=True), "service").select_related("service")
    decisions = seen(GateDecision.objects.all(), "service").select_related("service", "requested_by")
    return Waiting(
        to_sign=list(queue_for(user=user)[:LISTED]),
        in_progress=list(in_progress[:LISTED]),
        retrospectives=list(retrospectives.order_by("due_at")[:LISTED]),
        unauthorised=list(unauthorised.order_by("-reported_at")[:LISTED]),
        decisions=list(decisions.order_by("-evaluated_at")[:LISTED]),
    )
