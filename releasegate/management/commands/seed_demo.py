"""Demo data for a local try-out. Idempotent; refuses to run without DEBUG because it creates
accounts with well-known passwords."""

from datetime import timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction
from django.utils import timezone
from guardian.shortcuts import assign_perm

from approvals.selectors import authorities_of
from approvals.services import authority_grant_request, grant_confirm
from audit.services import Actor
from changelogs.models import Domain, Journey, Service
from changelogs.selectors import MANAGE_CHANGELOGS
from changelogs.services import catalog_save
from releasegate.models import ApiToken, User
from releasegate.packs import pack_signing_material
from releasegate.roles import AUDITORS
from releasegate.services import api_token_issue, service_account_create, service_account_username
from releasegate.tokens import token_hash

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


def catalog_seed(*, acting_user: Any) -> None:
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
        pack_signing_material()  # the development certificate that signs evidence packs
        with transaction.atomic():
            catalog_seed(acting_user=SEED_ACTOR)
            self._users()
            token = self._pipeline_token(Path(settings.VAR_DIR) / "demo-pipeline-token")
        if quiet:
            return
        self.stdout.write("Demo logins (http://127.0.0.1:8000/admin/):")
        for username, password, description in DEMO_USERS:
            self.stdout.write(f"  {username:<10} {password:<26} {description}")
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
                    acting_user=admin, domain=domain, authority=authority, user=user, reason="Demo authority matrix"
                )
                grant_confirm(acting_user=admin2, grant=grant)

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
        _, plain = api_token_issue(acting_user=SEED_ACTOR, account=account, name="demo pipeline token")
        token_file.parent.mkdir(parents=True, exist_ok=True)
        token_file.write_text(plain + "\n")
        token_file.chmod(0o600)
        return plain
