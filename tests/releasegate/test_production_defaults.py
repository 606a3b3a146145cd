"""Production defaults (issue 13): with DEBUG=0 the service sends HSTS, redirects to HTTPS
behind its proxy and carries a Content-Security-Policy; Django's deployment check is clean
under the README's own production environment; uploaded documents never render as pages.

Seen with DEBUG=0: no HSTS, no SSL redirect, no Content-Security-Policy (`check --deploy`
warned); uploaded HTML/SVG documents were served with their guessed media type."""

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from tests.changelogs.test_apis_evidence import evidence_url
from tests.conftest import Cast
from tests.factories import changelog_make
from tests.settings_import import import_settings

ROOT = Path(__file__).resolve().parents[2]


def readme_production_environment() -> str:
    """The README's shell block under "Running in production"."""
    section = (ROOT / "README.md").read_text().split("## Running in production", 1)[1]
    match = re.search(r"```sh\n(.*?)```", section, re.DOTALL)
    assert match, "the README shows the production environment in a sh block"
    return match.group(1)


def test_check_deploy_prints_no_warnings_with_the_readmes_production_environment(tmp_path: Path) -> None:
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "django-secret-key").write_text(os.urandom(40).hex() + "\n")
    for name in ("db-password", "metrics-token", "audit-signing.key", "pack-signing.key", "pack-signing.crt"):
        (secrets / name).write_text("not-a-real-secret\n")
    script = readme_production_environment().replace("/run/secrets/", f"{secrets}/")
    assert "python manage.py check --deploy" in script

    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=ROOT,
        env={"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "RELEASEGATE_VAR_DIR": str(tmp_path / "var")},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == "System check identified no issues (0 silenced).", result.stdout + result.stderr
    assert "WARNINGS" not in result.stderr


SHOW = "import releasegate.settings as s; print(s.SECURE_HSTS_SECONDS, s.SECURE_SSL_REDIRECT, bool(s.CONTENT_SECURITY_POLICY))"


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"SECURE_PROXY_SSL": "1"}, "31536000 True True"),
        ({}, "31536000 False True"),  # without the proxy setting every request would look like plain HTTP
        ({"DEBUG": "1", "SECURE_PROXY_SSL": "1"}, "0 False True"),
    ],
    ids=["behind the proxy", "no proxy setting", "DEBUG"],
)
def test_hsts_and_the_redirect_to_https_are_on_by_default_in_production(env: dict[str, str], expected: str) -> None:
    result = import_settings(env, code=SHOW)

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == expected


def test_every_page_carries_a_content_security_policy_and_https_answers_carry_hsts(db: None, settings: Any) -> None:
    settings.SECURE_HSTS_SECONDS = 31_536_000
    client = Client()

    docs = client.get("/api/docs/", secure=True)
    login = client.get("/admin/login/", secure=True)

    for response in (docs, login):
        policy = response["Content-Security-Policy"]
        assert "script-src 'self'" in policy
        assert "frame-ancestors 'none'" in policy
        assert "object-src 'none'" in policy
        assert response["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains; preload"
    assert "<script>" not in docs.content.decode()  # the docs' script is a file: no inline script runs
    assert client.get("/api/docs/?script=", secure=True)["Content-Type"] == "application/javascript"


def test_plain_http_is_redirected_to_https_except_health_and_metrics(db: None, settings: Any) -> None:
    settings.SECURE_SSL_REDIRECT = True
    settings.METRICS_PUBLIC = True
    client = Client()

    assert client.get("/admin/login/").status_code == 301
    assert client.get("/admin/login/")["Location"].startswith("https://")
    assert client.get("/healthz").status_code == 200
    assert client.get("/metrics").status_code == 200


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("report.html", b"<html><script>fetch('/api/v1/changelogs/').then(r => r.text())</script></html>"),
        ("diagram.svg", b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(document.cookie)</script></svg>'),
    ],
)
def test_an_uploaded_document_is_served_as_bytes_in_a_sandbox(cast: Cast, name: str, data: bytes) -> None:
    changelog = changelog_make(service=cast.payments_api, by=cast.pipeline.account)
    client = cast.pipeline.client()
    uploaded = client.post(
        evidence_url(changelog), {"kind": "document", "file": SimpleUploadedFile(name, data)}, format="multipart"
    ).json()

    for reader in (client, cast.session(cast.auditor)):
        response = reader.get(f"{evidence_url(changelog)}{uploaded['id']}/download")
        assert response.status_code == 200
        assert response["Content-Type"] == "application/octet-stream"
        assert response["Content-Security-Policy"] == "sandbox"
        assert response["Content-Disposition"] == f'attachment; filename="{name}"'
        assert response["X-Content-Type-Options"] == "nosniff"
        assert response.content == data
