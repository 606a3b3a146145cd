"""Settings come from the environment and a bad value stops the process with a clear message."""

import subprocess
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


def _import_settings(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return import_settings(env, base={"PATH": "/usr/bin:/bin"})


def test_production_refuses_to_start_without_a_secret_key() -> None:
    result = _import_settings({})

    assert result.returncode != 0
    assert "SECRET_KEY must be set when DEBUG is off" in result.stderr


def test_production_refuses_to_start_without_a_checkpoint_key() -> None:
    result = _import_settings({"SECRET_KEY": "x" * 50})

    assert result.returncode != 0
    assert "AUDIT_SIGNING_KEY or AUDIT_SIGNING_KEY_FILE must be set" in result.stderr


def test_debug_starts_with_development_defaults() -> None:
    assert _import_settings({"DEBUG": "1"}).returncode == 0


def test_production_refuses_to_start_without_an_organisation_name() -> None:
    result = import_settings({"ORGANISATION_NAME": ""})

    assert result.returncode != 0
    assert "ORGANISATION_NAME must be set" in result.stderr


def test_production_refuses_to_start_without_a_pack_signing_certificate() -> None:
    result = import_settings({"PACK_SIGNING_CERT_FILE": ""})

    assert result.returncode != 0
    assert "PACK_SIGNING_KEY_FILE and PACK_SIGNING_CERT_FILE must be set" in result.stderr


def test_production_starts_with_everything_it_requires() -> None:
    result = import_settings({})

    assert result.returncode == 0, result.stderr
