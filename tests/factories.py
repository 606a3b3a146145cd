"""Factories for the fixed cast and their things. Changelogs are made through the services, so
a factory-made changelog is exactly what the API would have made."""

import copy
from datetime import UTC, datetime, timedelta
from typing import Any

import factory
from factory.django import DjangoModelFactory
from guardian.shortcuts import assign_perm

from approvals.models import AuthorityGrant
from approvals.services import authority_grant_request, grant_confirm, membership_grant_request
from changelogs import services as changelog_services
from changelogs.content_rules import content_validate
from changelogs.models import Changelog, ChangelogKind, Domain, Journey, Service
from core.actors import Actor, StepUp
from releasegate.models import User

FACTORY_ACTOR = Actor("system:tests")

DIGEST = "sha256:" + "ab" * 32
OTHER_DIGEST = "sha256:" + "cd" * 32


def planned_window_around_now(*, days: int = 14) -> dict[str, str]:
    """A planned window open now: from the start of the last hour for ``days`` days, so that
    tests which move the clock forward by a few days still check inside it (the gate denies
    outside the window: ``outside_planned_window``)."""
    start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)
    end = start + timedelta(days=days)
    return {"start": start.strftime("%Y-%m-%dT%H:%M:%SZ"), "end": end.strftime("%Y-%m-%dT%H:%M:%SZ")}


def changelog_content(**overrides: Any) -> dict[str, Any]:
    """A complete, valid train changelog content; override top-level fields as needed."""
    content: dict[str, Any] = {
        "artifact": {
            "name": "payments-api",
            "version": "1.4.2",
            "digest": DIGEST,
            "source_revision": "0123456789abcdef0123456789abcdef01234567",
            "links": [{"title": "pull request", "url": "https://git.bank.example/payments/payments-api/pull/42"}],
        },
        "deploy_steps": [
            {"description": "Roll out the new image", "command": "kubectl rollout restart deploy/payments-api"},
            {"description": "Watch the error rate for 10 minutes"},
        ],
        "data_changes": [],
        "no_data_changes": True,
        "rollback_plan": "Roll back to 1.4.1 with kubectl rollout undo.",
        "reason": "Fixes rounding of card fees.",
        "scope": "The card fee calculation of payments-api; no other service, no data.",
        "expected_outcome": "Card fees are rounded half-even.",
        "planned_window": planned_window_around_now(),
        "risk_tier": "medium",
        "security_impact": {"declared": False, "description": ""},
        "hotfix": None,
        "commit_authors": ["dev@bank.example"],
    }
    content.update(copy.deepcopy(overrides))
    return content


def seen_of(changelog: Changelog) -> dict[str, Any]:
    """The revision and content hash an approver is shown now: what a decision must name."""
    revision = Changelog.objects.select_related("current_revision").get(pk=changelog.pk).current_revision
    assert revision is not None
    return {"revision": revision.number, "content_hash": revision.content_hash}


def authority_asked(
    *, by: Any, domain: Domain, authority: str = "sign_off", user: Any = None, group: Any = None, reason: str = "x"
) -> AuthorityGrant:
    """A signing authority asked for by the administrator ``by`` (who stepped up just now), not
    yet confirmed."""
    return authority_grant_request(
        acting_user=by, domain=domain, authority=authority, user=user, group=group, reason=reason, step_up=StepUp.of(by)
    )


def authority_confirmed(grant: AuthorityGrant, *, by: Any) -> AuthorityGrant:
    """``grant`` confirmed by the administrator ``by``, who stepped up just now."""
    return grant_confirm(acting_user=by, grant=grant, step_up=StepUp.of(by))


def authority_give(
    *, domain: Domain, authority: str = "sign_off", user: Any = None, group: Any = None
) -> AuthorityGrant:
    """A signing authority in force, put there as the two-person rule wants: asked for by one
    administrator, confirmed by another (neither of them the grantee)."""
    asker = UserFactory(username="grants-admin-a", is_superuser=True)
    confirmer = UserFactory(username="grants-admin-b", is_superuser=True)
    grant = authority_asked(by=asker, domain=domain, authority=authority, user=user, group=group, reason="tests")
    return authority_confirmed(grant, by=confirmer)


def membership_give(*, group: Any, user: Any) -> AuthorityGrant:
    """A person joins a group holding signing authority, confirmed by a second administrator."""
    asker = UserFactory(username="grants-admin-a", is_superuser=True)
    confirmer = UserFactory(username="grants-admin-b", is_superuser=True)
    grant = membership_grant_request(
        acting_user=asker, group=group, user=user, reason="tests", step_up=StepUp.of(asker)
    )
    return authority_confirmed(grant, by=confirmer)


def authority_forced(*, domain: Domain, authority: str = "sign_off", user: Any) -> None:
    """An authority written straight into the tables, past every service (as a database
    administrator could): for tests that show the rules still refuse what it is used for."""
    AuthorityGrant.objects.create(
        kind="authority",
        domain=domain,
        authority=authority,
        user=user,
        subject=AuthorityGrant.subject_of(
            kind="authority", domain_id=domain.pk, authority=authority, user_id=user.pk, group_id=None
        ),
        status="active",
        reason="forced",
        requested_at=datetime.now(tz=UTC),
    )
    assign_perm(f"changelogs.{authority}", user, domain)


def second_factor_session(client: Any, user: Any) -> Any:
    """Log ``client`` in as ``user`` with a session that proved a second factor just now, as
    deciding needs (identity.sessions); tests about the factors themselves go through them."""
    import time

    from identity.sessions import MFA_KEY

    client.force_login(user)
    session = client.session
    session[MFA_KEY] = {"method": "tests", "at": time.time()}
    session.save()
    return client


def unsigned_approvals_count(domain: Domain) -> None:
    """A policy of the domain under which unsigned approvals count at every tier: for tests about
    counting and hotfixes at high risk, not about passkey signatures (tests/identity does those)."""
    from changelogs.services import policy_create

    policy_create(acting_user=_factory_user(), domain=domain, rules={"signed_approvals": []}, reason="tests")


SECOND_FACTOR_URL = "/admin/identity/passkey/second-factor/"


def totp_code(user: Any) -> str:
    """The current code of the user's authenticator app (a confirmed TOTP device, made on first
    use), as a person would read it off their phone."""
    from django_otp.oath import totp
    from django_otp.plugins.otp_totp.models import TOTPDevice

    device = TOTPDevice.objects.filter(user=user, confirmed=True).first()
    if device is None:
        device = TOTPDevice.objects.create(user=user, name="tests", confirmed=True)
    return f"{totp(device.bin_key, step=device.step, t0=device.t0, digits=device.digits):0{device.digits}d}"


def hotfix_details() -> dict[str, str]:
    return {
        "incident_reference": "INC-4711",
        "emergency_category": "service_outage",
        "emergency_reason": "Card payments fail for Maestro cards.",
    }


class UserFactory(DjangoModelFactory[User]):
    class Meta:
        model = User
        django_get_or_create = ("username",)

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda user: f"{user.username}@bank.example")
    password = factory.django.Password("a-test-password-1234")
    is_staff = True


class DomainFactory(DjangoModelFactory[Domain]):
    class Meta:
        model = Domain
        django_get_or_create = ("slug",)

    slug = factory.Sequence(lambda n: f"domain-{n}")
    name = factory.LazyAttribute(lambda domain: domain.slug.title())
    owning_squad = "A squad"


class ServiceFactory(DjangoModelFactory[Service]):
    class Meta:
        model = Service
        django_get_or_create = ("slug",)

    slug = factory.Sequence(lambda n: f"service-{n}")
    name = factory.LazyAttribute(lambda service: service.slug)
    domain = factory.SubFactory(DomainFactory)
    repository_url = "https://git.bank.example/repo"


class JourneyFactory(DjangoModelFactory[Journey]):
    class Meta:
        model = Journey
        django_get_or_create = ("journey_id",)

    journey_id = factory.Sequence(lambda n: f"JRN-{n:03d}")
    name = "A journey"
    domain = factory.SubFactory(DomainFactory)
    critical = True


def changelog_make(
    *,
    service: Service,
    by: Any = FACTORY_ACTOR,
    kind: str = ChangelogKind.TRAIN,
    submitted: bool = False,
    **content_overrides: Any,
) -> Changelog:
    """A changelog created (and optionally submitted) through the services."""
    if kind == ChangelogKind.HOTFIX:
        content_overrides.setdefault("hotfix", hotfix_details())
    content = content_validate(kind=kind, content=changelog_content(**content_overrides))
    creator = by if isinstance(by, User) else _factory_user()
    changelog = changelog_services.changelog_create(acting_user=creator, service=service, kind=kind, content=content)
    if submitted:
        changelog_services.changelog_submit(acting_user=creator, changelog=changelog)
    return changelog


def _factory_user() -> User:
    return UserFactory(username="factory-user")


def aware(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)
