from typing import Any

from django.core.management.base import BaseCommand, CommandError

from audit.models import Checkpoint
from audit.selectors import signed_root
from audit.trust import SignedHead, state_load, state_path, state_save
from audit.verification import verify_log


class Command(BaseCommand):
    help = (
        "Write the sequencer's state file (AUDIT_SEQUENCER_STATE_FILE) from the database's latest checkpoint, "
        "after a full audit_verify passes. For a log from before the state file existed, or a state file lost: "
        "compare the checkpoint it prints with one you kept outside."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        current = state_load()
        if current is not None:
            raise CommandError(f"{state_path()} exists (size {current.size}); it is never overwritten by this command")
        report = verify_log()
        if not report.ok:
            raise CommandError("audit_verify fails on this log; nothing adopted")
        latest = Checkpoint.objects.order_by("-tree_size").first()
        if latest is None:
            self.stdout.write("the log is empty: nothing to adopt")
            return
        state_save(SignedHead(latest.tree_size, signed_root(latest), latest.signed_note))
        self.stdout.write(f"adopted the checkpoint at size {latest.tree_size}:\n{latest.signed_note}")
