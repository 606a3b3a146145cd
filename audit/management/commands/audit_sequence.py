import time
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from audit.sequencer import sequence_pending


class Command(BaseCommand):
    help = "Append committed audit events to the Merkle log and sign a checkpoint."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--loop", action="store_true", help="Keep sequencing until stopped.")
        parser.add_argument("--interval", type=float, default=0.2, help="Seconds between runs with --loop.")

    def handle(self, *args: Any, loop: bool, interval: float, **options: Any) -> None:
        while True:
            added = sequence_pending()
            if added or not loop:
                self.stdout.write(f"sequenced {added} event(s)")
            if not loop:
                return
            if not added:
                time.sleep(interval)
