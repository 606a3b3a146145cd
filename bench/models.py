"""One small service-like model per variant of "the same write", so that each variant's
history mechanism is attached to its own table and nothing else.

- PlainRow: the row change only, no history.
- PghistoryRow: django-pghistory's trigger writes an event row for every insert and update.
- AuditlogRow: django-auditlog's signals write a LogEntry (registered in apps.py).
- ReleaseGateRow: a plain row; the benchmark records an audit event beside the change.
"""

import pghistory
from django.db import models


class BenchRow(models.Model):
    slug = models.SlugField(max_length=100, unique=True)
    name = models.CharField(max_length=200)
    status = models.CharField(max_length=20)
    owner = models.CharField(max_length=100)

    class Meta:
        abstract = True

    def __str__(self) -> str:
        return self.slug


class PlainRow(BenchRow):
    pass


@pghistory.track()
class PghistoryRow(BenchRow):
    pass


class AuditlogRow(BenchRow):
    pass


class ReleaseGateRow(BenchRow):
    pass
