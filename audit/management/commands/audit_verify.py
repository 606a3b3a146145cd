from typing import Any

from django.core.management.base import BaseCommand, CommandError

from audit.verification import verify_log


class Command(BaseCommand):
    help = (
        "Recompute every leaf hash from the stored events and every checkpoint's root, check the "
        "signatures, and exit non-zero naming the first divergent leaf."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        report = verify_log(progress=lambda n: self.stderr.write(f"… {n} leaves"))
        if report.ok:
            self.stdout.write(f"ok: {report.leaves} leaves and {report.checkpoints} checkpoints verified")
            return
        first = report.first
        if first is None:  # pragma: no cover - a failed report always has a divergence
            raise CommandError("verification failed")
        for divergence in sorted(report.divergences, key=lambda d: d.leaf_index)[:20]:
            self.stderr.write(f"leaf {divergence.leaf_index}: {divergence.reason}")
        raise CommandError(f"first divergent leaf: {first.leaf_index} ({first.reason})")
