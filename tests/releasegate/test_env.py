"""Settings come from the environment and a bad value stops the process with a clear message."""

import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from releasegate.env import database_from_url, env_bool, env_choice, env_int, env_list, env_str
from tests.settings_import import import_settings

ROOT = Path(__file__).resolve().parents[2]


def test_booleans_read_the_usual_spellings() -> None:
    assert env_bool("X", False, environ={"X": "yes"}) is True
    assert env_bool("X", True, environ={"X": "0"}) is False
    assert env_bool("X", True, environ={}) is True


def test_a_bad_boolean_names_the_variable() -> None:
    with pytest.raises(ImproperlyConfigured, match=r"DEBUG must be a boolean.*'maybe'"):
        env_bool("DEBUG", False, environ={"DEBUG": "maybe"})


def test_a_bad_number_names_the_variable() -> None:
    with pytest.raises(ImproperlyConfigured, match="EVIDENCE_MAX_BYTES must be a whole number"):
        env_int("EVIDENCE_MAX_BYTES", 1, environ={"EVIDENCE_MAX_BYTES": "20MB"})
    with pytest.raises(ImproperlyConfigured, match="at least 1"):
        env_int("N", 1, minimum=1, environ={"N": "0"})


def test_lists_and_choices_and_required_strings() -> None:
    assert env_list("HOSTS", ["a"], environ={"HOSTS": " x.example, y.example ,"}) == ["x.example", "y.example"]
    with pytest.raises(ImproperlyConfigured, match="STORAGE_BACKEND must be one of filesystem, s3"):
        env_choice("STORAGE_BACKEND", "filesystem", ("filesystem", "s3"), environ={"STORAGE_BACKEND": "ftp"})
    with pytest.raises(ImproperlyConfigured, match="S3_BUCKET must be set"):
        env_str("S3_BUCKET", environ={})


def test_database_urls() -> None:
    postgres = database_from_url("postgres://app:s%40cret@db.internal:6432/releasegate?sslmode=require", base_dir=ROOT)
    sqlite = database_from_url("sqlite:///var/db.sqlite3", base_dir=ROOT)

    assert postgres["ENGINE"] == "django.db.backends.postgresql"
    assert (postgres["NAME"], postgres["USER"], postgres["PASSWORD"]) == ("releasegate", "app", "s@cret")
    assert (postgres["HOST"], postgres["PORT"], postgres["OPTIONS"]) == ("db.internal", "6432", {"sslmode": "require"})
    assert sqlite["NAME"] == str(ROOT / "var/db.sqlite3")
    with pytest.raises(ImproperlyConfigured, match="mysql"):
        database_from_url("mysql://x/y", base_dir=ROOT)


_CONNECTION_LIFETIME = "import releasegate.settings as s; print(s.DATABASES['default']['CONN_MAX_AGE'])"


def test_a_worker_keeps_its_postgresql_connection_ten_minutes_unless_told_otherwise() -> None:
    # Every new connection costs the gate check its catalog and its read's planning again
    # (docs/benchmarks.md): a lifetime of a minute put that into the gate's p99.
    postgres = {"DATABASE_URL": "postgres://app@db.internal/releasegate"}

    default = import_settings(postgres, code=_CONNECTION_LIFETIME)
    told = import_settings({**postgres, "DATABASE_CONN_MAX_AGE": "0"}, code=_CONNECTION_LIFETIME)
    refused = import_settings({**postgres, "DATABASE_CONN_MAX_AGE": "-1"})

    assert (default.returncode, default.stdout.strip()) == (0, "600"), default.stderr
    assert (told.returncode, told.stdout.strip()) == (0, "0"), told.stderr
    assert refused.returncode != 0
    assert "DATABASE_CONN_MAX_AGE must be at least 0, got -1" in refused.stderr


def _import_settings(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return import_settings(env, base={"PATH": "/usr/bin:/bin"})


def test_production_refuses_to_start_without_a_secret_key() -> None:
    result = _import_settings({})

    assert result.returncode != 0
    assert "set SECRET_KEY, AUDIT_SIGNING_KEY or AUDIT_SIGNING_KEY_FILE, ORGANISATION_NAME" in result.stderr


def test_production_refuses_to_start_without_a_checkpoint_key() -> None:
    result = _import_settings({"SECRET_KEY": "x" * 50})

    assert result.returncode != 0
    assert "set AUDIT_SIGNING_KEY or AUDIT_SIGNING_KEY_FILE, ORGANISATION_NAME" in result.stderr


def test_debug_starts_with_development_defaults() -> None:
    assert _import_settings({"DEBUG": "1"}).returncode == 0


def test_production_refuses_to_start_without_an_organisation_name() -> None:
    result = import_settings({"ORGANISATION_NAME": ""})

    assert result.returncode != 0
    assert "set ORGANISATION_NAME in the environment" in result.stderr


def test_production_refuses_to_start_without_a_pack_signing_certificate() -> None:
    result = import_settings({"PACK_SIGNING_CERT_FILE": ""})

    assert result.returncode != 0
    assert "set PACK_SIGNING_CERT_FILE in the environment" in result.stderr


def test_production_starts_with_everything_it_requires() -> None:
    result = import_settings({})

    assert result.returncode == 0, result.stderr


MANAGE = [sys.executable, str(ROOT / "manage.py")]


@pytest.mark.parametrize("command", ["migrate", "check", "seed_demo", "audit_verify", "create_service_account"])
def test_a_command_without_the_required_settings_says_so_in_one_line(command: str, tmp_path: Path) -> None:
    """Seen: `python manage.py migrate` without DEBUG=1 ended in a 40-line traceback."""
    result = subprocess.run(
        [*MANAGE, command], cwd=tmp_path, env={"PATH": "/usr/bin:/bin"}, capture_output=True, text=True, check=False
    )

    assert result.returncode != 0
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith("manage.py: Release Gate is not configured: set SECRET_KEY, AUDIT_SIGNING_KEY or")
    assert "ORGANISATION_NAME, PACK_SIGNING_KEY_FILE, PACK_SIGNING_CERT_FILE" in result.stderr
    assert "DEBUG=1" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_command_with_a_bad_setting_names_it_in_one_line(tmp_path: Path) -> None:
    result = subprocess.run(
        [*MANAGE, "check"],
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "DEBUG": "maybe"},
        capture_output=True,
        text=True,
        check=False,
    )

    assert result.returncode != 0
    assert result.stderr == "manage.py: DEBUG must be a boolean (1/0, true/false, yes/no), got 'maybe'\n"
