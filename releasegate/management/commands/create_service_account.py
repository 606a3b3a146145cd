import getpass
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from audit.services import Actor
from changelogs.models import Service
from releasegate.errors import ApplicationError
from releasegate.services import api_token_issue, service_account_create


class Command(BaseCommand):
    help = "Create a pipeline service account scoped to services, and print its API token once."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name", help="Account name, e.g. payments-ci.")
        parser.add_argument(
            "--service", action="append", required=True, dest="services", help="Service slug (repeatable)."
        )
        parser.add_argument("--days", type=int, default=None, help="Token lifetime in days (default from settings).")

    def handle(self, *args: Any, name: str, services: list[str], days: int | None, **options: Any) -> None:
        from datetime import timedelta

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
                lifetime=timedelta(days=days) if days else None,
            )
        except ApplicationError as error:
            raise CommandError(error.message) from error
        self.stdout.write(f"service account {account.username} for {', '.join(sorted(found))}")
        self.stdout.write(f"token expires {token.expires_at:%Y-%m-%d %H:%M} UTC; it is shown only now:")
        self.stdout.write(plain)
