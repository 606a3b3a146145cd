"""The `releasegate` command-line client, run as a separate process against a real server.

Exit codes: 0 allowed/done, 1 the gate said no, 2 usage, 3 no trustworthy answer (docs/cli.md).
The live server shares the test's SQLite connection, so the test touches the database only
while the client is not talking to the server (the `--wait` test approves while it sleeps).
"""

import hashlib
import ipaddress
import json
import os
import shutil
import ssl
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from changelogs.models import Changelog, ChangelogStatus
from releasegate import cli
from releasegate.models import ApiToken, Deployment, GateDecision, SmokeTest
from releasegate.services import api_token_revoke
from tests.changelogs.evidence_files import junit_with_journeys, k6_passing, sample, sarif_clean
from tests.conftest import Cast
from tests.factories import DIGEST, FACTORY_ACTOR, OTHER_DIGEST, JourneyFactory, changelog_content, changelog_make
from tests.local_server import POLL_SECONDS
from tests.processes import free_port
from tests.releasegate.gate_support import approve, ready_changelog

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = Path(sys.executable).parent / "releasegate"


def clean_environment() -> dict[str, str]:
    """The test process's environment without proxies or Release Gate settings of its own."""
    return {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("RELEASEGATE_") and "proxy" not in key.lower()
    }


def run(
    args: list[str], env: dict[str, str], *, script: bool = False, cwd: Path = ROOT, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    command = [str(SCRIPT)] if script else [sys.executable, "-m", "releasegate.cli"]
    return subprocess.run(
        [*command, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False
    )


@pytest.fixture
def gate_env(live_server: Any, cast: Cast) -> dict[str, str]:
    return {**clean_environment(), "RELEASEGATE_URL": live_server.url, "RELEASEGATE_TOKEN": cast.pipeline.token}


def check_args(digest: str = DIGEST, *extra: str) -> list[str]:
    return ["check", "--service", "payments-api", "--digest", digest, *extra]


def report_args(status: str, *extra: str, digest: str = DIGEST) -> list[str]:
    return ["deploy", "report", "--service", "payments-api", "--digest", digest, "--status", status, *extra]


@contextmanager
def fake_gate(
    status: int,
    body: bytes,
    content_type: str,
    headers: dict[str, str] | None = None,
    tls: tuple[Path, Path] | None = None,
) -> Iterator[Any]:
    """A tiny server on 127.0.0.1 that gives every request the same answer and keeps what it got
    (over TLS with ``tls``: a certificate and key file)."""
    received: list[dict[str, str]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            received.append({name.lower(): value for name, value in self.headers.items()})
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    if tls:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(*tls)
        server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, args=(POLL_SECONDS,), daemon=True)
    thread.start()
    try:
        server.received = received  # type: ignore[attr-defined]
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def fake_env(server: Any, scheme: str = "http") -> dict[str, str]:
    host, port = server.server_address
    return {**clean_environment(), "RELEASEGATE_URL": f"{scheme}://{host}:{port}", "RELEASEGATE_TOKEN": "rgp_x_y"}


def self_signed_certificate(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 that no system trusts, and its key."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "release-gate test CA")])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "gate.pem", directory / "gate.key"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


ALLOW = {
    "decision": "allow",
    "decision_id": "5d1f1c38-9a55-4b8e-9fd4-0e1f0c9b1f63",
    "service": "payments-api",
    "environment": "production",
    "artifact_digest": DIGEST,
    "changelog": None,
    "revision": None,
    "reasons": [{"code": "allowed", "message": "Every check passed."}],
}


# --- check ----------------------------------------------------------------------------------


def test_an_allowed_artifact_exits_0_through_the_installed_script(gate_env: dict[str, str], cast: Cast) -> None:
    changelog = ready_changelog(cast)

    result = run(check_args(), gate_env, script=True)

    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"ALLOW payments-api {DIGEST} to production")
    assert str(changelog.id) in result.stdout
    decision = GateDecision.objects.get()
    assert decision.outcome == "allow"
    assert decision.requested_by == cast.pipeline.account


def test_a_denied_artifact_exits_1_and_prints_each_reason(gate_env: dict[str, str], cast: Cast) -> None:
    ready_changelog(cast, approved=False)

    result = run(check_args(), gate_env)

    assert result.returncode == 1, result.stderr
    assert result.stdout.startswith("DENY payments-api")
    assert "  - approvals_missing: Approvals missing:" in result.stdout


def test_a_digest_nobody_submitted_exits_1(gate_env: dict[str, str], cast: Cast) -> None:
    result = run(check_args(OTHER_DIGEST), gate_env)

    assert result.returncode == 1
    assert "no_changelog: No changelog of this service carries this artifact digest." in result.stdout


def test_json_output_is_one_document_with_the_decision_and_the_reasons(gate_env: dict[str, str], cast: Cast) -> None:
    ready_changelog(cast, approved=False)

    denied = run([*check_args(), "--json"], gate_env)
    approve(cast, Changelog.objects.get())
    allowed = run(["--json", *check_args()], gate_env)

    document = json.loads(denied.stdout)
    assert denied.returncode == 1
    assert document["decision"] == "deny"
    assert document["exit_code"] == 1
    assert [reason["code"] for reason in document["reasons"]] == ["approvals_missing"]
    assert document["result"]["artifact_digest"] == DIGEST
    assert document["error"] is None
    assert json.loads(allowed.stdout)["decision"] == "allow"
    assert allowed.returncode == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["check", "--service", "payments-api"], "the following arguments are required: --digest"),
        (["check", "--service", "payments-api", "--digest", "sha256:abc"], "64 lower-case hex digits"),
        (check_args(DIGEST, "--wait", "soon"), "not a duration"),
        (check_args(DIGEST, "--changelog", "42"), "must be a changelog id"),
        ([], "name a command"),
        (["changelog", "submit"], "needs -f FILE"),
        (["changelog", "create", "-f", "no-such-file.yaml"], "no-such-file.yaml: no such file"),
        (
            ["evidence", "add", "--changelog", "5d1f1c38-9a55-4b8e-9fd4-0e1f0c9b1f63", "--kind", "sanity", "nope.xml"],
            "nope.xml: no such file",
        ),
        (
            ["evidence", "add", "--changelog", "5d1f1c38-9a55-4b8e-9fd4-0e1f0c9b1f63", "--kind", "tests", "a.xml"],
            "invalid choice: 'tests'",
        ),
        (
            report_args("started", "--started-at", "2026-12-01T09:00:00"),
            "must carry its offset",
        ),
        (
            report_args("done"),
            "invalid choice: 'done'",
        ),
    ],
)
def test_bad_usage_exits_2_with_the_problem(args: list[str], message: str) -> None:
    env = {**clean_environment(), "RELEASEGATE_URL": "http://127.0.0.1:9", "RELEASEGATE_TOKEN": "rgp_x_y"}

    result = run(args, env)

    assert result.returncode == 2
    assert message in result.stderr
    assert result.stdout == ""


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"RELEASEGATE_TOKEN": "rgp_x_y"}, "set RELEASEGATE_URL"),
        ({"RELEASEGATE_URL": "https://gate.bank.example"}, "set RELEASEGATE_TOKEN"),
        ({"RELEASEGATE_URL": "http://gate.bank.example", "RELEASEGATE_TOKEN": "rgp_x_y"}, "travel in clear"),
        (
            {"RELEASEGATE_URL": "https://ci:pw@gate.bank.example", "RELEASEGATE_TOKEN": "rgp_x_y"},
            "must not carry credentials",
        ),
        ({"RELEASEGATE_URL": "gate.bank.example", "RELEASEGATE_TOKEN": "rgp_x_y"}, "must be an https:// URL"),
        (
            {
                "RELEASEGATE_URL": "https://gate.bank.example",
                "RELEASEGATE_TOKEN": "rgp_x_y",
                "RELEASEGATE_CA_BUNDLE": "/nonexistent.pem",
            },
            "no such file",
        ),
    ],
)
def test_missing_or_unsafe_configuration_exits_2(env: dict[str, str], message: str) -> None:
    result = run(check_args(), {**clean_environment(), **env})

    assert result.returncode == 2
    assert message in result.stderr


def test_usage_errors_leave_as_json_with_json(tmp_path: Path) -> None:
    result = run(["check", "--json", "--service", "payments-api", "--digest", "sha256:abc"], clean_environment())

    document = json.loads(result.stdout)
    assert result.returncode == 2
    assert document["outcome"] == "usage_error"
    assert "64 lower-case hex digits" in document["error"]["message"]


def test_a_check_for_an_ungated_environment_is_a_usage_error(gate_env: dict[str, str], cast: Cast) -> None:
    result = run(check_args(DIGEST, "--env", "staging"), gate_env)

    assert result.returncode == 2
    assert "invalid_input" in result.stderr
    assert "environment: environment_not_gated" in result.stderr


def test_a_token_of_another_service_exits_2(gate_env: dict[str, str], cast: Cast) -> None:
    ready_changelog(cast)

    result = run(check_args(), {**gate_env, "RELEASEGATE_TOKEN": cast.other_pipeline.token})

    assert result.returncode == 2
    assert "unknown_service" in result.stderr


def revoke(cast: Cast) -> str:
    api_token_revoke(acting_user=FACTORY_ACTOR, token=ApiToken.objects.get(service_account=cast.pipeline.account))
    return cast.pipeline.token


@pytest.mark.parametrize(
    ("token", "message"),
    [
        (lambda cast: "rgp_not_a_token", "The API token is malformed."),
        (lambda cast: "rgp_abcdefgh_" + "x" * 40, "The API token is not valid."),
        (revoke, "The API token has been revoked."),
    ],
    ids=["malformed", "unknown", "revoked"],
)
def test_a_bad_token_exits_2_never_0_and_is_never_printed(
    gate_env: dict[str, str], cast: Cast, token: Callable[[Cast], str], message: str
) -> None:
    ready_changelog(cast)
    bad = token(cast)

    result = run([*check_args(), "--json"], {**gate_env, "RELEASEGATE_TOKEN": bad})

    assert result.returncode == 2
    assert f"authentication_failed): {message} Check RELEASEGATE_TOKEN." in result.stderr
    assert json.loads(result.stdout)["error"]["status"] == 401
    assert bad not in result.stdout + result.stderr
    assert not GateDecision.objects.exists()


def test_a_stopped_server_exits_3() -> None:
    port = free_port()
    env = {**clean_environment(), "RELEASEGATE_URL": f"http://127.0.0.1:{port}", "RELEASEGATE_TOKEN": "rgp_x_y"}

    result = run([*check_args(), "--json"], env)

    assert result.returncode == 3
    assert "the gate is unreachable" in result.stderr
    assert "failing closed (exit 3). Do not deploy." in result.stderr
    document = json.loads(result.stdout)
    assert document["outcome"] == "unavailable"
    assert f"releasegate: request id {document['request_id']}" in result.stderr


def test_waiting_on_a_stopped_server_keeps_trying_until_the_deadline_then_exits_3() -> None:
    env = {
        **clean_environment(),
        "RELEASEGATE_URL": f"http://127.0.0.1:{free_port()}",
        "RELEASEGATE_TOKEN": "rgp_x_y",
    }

    result = run([*check_args(), "--wait", "2s", "--interval", "500ms", "--json"], env)

    assert result.returncode == 3
    assert "gave up after waiting 2s" in result.stderr
    assert result.stderr.count("no answer:") == 1  # the same problem is shown once


def test_a_server_answering_500_exits_3_and_sends_the_request_id_and_user_agent() -> None:
    body = json.dumps({"code": "server_error", "message": "The server failed; nothing was changed.", "fields": {}})
    with fake_gate(500, body.encode(), "application/json") as server:
        result = run([*check_args(), "--json"], fake_env(server))

    assert result.returncode == 3
    assert "the gate failed with HTTP 500 (server_error: The server failed; nothing was changed.)" in result.stderr
    request_id = json.loads(result.stdout)["request_id"]
    (headers,) = server.received
    assert headers["x-request-id"] == request_id
    assert headers["user-agent"] == f"releasegate-cli/{cli.version()}"
    assert headers["authorization"] == "Bearer rgp_x_y"
    assert f"request id {request_id}" in result.stderr


@pytest.mark.parametrize(
    ("status", "body", "content_type", "message"),
    [
        (500, b"<h1>Internal Server Error</h1>", "text/html", "HTTP 500"),
        (502, b"Bad Gateway", "text/plain", "HTTP 502"),
        (200, b"<html>Welcome to nginx</html>", "text/html", "is not Release Gate's JSON"),
        (200, b"{not json", "application/json", "is not Release Gate's JSON"),
        (200, b'["allow"]', "application/json", "is not Release Gate's JSON"),
        (200, b'{"decision": "ALLOW", "reasons": []}', "application/json", "no allow/deny decision"),
        (200, b'{"status": "ok"}', "application/json", "no allow/deny decision"),
        (
            200,
            json.dumps(
                {
                    "decision": "allow",
                    "reasons": [],
                    "service": "payments-api",
                    "environment": "production",
                    "artifact_digest": OTHER_DIGEST,
                }
            ).encode(),
            "application/json",
            "answered about another artifact_digest",
        ),
        (401, b"<html>Sign in</html>", "text/html", "is not Release Gate's JSON"),
        (429, b'{"code": "throttled", "message": "Slow down.", "fields": {}}', "application/json", "throttling"),
        (
            405,
            b'{"code": "method_not_allowed", "message": "No.", "fields": {}}',
            "application/json",
            "unexpected answer HTTP 405",
        ),
    ],
)
def test_anything_but_a_clear_decision_exits_3(status: int, body: bytes, content_type: str, message: str) -> None:
    with fake_gate(status, body, content_type) as server:
        result = run(check_args(), fake_env(server))

    assert result.returncode == 3
    assert message in result.stderr
    assert result.stdout == ""


def test_tls_is_verified_and_a_ca_bundle_is_trusted_when_named(tmp_path: Path) -> None:
    certificate, key = self_signed_certificate(tmp_path)
    with fake_gate(200, json.dumps(ALLOW).encode(), "application/json", tls=(certificate, key)) as server:
        untrusted = run(check_args(), fake_env(server, "https"))
        trusted = run(check_args(), {**fake_env(server, "https"), "RELEASEGATE_CA_BUNDLE": str(certificate)})

    assert untrusted.returncode == 3
    assert "TLS: the gate's certificate is not trusted" in untrusted.stderr
    assert "set RELEASEGATE_CA_BUNDLE" in untrusted.stderr
    assert len(server.received) == 1  # the untrusted handshake never got to send the token
    assert trusted.returncode == 0, trusted.stderr
    assert trusted.stdout.startswith("ALLOW payments-api")


def test_a_redirect_is_not_followed_and_exits_3() -> None:
    with fake_gate(302, b"", "text/html", {"Location": "https://elsewhere.example/api/v1/gate/check"}) as server:
        result = run(check_args(), fake_env(server))

    assert result.returncode == 3
    assert "redirect to 'https://elsewhere.example/api/v1/gate/check', which is not followed" in result.stderr
    assert len(server.received) == 1


def test_wait_exits_0_once_the_approval_arrives(gate_env: dict[str, str], cast: Cast) -> None:
    changelog = ready_changelog(cast, approved=False)
    command = [sys.executable, "-m", "releasegate.cli", *check_args(), "--wait", "60s", "--interval", "2s"]
    process = subprocess.Popen(
        command, env=gate_env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert process.stderr is not None
        assert "waiting up to 1m" in process.stderr.readline()
        assert "denied; waiting for:" in process.stderr.readline()
        assert "approvals_missing" in process.stderr.readline()
        # The client sleeps for two seconds now: approve while it is not talking to the server.
        approve(cast, changelog)
        stdout, stderr = process.communicate(timeout=30)
    finally:
        process.kill()
        process.wait()

    assert process.returncode == 0, stderr
    assert stdout.startswith("ALLOW payments-api")
    assert "denied; waiting for:" not in stderr  # the same reasons are not repeated
    assert GateDecision.objects.filter(outcome="deny").count() >= 1
    assert GateDecision.objects.filter(outcome="allow").count() == 1


def test_wait_that_runs_out_exits_1_with_the_last_reasons(gate_env: dict[str, str], cast: Cast) -> None:
    ready_changelog(cast, approved=False)

    result = run([*check_args(), "--wait", "2s", "--interval", "500ms"], gate_env)

    assert result.returncode == 1
    assert "approvals_missing" in result.stdout
    assert "still denied after waiting 2s" in result.stdout
    assert result.stderr.count("denied; waiting for:") == 1
    assert GateDecision.objects.filter(outcome="deny").count() >= 3


# --- changelog, evidence, deploy report -----------------------------------------------------


def changelog_file(tmp_path: Path, **overrides: Any) -> Path:
    content = {"service": "payments-api", "kind": "train", **changelog_content(**overrides)}
    content["artifact"]["digest"] = "sha256:" + "0" * 64  # set from the pipeline with --set
    path = tmp_path / "changelog.yaml"
    path.write_text(yaml.safe_dump(content, sort_keys=False))
    return path


def evidence_files(tmp_path: Path) -> list[tuple[str, str, Path]]:
    files = [
        ("sanity", "pytest", "junit.xml", junit_with_journeys({"PAY-001": "passed", "PAY-002": "passed"})),
        ("performance", "k6", "k6-summary.json", k6_passing()),
        ("security", "semgrep", "semgrep.sarif", sarif_clean()),
    ]
    paths = []
    for kind, tool, name, data in files:
        (tmp_path / name).write_bytes(data)
        paths.append((kind, tool, tmp_path / name))
    return paths


def test_the_ci_flow_create_evidence_submit_check_deploy_exits_0_and_the_changelog_is_deployed(
    gate_env: dict[str, str], cast: Cast, tmp_path: Path
) -> None:
    JourneyFactory(journey_id="PAY-001", domain=cast.payments, critical=True)
    JourneyFactory(journey_id="PAY-002", domain=cast.payments, critical=True)
    path = changelog_file(tmp_path)

    created = run(["changelog", "create", "-f", str(path), "--set", f"artifact.digest={DIGEST}", "--quiet"], gate_env)
    changelog_id = created.stdout.strip()
    uploads = [
        run(
            [
                "evidence",
                "add",
                "--changelog",
                changelog_id,
                "--kind",
                kind,
                "--environment",
                "staging",
                "--tool",
                tool,
                "--artifact-digest",
                DIGEST,
                str(file),
            ],
            gate_env,
        )
        for kind, tool, file in evidence_files(tmp_path)
    ]
    submitted = run(["changelog", "submit", "--changelog", changelog_id, "--json"], gate_env)
    approve(cast, Changelog.objects.get(pk=changelog_id))
    checked = run([*check_args(), "--changelog", changelog_id], gate_env)
    report = [
        "deploy",
        "report",
        "--service",
        "payments-api",
        "--digest",
        DIGEST,
        "--run-url",
        "https://ci.bank.example/run/7",
    ]
    # The deployment's start, sent with each of its reports (by the server's clock: the report
    # is covered only by a decision valid then).
    start = datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")
    started = run([*report, "--status", "started", "--started-at", start], gate_env)
    succeeded = run(
        [
            *report,
            "--status",
            "succeeded",
            "--started-at",
            start,
            "--finished-at",
            start,
        ],
        gate_env,
    )

    assert created.returncode == 0, created.stderr
    for upload, (_, _, file) in zip(uploads, evidence_files(tmp_path), strict=True):
        assert upload.returncode == 0, upload.stderr
        assert f"sha256 {hashlib.sha256(file.read_bytes()).hexdigest()}" in upload.stdout
        assert "verdict pass" in upload.stdout
    submission = json.loads(submitted.stdout)
    assert submitted.returncode == 0, submitted.stderr
    assert submission["outcome"] == "submitted"
    assert len(submission["result"]["revision"]["content_hash"]) == 64
    assert checked.returncode == 0, checked.stdout
    assert started.returncode == 0, started.stderr
    assert succeeded.returncode == 0, succeeded.stderr
    assert "covered by gate decision" in succeeded.stdout
    changelog = Changelog.objects.get(pk=changelog_id)
    assert changelog.status == ChangelogStatus.DEPLOYED
    assert changelog.current_revision.content_hash == submission["result"]["revision"]["content_hash"]  # type: ignore[union-attr]
    assert list(Deployment.objects.values_list("status", "unauthorised").order_by("reported_at")) == [
        ("started", False),
        ("succeeded", False),
    ]


def test_changelog_submit_from_a_file_creates_and_submits_and_quiet_prints_the_id(
    gate_env: dict[str, str], cast: Cast, tmp_path: Path
) -> None:
    result = run(["changelog", "submit", "-f", str(changelog_file(tmp_path)), "--quiet"], gate_env)

    assert result.returncode == 0, result.stderr
    changelog = Changelog.objects.get()
    assert result.stdout == f"{changelog.id}\n"
    assert changelog.current_revision.status == "submitted"  # type: ignore[union-attr]


def test_changelog_submit_with_an_id_and_a_file_edits_that_draft_then_submits_it(
    gate_env: dict[str, str], cast: Cast, tmp_path: Path
) -> None:
    draft = changelog_make(service=cast.payments_api, by=cast.pipeline.account)
    path = changelog_file(tmp_path, reason="Fix card fee rounding (FEES-12)")

    result = run(
        ["changelog", "submit", "-f", str(path), "--changelog", str(draft.id), "--set", f"artifact.digest={DIGEST}"],
        gate_env,
    )

    assert result.returncode == 0, result.stderr
    assert f"Changelog {draft.id} submitted for approval" in result.stdout
    assert "content sha256 " in result.stdout
    revision = Changelog.objects.get().current_revision
    assert revision is not None
    assert revision.content["reason"] == "Fix card fee rounding (FEES-12)"


def test_a_changelog_the_gate_refuses_exits_1_with_the_field_problems(
    gate_env: dict[str, str], cast: Cast, tmp_path: Path
) -> None:
    result = run(
        ["changelog", "create", "-f", str(changelog_file(tmp_path))], gate_env
    )  # the placeholder digest is valid
    bad = run(
        ["changelog", "create", "-f", str(changelog_file(tmp_path)), "--set", "artifact.digest=md5:abc"], gate_env
    )

    assert result.returncode == 0, result.stderr
    assert bad.returncode == 1
    assert "invalid_input" in bad.stderr
    assert "artifact.digest: invalid_digest" in bad.stderr
    assert Changelog.objects.count() == 1


def test_yaml_numbers_and_dates_stay_text_and_a_repeated_key_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "changelog.yml"
    path.write_text(
        "artifact:\n  version: 1.10\n  build: 007\nplanned_window:\n  start: 2026-12-01T09:00:00Z\nno_data_changes: true\n"
    )
    twice = tmp_path / "twice.yaml"
    twice.write_text("reason: one\nreason: two\n")

    data = cli.read_changelog_file(str(path))

    assert data == {
        "artifact": {"version": "1.10", "build": "007"},
        "planned_window": {"start": "2026-12-01T09:00:00Z"},
        "no_data_changes": True,
    }
    with pytest.raises(cli.UsageError, match="appears twice"):
        cli.read_changelog_file(str(twice))


def test_evidence_the_parser_refuses_exits_1_with_the_parsers_code(
    gate_env: dict[str, str], cast: Cast, tmp_path: Path
) -> None:
    changelog = changelog_make(service=cast.payments_api, by=cast.pipeline.account)
    broken = tmp_path / "junit.xml"
    broken.write_bytes(b'<?xml version="1.0"?><testsuite name="x"><testcase name="a">')
    scan = tmp_path / "bandit.sarif"
    scan.write_bytes(sample("security/bandit.sarif"))

    staging = ["--kind", "sanity", "--environment", "staging"]
    malformed = run(["evidence", "add", "--changelog", str(changelog.id), *staging, str(broken)], gate_env)
    mismatched = run(["evidence", "add", "--changelog", str(changelog.id), *staging, str(scan)], gate_env)

    assert malformed.returncode == 1
    assert "file: malformed_xml:" in malformed.stderr
    assert mismatched.returncode == 1
    assert "evidence_kind_mismatch" in mismatched.stderr
    assert not changelog.current_revision.evidence.exists()  # type: ignore[union-attr]


def test_evidence_for_a_submitted_changelog_exits_1_and_for_an_unknown_one_2(
    gate_env: dict[str, str], cast: Cast, tmp_path: Path
) -> None:
    changelog = changelog_make(service=cast.payments_api, by=cast.pipeline.account, submitted=True)
    (_, _, file), *_ = evidence_files(tmp_path)

    submitted = run(["evidence", "add", "--changelog", str(changelog.id), "--kind", "sanity", str(file)], gate_env)
    unknown = run(
        ["evidence", "add", "--changelog", "5d1f1c38-9a55-4b8e-9fd4-0e1f0c9b1f63", "--kind", "sanity", str(file)],
        gate_env,
    )

    assert submitted.returncode == 1
    assert "changelog_not_draft" in submitted.stderr
    assert unknown.returncode == 2
    assert "changelog_not_found" in unknown.stderr


def test_an_unauthorised_deployment_exits_1(gate_env: dict[str, str], cast: Cast) -> None:
    result = run(
        report_args("succeeded", "--json", digest=OTHER_DIGEST),
        gate_env,
    )

    document = json.loads(result.stdout)
    assert result.returncode == 1
    assert document["outcome"] == "unauthorised"
    assert document["unauthorised"] is True
    assert Deployment.objects.get().unauthorised
    assert document["result"]["not_covered_because"] == "no_allow_decision"


def test_a_retried_deploy_report_is_recognised_by_its_derived_key(gate_env: dict[str, str], cast: Cast) -> None:
    ready_changelog(cast)
    assert run(check_args(), gate_env).returncode == 0
    start = datetime.now(UTC).replace(microsecond=0)
    report = report_args("started", "--started-at", start.astimezone(timezone(timedelta(hours=1))).isoformat())

    first = run(report, gate_env)
    # The same time, written differently.
    again = run([*report[:-1], start.isoformat().replace("+00:00", "Z")], gate_env)

    assert first.returncode == 0, first.stderr
    assert again.returncode == 0, again.stderr
    assert "was already recorded" in again.stdout
    deployment = Deployment.objects.get()
    assert deployment.idempotency_key.startswith("rgcli-")


# --- the client itself ----------------------------------------------------------------------


def test_importing_the_client_imports_no_django_and_no_yaml() -> None:
    code = "import sys, releasegate.cli; print(sorted(m for m in sys.modules if m.split('.')[0] in {'django', 'rest_framework', 'celery', 'guardian', 'yaml'}))"

    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)

    assert result.stdout.strip() == "[]"


def test_the_client_runs_with_nothing_but_the_standard_library(
    gate_env: dict[str, str], cast: Cast, tmp_path: Path
) -> None:
    ready_changelog(cast)
    package = tmp_path / "releasegate"
    package.mkdir()
    for name in ("__init__.py", "cli.py"):
        shutil.copy(ROOT / "releasegate" / name, package / name)

    # -S: no site-packages at all (no Django, no PyYAML); -E: no PYTHONPATH.
    result = subprocess.run(
        [sys.executable, "-S", "-E", "-m", "releasegate.cli", *check_args()],
        env=gate_env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("ALLOW")


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30", 30), ("30s", 30), ("15m", 900), ("1h", 3600), ("1h30m", 5400), ("500ms", 0.5), ("1.5s", 1.5)],
)
def test_durations_read_like_ci_timeouts(text: str, seconds: float) -> None:
    assert cli.parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "soon", "5d", "m5", "1h 30m", "-1s"])
def test_a_duration_it_cannot_read_is_refused(text: str) -> None:
    with pytest.raises(ValueError):
        cli.parse_duration(text)


def test_the_multipart_body_carries_the_fields_and_the_exact_bytes() -> None:
    data = b"\x00\x01binary\r\n--not-the-boundary\r\n"

    body, content_type = cli.multipart_encode({"kind": "document"}, file_name='odd"name.pdf', data=data)

    boundary = content_type.split("boundary=")[1]
    assert body.startswith(f'--{boundary}\r\nContent-Disposition: form-data; name="kind"\r\n\r\ndocument\r\n'.encode())
    assert b'filename="odd%22name.pdf"' in body
    assert body.endswith(b"\r\n\r\n" + data + f"\r\n--{boundary}--\r\n".encode())


def test_the_derived_deployment_key_changes_with_every_field() -> None:
    report = {
        "service": "s",
        "environment": "production",
        "artifact_digest": DIGEST,
        "status": "started",
        "pipeline_run_url": "",
        "started_at": "t",
        "finished_at": None,
    }

    keys = {cli.deployment_key({**report, name: "other"}) for name in report}

    assert len(keys | {cli.deployment_key(report)}) == len(report) + 1


@pytest.mark.requirement("PR-02")
def test_evidence_names_the_artifact_digest_it_ran_against(
    gate_env: dict[str, str], cast: Cast, tmp_path: Path
) -> None:
    changelog = changelog_make(service=cast.payments_api, by=cast.pipeline.account)
    (_, _, file), *_ = evidence_files(tmp_path)
    staging = ["--kind", "sanity", "--environment", "staging", "--artifact-digest", OTHER_DIGEST]

    result = run(["evidence", "add", "--changelog", str(changelog.id), *staging, str(file)], gate_env)

    assert result.returncode == 0, result.stderr
    assert changelog.current_revision.evidence.get().artifact_digest == OTHER_DIGEST  # type: ignore[union-attr]


# --- the production smoke test (PR-19) ----------------------------------------------------------


def _deployed_through_the_cli(gate_env: dict[str, str], cast: Cast) -> tuple[Changelog, str]:
    """A ready change, checked and reported deployed by the pipeline; the deployment's id."""
    changelog = ready_changelog(cast)
    assert run(check_args(), gate_env).returncode == 0
    report = report_args("succeeded", "-q")
    reported = run(report, gate_env)
    assert reported.returncode == 0, reported.stderr
    return changelog, reported.stdout.strip()


def _smoke_report(tmp_path: Path, journeys: dict[str, str]) -> Path:
    """A production smoke test's JUnit report, its tests tagged with the journeys they ran."""
    report = tmp_path / "smoke-junit.xml"
    report.write_bytes(junit_with_journeys(journeys))
    return report


@pytest.mark.requirement("PR-19")
def test_a_passing_smoke_test_is_reported_against_the_deployment_and_exits_0(
    gate_env: dict[str, str], cast: Cast, tmp_path: Path
) -> None:
    changelog, deployment_id = _deployed_through_the_cli(gate_env, cast)
    report = _smoke_report(tmp_path, {"PAY-001": "passed", "PAY-002": "passed"})

    result = run(["deploy", "smoke", "--deployment", deployment_id, str(report)], gate_env)

    assert result.returncode == 0, result.stderr
    assert "passed: PAY-001 passed, PAY-002 passed" in result.stdout
    deployment = Deployment.objects.get(pk=deployment_id)
    assert deployment.smoke_status == "passed"
    smoke = SmokeTest.objects.get(deployment=deployment)
    assert smoke.sha256 == hashlib.sha256(report.read_bytes()).hexdigest()
    changelog.refresh_from_db()
    assert changelog.status == ChangelogStatus.DEPLOYED


@pytest.mark.requirement("PR-19")
def test_a_failed_smoke_test_exits_1_and_the_change_is_rolled_back(
    gate_env: dict[str, str], cast: Cast, tmp_path: Path
) -> None:
    changelog, deployment_id = _deployed_through_the_cli(gate_env, cast)
    report = _smoke_report(tmp_path, {"PAY-001": "passed", "PAY-002": "failed"})

    result = run(["deploy", "smoke", "--deployment", deployment_id, str(report), "--json"], gate_env)

    document = json.loads(result.stdout)
    assert result.returncode == 1
    assert document["outcome"] == "failed"
    assert document["failed_journeys"] == ["PAY-002"]
    assert Deployment.objects.get(pk=deployment_id).smoke_status == "failed"
    changelog.refresh_from_db()
    assert changelog.status == ChangelogStatus.ROLLED_BACK


def test_a_smoke_test_of_an_unknown_deployment_exits_2_and_records_nothing(
    gate_env: dict[str, str], cast: Cast, tmp_path: Path
) -> None:
    report = _smoke_report(tmp_path, {"PAY-001": "passed"})

    result = run(["deploy", "smoke", "--deployment", "0190f4a0-0000-7000-8000-000000000000", str(report)], gate_env)

    assert result.returncode == 2
    assert "deployment_not_found" in result.stderr
    assert not Deployment.objects.exists()
