import getpass
from datetime import timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from changelogs.models import Service
from core.actors import Actor
from core.errors import ApplicationError
from releasegate.services import api_token_issue, service_account_create
from releasegate.tokens import ALL_SCOPES, scopes_parse


class Command(BaseCommand):
    help = (
        "Create a pipeline service account scoped to services, and print its API token once. The token "
        "may do only what its scopes say."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name", help="Account name, e.g. payments-ci.")
        parser.add_argument(
            "--service", action="append", required=True, dest="services", help="Service slug (repeatable)."
        )
        parser.add_argument(
            "--scope",
            action="append",
            required=True,
            dest="scopes",
            help=f"What the token may do (repeatable or comma-separated): {', '.join(ALL_SCOPES)}, or all.",
        )
        parser.add_argument(
            "--days", type=int, default=None, help="Token lifetime in days (default and maximum from settings)."
        )

    def handle(
        self, *args: Any, name: str, services: list[str], scopes: list[str], days: int | None, **options: Any
    ) -> None:
        try:
            chosen = scopes_parse(scopes)
        except ValueError as error:
            raise CommandError(str(error)) from error
        found = {service.slug: service for service in Service.objects.filter(slug__in=services)}
        missing = sorted(set(services) - set(found))
        if missing:
            raise CommandError(f"unknown service(s): {', '.join(missing)}")
        actor = Actor(f"system:manage.py:{getpass.getuser()}")
        try:
            account = service_account_create(acting_user=actor, name=name, services=found.values())
            token, plain = api_token_issue(
                acting_user=actor,
                account=account,
                name=f"{name} (created by manage.py)",
                scopes=chosen,
                lifetime=timedelta(days=days) if days else None,
            )
        except ApplicationError as error:
            raise CommandError(error.message) from error
        self.stdout.write(f"service account {account.username} for {', '.join(sorted(found))}")
        self.stdout.write(f"token scopes: {', '.join(token.scopes)}")
        self.stdout.write(f"token expires {token.expires_at:%Y-%m-%d %H:%M} UTC; it is shown only now:")
        self.stdout.write(plain)
