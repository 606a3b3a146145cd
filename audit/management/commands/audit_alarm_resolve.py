from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from audit.alarms import alarm_resolve, alarms_open
from audit.models import AuditAlarm


class Command(BaseCommand):
    help = (
        "List open audit alarms, or resolve one (audited) once you have found and dealt with the cause: "
        "audit_alarm_resolve ID --by USERNAME --resolution TEXT."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("alarm", nargs="?", type=int, help="The alarm to resolve; none lists the open ones.")
        parser.add_argument("--by", help="Your username: who resolves it.")
        parser.add_argument("--resolution", help="What you found and did.")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["alarm"] is None:
            for alarm in alarms_open():
                self.stdout.write(
                    f"{alarm.pk} {alarm.kind} since {alarm.raised_at:%Y-%m-%d %H:%M:%S} UTC: {alarm.detail}"
                )
            return
        if not options["by"] or not (options["resolution"] or "").strip():
            raise CommandError("--by and --resolution are required to resolve an alarm")
        user = get_user_model().objects.filter(username=options["by"], is_active=True).first()
        if user is None or not user.is_superuser:
            raise CommandError(f"{options['by']!r} is not an active administrator")
        found = AuditAlarm.objects.filter(pk=options["alarm"]).first()
        if found is None:
            raise CommandError(f"no audit alarm {options['alarm']}")
        alarm = alarm_resolve(alarm=found, acting_user=user, resolution=options["resolution"])
        self.stdout.write(f"alarm {alarm.pk} resolved")
