"""The README's walkthrough and docs/cli.md's pipeline example, run as written (issue 13).

Seen: the README's example submitted a changelog with no evidence (it could never be allowed,
and nothing pointed further); the first command of docs/cli.md's pipeline failed with the
shipped docs/ci/changelog.json (400: artifact.version and artifact.source_revision required),
and with `--quiet` the id was empty and every later line failed too.

The shell blocks run in one bash process, line by line as a person would type them, against a
live Release Gate loaded with `make run`'s demo data. What the harness changes and nothing else:
the server's address and the demo token (printed by `make run`) are the live ones. What a person
does in the admin (approving as `approver`, asking for the pack as `auditor`) the harness does by
posting the admin's own forms, as the browser would.
"""

import html
import os
import re
import shutil
import subprocess
import sys
import uuid
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.test import Client

from changelogs import parsers
from changelogs.models import Changelog
from packs.models import PackJob
from releasegate.management.commands.seed_demo import DEMO_USERS
from releasegate.models import Deployment, GateDecision, User
from tests.factories import DIGEST, SECOND_FACTOR_URL, totp_code

ROOT = Path(__file__).resolve().parents[2]
PASSWORDS = {username: password for username, password, _ in DEMO_USERS}


class Shell:
    """One bash process fed line by line, keeping its variables between commands."""

    def __init__(self, cwd: Path, env: dict[str, str]) -> None:
        self.process = subprocess.Popen(
            ["bash", "--noprofile", "--norc"],
            cwd=cwd,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )

    def run(self, command: str) -> tuple[int, str]:
        marker = f"__done_{uuid.uuid4().hex}__"
        assert self.process.stdin is not None
        assert self.process.stdout is not None
        # The exit code on a line of its own, after a newline (the command's output may not end in one).
        self.process.stdin.write(f"{command}\n__rc=$?; printf '\\n{marker} %s\\n' \"$__rc\"\n")
        self.process.stdin.flush()
        lines = []
        for line in self.process.stdout:
            if line.startswith(marker):
                return int(line.split()[1]), "".join(lines)[:-1]  # less the newline added before the marker
            lines.append(line)
        raise AssertionError(f"the shell ended during {command!r}:\n{''.join(lines)}")

    def close(self) -> None:
        if self.process.stdin:
            self.process.stdin.close()
        self.process.wait(timeout=30)
        if self.process.stdout:
            self.process.stdout.close()


def commands(block: str) -> list[str]:
    """A shell block as the commands a person types: continuation lines joined, comments and
    blank lines dropped."""
    joined = re.sub(r"\\\n\s*", " ", block)
    return [line for line in joined.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def sh_blocks(text: str) -> list[str]:
    return re.findall(r"```sh\n(.*?)```", text, re.DOTALL)


def live(line: str, server: str, token: str) -> str:
    """The two things the harness changes: the server's address and the demo token."""
    line = line.replace("https://release-gate.bank.example", server).replace("http://127.0.0.1:8000", server)
    return line.replace("RELEASEGATE_TOKEN=rgp_…", f"RELEASEGATE_TOKEN={token}")


@pytest.fixture
def demo(transactional_db: None, settings: Any) -> str:
    """`make run`'s demo data; returns the demo pipeline token it printed."""
    settings.DEBUG = True
    out = StringIO()
    call_command("seed_demo", stdout=out)
    settings.DEBUG = False
    return out.getvalue().strip().splitlines()[-1].strip()


def shell_env(tmp_path: Path) -> dict[str, str]:
    kept = {key: value for key, value in os.environ.items() if key in {"HOME", "LANG", "LC_ALL", "TZ", "TMPDIR"}}
    return {**kept, "PATH": f"{Path(sys.executable).parent}:/usr/local/bin:/usr/bin:/bin", "NO_PROXY": "*"}


def admin_form_post(client: Client, url: str, fields: dict[str, str]) -> Any:
    """Post a page's form as the browser would: its hidden inputs as they are, plus what the
    person fills in."""
    page = client.get(url)
    assert page.status_code == 200, url
    hidden = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', page.content.decode()))
    return client.post(url, {**{k: html.unescape(v) for k, v in hidden.items()}, **fields})


def logged_in(username: str) -> Client:
    """Logged in through the admin's login page, as the README says (a password check goes
    through django-axes, which wants the request)."""
    client = Client()
    response = client.post("/admin/login/?next=/admin/", {"username": username, "password": PASSWORDS[username]})
    assert response.status_code == 302, response.content.decode()[:500]
    # The second factor deciding needs: the code of the person's authenticator app.
    code = totp_code(User.objects.get(username=username))
    response = client.post(SECOND_FACTOR_URL, {"token": code})
    assert response.status_code == 302, response.content.decode()[:500]
    return client


def test_the_example_evidence_parses_and_passes() -> None:
    for name, fmt in [("junit.xml", "junit"), ("k6-summary.json", "k6_summary"), ("semgrep.sarif", "sarif")]:
        data = (ROOT / "docs" / "examples" / name).read_bytes()
        assert parsers.detect_format(data, name) == fmt
        assert parsers.parse(fmt, data).verdict == "pass"


def test_the_readme_walkthrough_reaches_allow_and_a_signed_evidence_pack(
    live_server: Any, demo: str, tmp_path: Path, eager_celery: None
) -> None:
    """`make run` runs Celery in-process (the embedded default), so the pack is built when asked
    for, in CI's broker pass too."""
    pdfsig = shutil.which("pdfsig")
    if pdfsig is None:
        pytest.skip("needs poppler-utils' pdfsig (apt-get install poppler-utils; .ci/run installs it)")
    section = (ROOT / "README.md").read_text().split("## From the printed token to an allow", 1)[1].split("\n## ", 1)[0]
    first, second = sh_blocks(section)
    shell = Shell(ROOT, shell_env(tmp_path))
    outputs: list[str] = []
    try:
        for line in commands(first):
            code, output = shell.run(live(line, live_server.url, demo))
            outputs.append(output)
            expected = 1 if line.startswith("releasegate check") else 0  # denied: nobody approved yet
            assert code == expected, f"{line}\n{output}"
        assert "DENY" in outputs[-1]
        assert "approvals_missing" in outputs[-1]
        _, changelog_id = shell.run('printf "%s" "$ID"')
        changelog = Changelog.objects.get(pk=changelog_id)

        # "Approve it": as approver, in the admin's queue, the change's page, Approve, Confirm.
        approver = logged_in("approver")
        queue = approver.get("/admin/approvals/approval/queue/").content.decode()
        assert f"/admin/approvals/approval/queue/{changelog.pk}/" in queue
        assert approver.get(f"/admin/approvals/approval/queue/{changelog.pk}/").status_code == 200
        decided = admin_form_post(
            approver,
            f"/admin/approvals/approval/queue/{changelog.pk}/approved/",
            {"reason": "Evidence complete; rollback plan checked.", "password": PASSWORDS["approver"]},
        )
        assert decided.status_code == 302, decided.content.decode()[:2000]

        for line in commands(second):
            code, output = shell.run(live(line, live_server.url, demo))
            outputs.append(output)
            assert code == 0, f"{line}\n{output}"
    finally:
        shell.close()
    assert any(output.startswith("ALLOW") for output in outputs), outputs
    assert outputs[-1].strip() == str(changelog.pk)
    assert GateDecision.objects.filter(changelog=changelog, outcome="allow").exists()
    deployment = Deployment.objects.get(changelog=changelog)
    assert (deployment.status, deployment.unauthorised) == ("succeeded", False)

    # "Download the evidence pack": as auditor, Evidence packs, Request a pack, then pack.pdf.
    auditor = logged_in("auditor")
    requested = auditor.post(
        "/admin/packs/packjob/request/", {"kind": "changelog", "changelog": str(changelog.pk), "sample_size": "25"}
    )
    assert requested.status_code == 302, requested.content.decode()[:2000]
    listing = auditor.get("/admin/packs/packjob/").content.decode()
    job = PackJob.objects.get(params__changelog=str(changelog.pk))
    link = f"/api/v1/packs/{job.pk}/files/pack.pdf"
    assert link in listing
    pdf = tmp_path / "pack.pdf"
    pdf.write_bytes(auditor.get(link).content)
    signature = subprocess.run([pdfsig, str(pdf)], capture_output=True, text=True, timeout=60, check=False)
    assert "Signature is Valid." in signature.stdout, signature.stdout + signature.stderr


def test_the_cli_pipeline_example_runs_with_the_shipped_changelog(live_server: Any, demo: str, tmp_path: Path) -> None:
    workspace = tmp_path / "workspace"
    (workspace / "release").mkdir(parents=True)
    shutil.copy(ROOT / "docs" / "ci" / "changelog.json", workspace / "release" / "changelog.json")
    for name in ("junit.xml", "k6-summary.json", "semgrep.sarif"):
        shutil.copy(ROOT / "docs" / "examples" / name, workspace / name)
    [block] = [b for b in sh_blocks((ROOT / "docs" / "cli.md").read_text()) if "releasegate changelog create" in b]
    env = {
        **shell_env(tmp_path),
        # What the build gives the pipeline (docs/cli.md says so above the commands).
        "DIGEST": DIGEST,
        "VERSION": "1.4.2",
        "REVISION": "0123456789abcdef0123456789abcdef01234567",
    }
    shell = Shell(workspace, env)
    try:
        for line in commands(block):
            if line.startswith("set -e"):
                continue  # the harness checks each exit code itself, and its shell must live on
            code, output = shell.run(live(line, live_server.url, demo))
            assert code == 0, f"{line}\n{output}"
            if line.startswith("releasegate changelog submit"):
                changelog = Changelog.objects.get(revisions__artifact_digest=DIGEST)
                decided = admin_form_post(
                    logged_in("approver"),
                    f"/admin/approvals/approval/queue/{changelog.pk}/approved/",
                    {"reason": "Checked.", "password": PASSWORDS["approver"]},
                )
                assert decided.status_code == 302
    finally:
        shell.close()
    changelog = Changelog.objects.get(revisions__artifact_digest=DIGEST)
    assert changelog.status == "deployed"
    assert list(
        Deployment.objects.filter(changelog=changelog).order_by("reported_at").values_list("status", flat=True)
    ) == [
        "started",
        "succeeded",
    ]


def test_an_empty_changelog_id_says_what_went_wrong(tmp_path: Path) -> None:
    """With `--quiet`, a failed create prints nothing; the next command must say why its id is empty."""
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "releasegate.cli",
            "evidence",
            "add",
            "--changelog",
            "",
            "--kind",
            "sanity",
            "junit.xml",
        ],
        env={"PATH": "/usr/bin:/bin", "RELEASEGATE_URL": "http://127.0.0.1:9", "RELEASEGATE_TOKEN": "rgp_x"},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 2
    assert "--changelog: is empty: the command meant to give the changelog id failed" in result.stderr
