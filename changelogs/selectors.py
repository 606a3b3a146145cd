"""Reads of the catalog and changelogs, always through what the user may see."""

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from django.db.models import Q, QuerySet
from guardian.shortcuts import get_objects_for_user

from changelogs.authors import RevisionAuthors, revision_authors
from changelogs.diff import EvidenceItem, RevisionChanges, revision_changes
from changelogs.errors import ChangelogError
from changelogs.models import (
    Changelog,
    ChangelogRevision,
    CommitAuthors,
    Domain,
    Evidence,
    Journey,
    Policy,
    Service,
)
from changelogs.policy import (
    EvidenceFact,
    Finding,
    PolicyRules,
    ReadinessFacts,
    evidence_brief,
    readiness_findings,
)
from core.actors import ActingUser
from core.errors import NotFound, PermissionDenied
from core.queries import narrowed

MANAGE_CHANGELOGS = "changelogs.manage_changelogs"
VIEW_CHANGELOG = "changelogs.view_changelog"


def service_list_managed(*, user: ActingUser) -> QuerySet[Service]:
    """Services the user may act on as a pipeline or requester."""
    return get_objects_for_user(user, MANAGE_CHANGELOGS, klass=Service, accept_global_perms=True)


def service_may_manage(*, user: ActingUser, service: Service) -> bool:
    return bool(user.has_perm(MANAGE_CHANGELOGS, service) or user.has_perm(MANAGE_CHANGELOGS))


SIGNING_AUTHORITIES = ("changelogs.sign_off", "changelogs.security_sign_off", "changelogs.data_sign_off")


def changelog_list_visible(*, user: ActingUser) -> QuerySet[Changelog]:
    """Everything for auditors and admins (global view permission); otherwise the changelogs
    of the services the user manages and of the domains where the user holds a signing
    authority."""
    changelogs = Changelog.objects.select_related(
        "service", "service__domain", "created_by", "current_revision", "current_revision__submitted_by"
    )
    if user.is_superuser or user.has_perm(VIEW_CHANGELOG):
        return changelogs.all()
    signing_domains = domain_list_with_authority(user=user)
    return changelogs.filter(Q(service__in=service_list_managed(user=user)) | Q(service__domain__in=signing_domains))


def domain_list_with_authority(*, user: ActingUser) -> QuerySet[Domain]:
    """Domains where the user holds a signing authority, granted explicitly to them or their
    group (being a superuser is not a signing authority)."""
    return get_objects_for_user(
        user, list(SIGNING_AUTHORITIES), klass=Domain, any_perm=True, with_superuser=False, accept_global_perms=False
    )


def changelog_list(
    *,
    user: ActingUser,
    service: str | None = None,
    domain: str | None = None,
    kind: str | None = None,
    status: str | None = None,
    created_after: datetime | None = None,
    created_before: datetime | None = None,
) -> QuerySet[Changelog]:
    changelogs = narrowed(
        changelog_list_visible(user=user),
        service__slug=service,
        service__domain__slug=domain,
        kind=kind,
        status=status,
        created_at__gte=created_after,
        created_at__lt=created_before,
    )
    return changelogs.order_by("-created_at", "id")


def changelog_get(*, user: ActingUser, changelog_id: UUID | str, to_change: bool = False) -> Changelog:
    """The changelog if the user may see it, else NotFound (never telling whether it exists).
    With ``to_change`` the user must also manage its service (else PermissionDenied): the
    answer a reader gets before anything about the request's body is looked at. It locks
    nothing; the service that changes the changelog locks it and checks again under the lock
    (``changelogs.services.changelog_lock_to_change``)."""
    changelog = changelog_list_visible(user=user).filter(pk=changelog_id).first()
    if changelog is None:
        raise NotFound(ChangelogError.CHANGELOG_NOT_FOUND, "No such changelog.")
    if to_change and not service_may_manage(user=user, service=changelog.service):
        raise PermissionDenied(ChangelogError.CHANGELOG_READ_ONLY, "You may read this changelog but not change it.")
    return changelog


def revision_current(*, changelog: Changelog) -> ChangelogRevision:
    if changelog.current_revision is None:
        raise RuntimeError(f"changelog {changelog.pk} has no revision")
    return changelog.current_revision


def commit_authors_of(*, revision: ChangelogRevision) -> RevisionAuthors:
    """The commit authors of a revision: declared by the pipeline, read from the source host
    (and which commits were read), and whether they are verified (changelogs/authors.py)."""
    read = CommitAuthors.objects.filter(revision=revision).values("status", "source", "authors").first()
    if read is None:
        return revision_authors(content=revision.content)
    return revision_authors(
        content=revision.content, status=read["status"], source=read["source"], read=read["authors"]
    )


def revision_content(*, changelog: Changelog) -> dict[str, Any]:
    return dict(revision_current(changelog=changelog).content)


def revision_list(*, changelog: Changelog) -> QuerySet[ChangelogRevision]:
    return changelog.revisions.select_related("submitted_by").order_by("number")


def revision_get(*, changelog: Changelog, number: int) -> ChangelogRevision:
    revision = revision_list(changelog=changelog).filter(number=number).first()
    if revision is None:
        raise NotFound(ChangelogError.REVISION_NOT_FOUND, f"Changelog has no revision {number}.")
    return revision


def domain_list() -> QuerySet[Domain]:
    return Domain.objects.all()


def service_list() -> QuerySet[Service]:
    return Service.objects.select_related("domain")


def journey_list(*, domain: str | None = None, critical: bool | None = None) -> QuerySet[Journey]:
    return narrowed(Journey.objects.select_related("domain"), domain__slug=domain, critical=critical)


@dataclass(frozen=True)
class PolicyInUse:
    """Which rules apply: a stored version, or the built-in defaults (version 0)."""

    rules: PolicyRules
    scope: str  # "service:payments-api", "domain:payments" or "default"
    version: int
    policy_id: int | None

    @property
    def label(self) -> str:
        return f"{self.scope}@v{self.version}"


def policy_for(*, service: Service) -> PolicyInUse:
    """The service's own latest policy if it has one, else its domain's latest, else defaults."""
    policy = (
        Policy.objects.filter(service=service).order_by("-version").first()
        or Policy.objects.filter(domain_id=service.domain_id, service__isnull=True).order_by("-version").first()
    )
    if policy is None:
        return PolicyInUse(rules=PolicyRules(), scope="default", version=0, policy_id=None)
    scope = f"service:{service.slug}" if policy.service_id else f"domain:{service.domain.slug}"
    return PolicyInUse(
        rules=PolicyRules.from_json(policy.rules), scope=scope, version=policy.version, policy_id=policy.pk
    )


def policy_list(*, domain: str | None = None) -> QuerySet[Policy]:
    policies = Policy.objects.select_related("domain", "service", "created_by")
    return policies.filter(domain__slug=domain) if domain else policies


def evidence_list(*, revision: ChangelogRevision) -> QuerySet[Evidence]:
    return revision.evidence.select_related("uploaded_by").order_by("uploaded_at", "id")


def _fact(item: Evidence) -> EvidenceFact:
    return EvidenceFact(
        id=str(item.id),
        kind=item.kind,
        format=item.format,
        file_name=item.file_name,
        environment=item.environment,
        verdict=item.verdict,
        summary=item.summary,
        artifact_digest=item.artifact_digest,
        sha256=item.sha256,
    )


def evidence_briefs(*, changelog: Changelog, revision: ChangelogRevision) -> list[tuple[Evidence, tuple[str, ...]]]:
    """Each evidence file of the revision with what an approver reads of it (tests and
    journeys, latency and error rate against the limits, findings by severity)."""
    rules = policy_for(service=changelog.service).rules
    return [(item, evidence_brief(rules, _fact(item))) for item in evidence_list(revision=revision)]


def revision_previous_submitted(*, revision: ChangelogRevision) -> ChangelogRevision | None:
    """The submitted revision before this one, which approvers may already have seen."""
    previous: ChangelogRevision | None = (
        ChangelogRevision.objects.filter(changelog_id=revision.changelog_id, number__lt=revision.number)
        .exclude(content_hash="")
        .order_by("-number")
        .first()
    )
    return previous


def revision_changes_between(*, before: ChangelogRevision, after: ChangelogRevision) -> RevisionChanges:
    def items(revision: ChangelogRevision) -> list[EvidenceItem]:
        return [
            EvidenceItem(sha256=sha256, kind=kind, file_name=name)
            for sha256, kind, name in revision.evidence.values_list("sha256", "kind", "file_name")
        ]

    return revision_changes(
        before=before.content, after=after.content, evidence_before=items(before), evidence_after=items(after)
    )


def evidence_get(*, changelog: Changelog, evidence_id: UUID | str) -> Evidence:
    """Evidence of a changelog the caller may already see (any of its revisions)."""
    evidence = Evidence.objects.select_related("uploaded_by").filter(changelog=changelog, pk=evidence_id).first()
    if evidence is None:
        raise NotFound(ChangelogError.EVIDENCE_NOT_FOUND, "No such evidence on this changelog.")
    return evidence


@dataclass(frozen=True)
class Readiness:
    revision: int
    policy: PolicyInUse
    findings: list[Finding]

    @property
    def ready(self) -> bool:
        return not self.findings

    def to_json(self) -> dict[str, Any]:
        return {
            "revision": self.revision,
            "policy": self.policy.label,
            "ready": self.ready,
            "findings": [finding.to_dict() for finding in self.findings],
        }


def bundled_now(*, service: Service, bundles: Any) -> dict[str, tuple[str, str]]:
    """The changes a train lists, of its own service, as they are now: id → (status, the
    content hash of their current revision; empty while a draft)."""
    ids = [str(item.get("changelog", "")) for item in bundles or ()]
    found = Changelog.objects.filter(service=service, pk__in=ids).values_list(
        "pk", "status", "current_revision__content_hash"
    )
    return {str(pk): (status, content_hash or "") for pk, status, content_hash in found}


def readiness_of(*, changelog: Changelog, revision: ChangelogRevision | None = None) -> Readiness:
    """What the policy says of the revision's evidence (the current revision by default)."""
    revision = revision or revision_current(changelog=changelog)
    policy = policy_for(service=changelog.service)
    critical = tuple(
        Journey.objects.filter(domain_id=changelog.service.domain_id, critical=True)
        .order_by("journey_id")
        .values_list("journey_id", flat=True)
    )
    facts = ReadinessFacts(
        changelog_kind=changelog.kind,
        domain_critical_journeys=critical,
        evidence=[_fact(item) for item in revision.evidence.all()],
        artifact_digest=revision.artifact_digest,
        data_changes=revision.content.get("data_changes", ()),
        bundles=revision.content.get("bundles", ()),
        bundled_now=bundled_now(service=changelog.service, bundles=revision.content.get("bundles", ())),
    )
    return Readiness(revision=revision.number, policy=policy, findings=readiness_findings(policy.rules, facts))


def changelog_lock_in_place(*, changelog: Changelog) -> Changelog:
    """Lock the changelog's row for the rest of the transaction and bring the caller's copy up
    to date under the lock. Every service that decides on a changelog's state starts here
    itself, whoever called it: it decides on the state under the lock, not on a copy read
    before, and the caller's copy shows what the service did."""
    Changelog.objects.select_for_update(no_key=True, of=("self",)).filter(pk=changelog.pk).values_list("pk").get()
    changelog.refresh_from_db()
    return changelog


def changelog_lock(*, changelog: Changelog) -> Changelog:
    """The same changelog, re-read and locked for the rest of the transaction (for writers
    that are not its service's pipelines, such as approvers)."""
    locked: Changelog = (
        Changelog.objects.select_for_update(no_key=True, of=("self",))
        .select_related("service", "service__domain", "created_by", "current_revision")
        .get(pk=changelog.pk)
    )
    return locked
