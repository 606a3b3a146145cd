from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from audit.alarms import alarm_raise
from audit.models import AlarmKind
from audit.verification import trusted_checkpoint_parse, verify_log
from tlog.note import NoteError


class Command(BaseCommand):
    help = (
        "Recompute every leaf hash from the stored events, every stored node and every checkpoint's root, check "
        "the signatures, the chain of checkpoints, checkpoints kept outside and backdated events, and exit "
        "non-zero naming the first divergent leaf (raising an audit alarm)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--trusted-checkpoint",
            action="append",
            default=[],
            metavar="FILE",
            help="A signed checkpoint kept outside the database (e.g. from the API, a witness or an evidence pack); "
            "the log must extend it. Repeatable.",
        )
        parser.add_argument(
            "--since-trusted",
            action="store_true",
            help="Check only the leaves after the largest trusted checkpoint (cost in proportion to the new events).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        trusted = []
        for name in options["trusted_checkpoint"]:
            try:
                trusted.append(trusted_checkpoint_parse(Path(name).read_text()))
            except (OSError, UnicodeDecodeError, NoteError) as error:
                raise CommandError(f"{name}: not a checkpoint of this log signed by its key ({error})") from error
        if options["since_trusted"] and not trusted:
            raise CommandError("--since-trusted needs --trusted-checkpoint")
        report = verify_log(
            progress=lambda n: self.stderr.write(f"… {n} leaves"),
            trusted=trusted,
            since_trusted=options["since_trusted"],
        )
        if report.ok:
            checked = f"leaves {report.start}..{report.leaves - 1}" if report.start else f"{report.leaves} leaves"
            kept = f", consistent with {report.trusted} trusted checkpoint(s)" if report.trusted else ""
            self.stdout.write(f"ok: {checked} and {report.checkpoints} checkpoints verified{kept}")
            return
        first = report.first
        if first is None:  # pragma: no cover - a failed report always has a divergence
            raise CommandError("verification failed")
        for divergence in sorted(report.divergences, key=lambda d: d.leaf_index)[:20]:
            self.stderr.write(f"leaf {divergence.leaf_index}: {divergence.reason}")
        if report.unsigned:
            self.stderr.write(f"{report.unsigned} leaves past the latest checkpoint are unsigned (not verified)")
        alarm_raise(
            kind=AlarmKind.VERIFICATION_FAILED, detail=f"first divergent leaf {first.leaf_index}: {first.reason}"
        )
        raise CommandError(f"first divergent leaf: {first.leaf_index} ({first.reason})")
