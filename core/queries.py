"""Reading helpers every app's selectors share."""

from typing import TypeVar

from django.db.models import Model, QuerySet

M = TypeVar("M", bound=Model)


def narrowed(queryset: QuerySet[M], **lookups: object) -> QuerySet[M]:
    """The queryset filtered by each lookup that was asked for: a list endpoint's optional
    filters, where None or an empty string means the caller did not ask (False and 0 are asked)."""
    asked = {lookup: value for lookup, value in lookups.items() if value is not None and value != ""}
    return queryset.filter(**asked) if asked else queryset
