"""Typed readers for settings that come from the environment.

Each reader fails at start-up with a message naming the variable and what it expected, so a
bad deployment never starts half-configured.
"""

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def env_str(name: str, default: str | None = None, *, environ: Mapping[str, str] = os.environ) -> str:
    value = environ.get(name)
    if value is None:
        if default is None:
            raise ImproperlyConfigured(f"{name} must be set")
        return default
    return value


def env_bool(name: str, default: bool, *, environ: Mapping[str, str] = os.environ) -> bool:
    raw = environ.get(name)
    if raw is None:
        return default
    lowered = raw.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name} must be a boolean (1/0, true/false, yes/no), got {raw!r}")


def env_int(
    name: str,
    default: int,
    *,
    minimum: int | None = None,
    environ: Mapping[str, str] = os.environ,
) -> int:
    raw = environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw.strip())
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a whole number, got {raw!r}") from None
    if minimum is not None and value < minimum:
        raise ImproperlyConfigured(f"{name} must be at least {minimum}, got {value}")
    return value


def env_list(name: str, default: list[str], *, environ: Mapping[str, str] = os.environ) -> list[str]:
    raw = environ.get(name)
    if raw is None:
        return list(default)
    return [item.strip() for item in raw.split(",") if item.strip()]


def env_choice(name: str, default: str, choices: tuple[str, ...], *, environ: Mapping[str, str] = os.environ) -> str:
    value = environ.get(name, default).strip()
    if value not in choices:
        raise ImproperlyConfigured(f"{name} must be one of {', '.join(choices)}, got {value!r}")
    return value


# How long a process keeps its PostgreSQL connection (Django's CONN_MAX_AGE), unless
# DATABASE_CONN_MAX_AGE says otherwise. A new connection costs the gate check tens of
# milliseconds over its first few checks (the catalog of the ~30 tables its read names, and the
# read planned anew: docs/benchmarks.md), which a lifetime of 60 s made every worker pay every
# minute; a broken connection is still replaced at once (CONN_HEALTH_CHECKS).
DEFAULT_CONN_MAX_AGE = 600


def database_from_url(url: str, *, base_dir: Path, conn_max_age: int = DEFAULT_CONN_MAX_AGE) -> dict[str, Any]:
    """Turn ``sqlite:///relative/path``, ``sqlite:////abs/path`` or
    ``postgres://user:pass@host:port/name?option=value`` into a Django DATABASES entry."""
    parts = urlsplit(url)
    if parts.scheme == "sqlite":
        # sqlite:///var/db.sqlite3 is relative to the project, sqlite:////tmp/x.db absolute.
        path = parts.path[1:] if parts.path.startswith("/") else parts.path
        if not path:
            raise ImproperlyConfigured("DATABASE_URL for sqlite needs a file path: sqlite:///var/db.sqlite3")
        file = Path(path) if Path(path).is_absolute() else base_dir / path
        return {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": str(file),
            "OPTIONS": {"timeout": 20, "transaction_mode": "IMMEDIATE"},
        }
    if parts.scheme in {"postgres", "postgresql"}:
        name = unquote(parts.path.lstrip("/"))
        if not name:
            raise ImproperlyConfigured("DATABASE_URL for PostgreSQL needs a database name: postgres://host/name")
        options = dict(parse_qsl(parts.query))
        return {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": name,
            "USER": unquote(parts.username or ""),
            "PASSWORD": unquote(parts.password or ""),
            "HOST": parts.hostname or "",
            "PORT": str(parts.port or ""),
            "CONN_MAX_AGE": conn_max_age,
            "CONN_HEALTH_CHECKS": True,
            "OPTIONS": options,
        }
    raise ImproperlyConfigured(f"DATABASE_URL scheme {parts.scheme!r} is not supported; use sqlite:/// or postgres://")


# What production cannot start without (each group: one of these names, set and not empty).
# With DEBUG on, the embedded default supplies development values for all of them.
REQUIRED_UNLESS_DEBUG: tuple[tuple[str, ...], ...] = (
    ("SECRET_KEY",),
    ("AUDIT_SIGNING_KEY", "AUDIT_SIGNING_KEY_FILE"),
    ("ORGANISATION_NAME",),
    ("PACK_SIGNING_KEY_FILE",),
    ("PACK_SIGNING_CERT_FILE",),
)


def missing_required(*, environ: Mapping[str, str] = os.environ) -> list[str]:
    """The required settings not set, as people would name them ("A or B" for a choice)."""
    return [
        " or ".join(names)
        for names in REQUIRED_UNLESS_DEBUG
        if not any(environ.get(name, "").strip() for name in names)
    ]


def missing_required_message(missing: list[str]) -> str:
    """One line for whoever starts the process: what is missing and how to set it."""
    return (
        f"Release Gate is not configured: set {', '.join(missing)} in the environment "
        "(README.md, Configuration), or DEBUG=1 for the embedded development defaults."
    )
