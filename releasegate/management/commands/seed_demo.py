"""Demo data for a local try-out. Idempotent; refuses to run without DEBUG because it creates
accounts with well-known passwords."""

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction
from django.utils import timezone
from guardian.shortcuts import assign_perm

from approvals.selectors import authorities_of
from approvals.services import Seen, approval_decide, authority_grant_request, grant_confirm
from changelogs.content_rules import content_validate
from changelogs.models import Changelog, Domain, Journey, Service
from changelogs.selectors import MANAGE_CHANGELOGS, changelog_lock
from changelogs.services import catalog_save, changelog_create, changelog_submit, evidence_add, policy_create
from core.actors import ActingUser, Actor, StepUp
from incidents.demo import demo_incidents
from releasegate.deployments import deployment_report
from releasegate.documents import signing_material
from releasegate.gate import gate_check
from releasegate.models import ApiToken, User
from releasegate.roles import AUDITORS
from releasegate.services import api_token_issue, service_account_create, service_account_username
from releasegate.tokens import ALL_SCOPES, token_hash

SEED_ACTOR = Actor("system:seed_demo")

CatalogEntries = dict[str, list[tuple[Any, ...]]]
CATALOG: dict[tuple[str, str, str], CatalogEntries] = {
    ("registration", "Registration & sign-ups", "Onboarding squad"): {
        "services": [("signup-api", "Sign-up API"), ("kyc-worker", "Identity checks worker")],
        "journeys": [("REG-001", "Open an account online", True), ("REG-002", "Verify identity", True)],
    },
    ("payments", "Payments", "Payments squad"): {
        "services": [("payments-api", "Payments API"), ("payments-web", "Payments web")],
        "journeys": [
            ("PAY-001", "Pay by card", True),
            ("PAY-002", "Set up a standing order", True),
            ("PAY-003", "Refund a payment", False),
        ],
    },
    ("transfers", "Transfers", "Transfers squad"): {
        "services": [("transfers-api", "Transfers API"), ("fx-quotes", "FX quotes")],
        "journeys": [("TRF-001", "Domestic transfer", True), ("TRF-002", "International transfer", True)],
    },
    ("customer-accounts", "Customer & accounts", "Accounts squad"): {
        "services": [("accounts-api", "Accounts API"), ("statements", "Statements service")],
        "journeys": [("ACC-001", "Log in", True), ("ACC-002", "Download a statement", True)],
    },
}

# (username, password, description); passwords are public: this is demo data.
DEMO_USERS = [
    ("admin", "admin-demo-password", "administrator (all rights)"),
    ("admin2", "admin2-demo-password", "second administrator: confirms what the first asks for"),
    ("requester", "requester-demo-password", "payments engineer, drafts payments changelogs"),
    ("approver", "approver-demo-password", "signing authority for payments"),
    ("approver2", "approver2-demo-password", "signing authority for transfers"),
    ("auditor", "auditor-demo-password", "internal audit, read-only"),
]
# The authority matrix of the demo: who may sign off which domain.
DEMO_AUTHORITIES = {
    "approver": [("payments", "sign_off"), ("payments", "security_sign_off")],
    "approver2": [("transfers", "sign_off"), ("payments", "data_sign_off")],
}
DEMO_PIPELINE = "payments-ci"
DEMO_PIPELINE_SERVICES = ("payments-api", "payments-web")
# The passing example evidence shipped with the repository (docs/examples/README.md).
EXAMPLES_DIR = Path(settings.BASE_DIR) / "docs" / "examples"
EXAMPLE_EVIDENCE = (
    ("sanity", "junit.xml", "staging", "pytest"),
    ("performance", "k6-summary.json", "staging", "k6"),
    ("security", "semgrep.sarif", "", "semgrep"),
)
# Digests of the demo's own changes; the README's walkthrough uses another one.
DEMO_DIGESTS = {
    "1.5.0": "sha256:" + "5a" * 32,
    "2.3.0": "sha256:" + "23" * 32,
    "2.2.1": "sha256:" + "43" * 32,
    "unknown": "sha256:" + "de" * 32,
}


def catalog_seed(*, acting_user: ActingUser | Actor) -> None:
    """The demo catalog's domains, services and journeys, those not there yet (bench/gate.py
    builds its catalog with it too)."""
    for (slug, name, squad), entries in CATALOG.items():
        domain = Domain.objects.filter(slug=slug).first()
        if domain is None:
            domain = Domain(slug=slug, name=name, owning_squad=squad)
            catalog_save(acting_user=acting_user, instance=domain)
        for service_slug, service_name in entries["services"]:
            if not Service.objects.filter(slug=service_slug).exists():
                service = Service(
                    slug=service_slug,
                    name=service_name,
                    domain=domain,
                    repository_url=f"https://git.bank.example/{slug}/{service_slug}",
                )
                catalog_save(acting_user=acting_user, instance=service)
        for journey_id, journey_name, critical in entries["journeys"]:
            if not Journey.objects.filter(journey_id=journey_id).exists():
                journey = Journey(journey_id=journey_id, name=journey_name, domain=domain, critical=critical)
                catalog_save(acting_user=acting_user, instance=journey)


class Command(BaseCommand):
    help = "Load demo domains, services, journeys, users and a pipeline token (DEBUG only)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--quiet", action="store_true", help="Do not print logins and the token.")

    def handle(self, *args: Any, quiet: bool, **options: Any) -> None:
        if not settings.DEBUG:
            raise CommandError("seed_demo creates accounts with well-known passwords; it runs only with DEBUG on")
        signing_material()  # the development certificate that signs evidence packs
        with transaction.atomic():
            catalog_seed(acting_user=SEED_ACTOR)
            self._users()
            token = self._pipeline_token(Path(settings.VAR_DIR) / "demo-pipeline-token")
            if not Changelog.objects.exists():
                demo_changes(pipeline=User.objects.get(username=service_account_username(DEMO_PIPELINE)))
            demo_incidents(
                actor=SEED_ACTOR,
                classifier=User.objects.get(username="admin"),
                owner=User.objects.get(username="requester"),
            )
        if quiet:
            return
        self.stdout.write("Demo logins (http://127.0.0.1:8000/admin/):")
        for username, password, description in DEMO_USERS:
            self.stdout.write(f"  {username:<10} {password:<26} {description}")
        self.stdout.write("Each login's front page (http://127.0.0.1:8000/) shows what waits for it.")
        self.stdout.write(f"Demo pipeline token ({DEMO_PIPELINE}, for {', '.join(DEMO_PIPELINE_SERVICES)}):")
        self.stdout.write(f"  {token}")

    def _users(self) -> None:
        for username, password, _ in DEMO_USERS:
            if User.objects.filter(username=username).exists():
                continue
            user = User(username=username, email=f"{username}@bank.example", is_staff=True)
            user.is_superuser = username in {"admin", "admin2"}
            user.set_password(password)
            user.save()
            if username == "requester":
                for slug in DEMO_PIPELINE_SERVICES:
                    assign_perm(MANAGE_CHANGELOGS, user, Service.objects.get(slug=slug))
            if username == "auditor":
                user.groups.add(Group.objects.get(name=AUDITORS))
        # Signing authorities follow the two-person rule even in the demo: admin asks, admin2 confirms.
        admin, admin2 = User.objects.get(username="admin"), User.objects.get(username="admin2")
        for username, authorities in DEMO_AUTHORITIES.items():
            user = User.objects.get(username=username)
            for domain_slug, authority in authorities:
                domain = Domain.objects.get(slug=domain_slug)
                if authority in authorities_of(user=user, domain=domain):
                    continue
                grant = authority_grant_request(
                    acting_user=admin,
                    domain=domain,
                    authority=authority,
                    user=user,
                    reason="Demo authority matrix",
                    step_up=StepUp.of(admin),
                )
                grant_confirm(acting_user=admin2, grant=grant, step_up=StepUp.of(admin2))

    def _pipeline_token(self, token_file: Path) -> str:
        """The demo token is kept in var/ so that every `make run` can print it again; only its
        hash is in the database, as for any token."""
        account = User.objects.filter(username=service_account_username(DEMO_PIPELINE)).first()
        if account is None:
            services = Service.objects.filter(slug__in=DEMO_PIPELINE_SERVICES)
            account = service_account_create(acting_user=SEED_ACTOR, name=DEMO_PIPELINE, services=services)
        if token_file.exists():
            plain = token_file.read_text().strip()
            stored = ApiToken.objects.filter(token_hash=token_hash(plain), revoked_at__isnull=True).first()
            if stored is not None and stored.expires_at > timezone.now() + timedelta(days=1):
                return plain
        _, plain = api_token_issue(
            acting_user=SEED_ACTOR, account=account, name="demo pipeline token", scopes=ALL_SCOPES
        )
        token_file.parent.mkdir(parents=True, exist_ok=True)
        token_file.write_text(plain + "\n")
        token_file.chmod(0o600)
        return plain


def _demo_content(*, version: str, digest: str, now: datetime, reason: str, kind: str = "train") -> dict[str, Any]:
    hotfix = {
        "incident_reference": "INC-4711",
        "emergency_category": "service_outage",
        "emergency_reason": "Card payments fail for Maestro cards.",
    }
    return content_validate(
        kind=kind,
        content={
            "hotfix": hotfix if kind == "hotfix" else None,
            "artifact": {
                "name": "payments-api",
                "version": version,
                "digest": digest,
                "source_revision": "0123456789abcdef0123456789abcdef01234567",
                "links": [{"title": "pull request", "url": "https://git.bank.example/payments/payments-api/pull/42"}],
            },
            "deploy_steps": [{"description": "Roll out", "command": "kubectl rollout restart deploy/payments-api"}],
            "no_data_changes": True,
            "rollback_plan": "kubectl rollout undo deploy/payments-api",
            "reason": reason,
            "scope": "The fee calculation of payments-api; no other service, no data.",
            "expected_outcome": "Fees round half-even.",
            "planned_window": {"start": now - timedelta(hours=1), "end": now + timedelta(days=7)},
            # A high-risk hotfix needs two approvals: it goes out on one and owes the other.
            "risk_tier": "high" if kind == "hotfix" else "medium",
            "security_impact": {"declared": False},
        },
    )


def demo_changes(*, pipeline: User, now: datetime | None = None) -> None:
    """Something for every demo login's front page, made through the services as a pipeline
    would: a payments change with the example evidence submitted for sign-off (approver,
    approver2), a hotfix that went out on one approval and owes its retrospective (everyone of
    payments), a payments-web draft still missing its evidence (requester), the gate asked about
    the submitted one (denied: no approval yet) and a deployment no allow decision covered
    (unauthorised: auditor, approvers, requester)."""
    now = now or timezone.now()
    payments_api = Service.objects.get(slug="payments-api")
    # The demo's people have no passkeys, and the high-risk hotfix below is approved by this
    # script, which holds no one's key: its approval could not be signed, so approvals count
    # unsigned here. (In the admin, an approver registers a passkey on the Second factor page and
    # the decision page signs with it.) A bank keeps the default (signed at high and critical
    # risk; docs/identity.md).
    policy_create(
        acting_user=User.objects.get(username="admin"),
        domain=payments_api.domain,
        rules={"signed_approvals": []},
        reason="Demo: no passkeys registered, approvals count unsigned at every tier.",
    )
    _submitted_with_examples(
        pipeline,
        payments_api,
        _demo_content(version="1.5.0", digest=DEMO_DIGESTS["1.5.0"], now=now, reason="Fix card fee rounding"),
    )
    # The hotfix is payments-web's: once overdue, its retrospective would stop payments-api's
    # deployments, the README's walkthrough included.
    hotfix_content = _demo_content(
        version="2.2.1", digest=DEMO_DIGESTS["2.2.1"], now=now, reason="Maestro fix", kind="hotfix"
    )
    hotfix_content["artifact"]["name"] = "payments-web"
    hotfix = _submitted_with_examples(pipeline, Service.objects.get(slug="payments-web"), hotfix_content, kind="hotfix")
    revision = changelog_lock(changelog=hotfix).current_revision
    if revision is None:
        raise CommandError("the demo hotfix has no revision")
    approver = User.objects.get(username="approver")
    approval_decide(
        acting_user=approver,
        changelog=hotfix,
        decision="approved",
        reason="Incident INC-4711: one independent approval now, the rest owed by the retrospective.",
        seen=Seen(revision=revision.number, content_hash=revision.content_hash),
        step_up=StepUp.of(approver),
    )
    draft_content = _demo_content(version="2.3.0", digest=DEMO_DIGESTS["2.3.0"], now=now, reason="New card form")
    draft_content["artifact"]["name"] = "payments-web"
    changelog_create(
        acting_user=pipeline, service=Service.objects.get(slug="payments-web"), kind="train", content=draft_content
    )
    gate_check(acting_user=pipeline, service=payments_api, environment="production", digest=DEMO_DIGESTS["1.5.0"])
    deployment_report(
        acting_user=pipeline,
        idempotency_key="demo-unauthorised",
        service=payments_api,
        environment="production",
        digest=DEMO_DIGESTS["unknown"],
        status="succeeded",
        pipeline_run_url="https://ci.bank.example/payments-api/runs/1",
        started_at=now - timedelta(minutes=5),
        finished_at=now,
    )


def _submitted_with_examples(
    pipeline: User, service: Service, content: dict[str, Any], kind: str = "train"
) -> Changelog:
    """A changelog created, given the example evidence its kind needs, and submitted."""
    changelog = changelog_create(acting_user=pipeline, service=service, kind=kind, content=content)
    for evidence_kind, name, environment, tool in EXAMPLE_EVIDENCE:
        if kind == "hotfix" and evidence_kind == "performance":
            continue  # the default policy asks a hotfix for sanity and security results only
        evidence_add(
            acting_user=pipeline,
            changelog=changelog_lock(changelog=changelog),
            data=(EXAMPLES_DIR / name).read_bytes(),
            file_name=name,
            kind=evidence_kind,
            tool=tool,
            environment=environment,
            # The build the tests and measurements ran against (PR-02: require_evidence_digest).
            artifact_digest=content["artifact"]["digest"] if evidence_kind != "security" else "",
        )
    changelog_submit(acting_user=pipeline, changelog=changelog_lock(changelog=changelog))
    return changelog
