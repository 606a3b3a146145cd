"""The default root-cause taxonomy: written by a data migration and after every migrate (a test
flush empties it). An administrator edits, adds and retires tags in the admin; an existing tag is
never changed by this."""

from typing import Any

DEFAULT_TAGS: tuple[tuple[str, str], ...] = (
    ("database", "Database"),
    ("network", "Network"),
    ("configuration", "Configuration"),
    ("third-party", "Third party"),
    ("capacity", "Capacity"),
    ("code", "Code"),
    ("data", "Data"),
    ("infrastructure", "Infrastructure"),
    ("security", "Security"),
    ("process", "Process"),
)


def taxonomy_seed(*, using: str = "default", model: Any = None) -> int:
    if model is None:
        from incidents.models import RootCauseTag

        model = RootCauseTag
    if model.objects.using(using).exists():
        return 0
    model.objects.using(using).bulk_create([model(slug=slug, name=name) for slug, name in DEFAULT_TAGS])
    return len(DEFAULT_TAGS)
