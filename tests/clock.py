"""Letting time pass in a test. Business times come from the database's clock (audit/clock.py),
which no test can move; moving every recorded time of the apps back by the same amount is the
same thing as that amount of time passing. The audit trail is append-only and keeps its own
times (nothing decides by them)."""

from datetime import timedelta

from django.apps import apps
from django.db import models
from django.db.models import F

AGED_APPS = ("changelogs", "approvals", "releasegate")


def time_passes(delta: timedelta) -> None:
    for label in AGED_APPS:
        for model in apps.get_app_config(label).get_models():
            fields = [field.name for field in model._meta.concrete_fields if isinstance(field, models.DateTimeField)]
            if fields:
                model._default_manager.update(**{name: F(name) - delta for name in fields})
