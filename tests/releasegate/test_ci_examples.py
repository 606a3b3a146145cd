"""The CI examples in docs/ci/, tried as written against a live Release Gate.

No GitHub, GitLab or Jenkins runner can run here, so each example's shell is run the way its
runner would run it (GitHub: `bash -eo pipefail` per `run:` step, with GITHUB_ENV and
GITHUB_OUTPUT; GitLab: `bash -eo pipefail` per job over before_script + script, then
after_script, with dotenv reports; Jenkins: `sh -xe` per `sh` block), in order, with the
approver approving between the jobs as a person would. What the harness changes or leaves out,
and nothing else:

- RELEASEGATE_URL points at the live server instead of https://release-gate.bank.example;
- pip installs from a local folder holding this project's wheel instead of the bank's index;
- pytest, k6, semgrep and kubectl are stand-ins that leave the files the real tools would
  (real evidence samples) or do nothing (kubectl);
- `uses:` actions, the build (the image digest is given), rules, environments, credentials
  bindings and retry are not run.

Each example is tried twice: a rollout that succeeds, and one whose `kubectl rollout status`
fails, which must take the example's failure path (`if: failure()`, `after_script` with
`CI_JOB_STATUS=failed`, `post { failure }`) and report the deployment as failed.
"""

import base64
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from changelogs.models import Changelog, ChangelogStatus
from releasegate.models import Deployment, GateDecision
from tests.changelogs.evidence_files import junit_with_journeys, k6_passing, sarif_clean
from tests.conftest import Cast
from tests.factories import DIGEST, JourneyFactory
from tests.releasegate.gate_support import approve

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "docs" / "ci"
SOURCE_REVISION = "0123456789abcdef0123456789abcdef01234567"
TAG = "v1.4.2"

STUBS = {
    "pytest": 'for a in "$@"; do case "$a" in --junitxml=*) f="${a#--junitxml=}"; mkdir -p "$(dirname "$f")"; cp "$STUB_DATA/junit.xml" "$f";; esac; done',
    "k6": 'for a in "$@"; do case "$a" in --summary-export=*) f="${a#--summary-export=}"; mkdir -p "$(dirname "$f")"; cp "$STUB_DATA/k6-summary.json" "$f";; esac; done',
    "semgrep": 'for a in "$@"; do case "$a" in --output=*) f="${a#--output=}"; mkdir -p "$(dirname "$f")"; cp "$STUB_DATA/semgrep.sarif" "$f";; esac; done',
    "kubectl": 'echo "kubectl (stand-in): $*"; if [ "$1" = rollout ] && [ -n "$ROLLOUT_FAILS" ]; then exit 1; fi',
}


def build_wheel(root: Path, out: Path) -> Path:
    """This project's wheel, from pyproject.toml's metadata and the package folders. Assembled
    here because setuptools' bdist_wheel needs the `wheel` package, which an offline test
    cannot fetch; the result is what pip sees from the bank's index."""
    pyproject = tomllib.loads((root / "pyproject.toml").read_text())
    project = pyproject["project"]
    name, version = project["name"], project["version"]
    dist_info = f"{name}-{version}.dist-info"
    files: dict[str, bytes] = {}
    for pattern in pyproject["tool"]["setuptools"]["packages"]["find"]["include"]:
        for path in sorted((root / pattern.rstrip("*")).rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                files[path.relative_to(root).as_posix()] = path.read_bytes()
    files[f"{dist_info}/METADATA"] = "".join(
        [
            f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
            f"Requires-Python: {project['requires-python']}\n",
            *(f"Requires-Dist: {requirement}\n" for requirement in project["dependencies"]),
        ]
    ).encode()
    files[f"{dist_info}/WHEEL"] = b"Wheel-Version: 1.0\nGenerator: tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    files[f"{dist_info}/entry_points.txt"] = "".join(
        ["[console_scripts]\n", *(f"{script} = {target}\n" for script, target in project["scripts"].items())]
    ).encode()
    record = [
        f"{path},sha256={base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b'=').decode()},{len(data)}"
        for path, data in files.items()
    ]
    files[f"{dist_info}/RECORD"] = ("\n".join([*record, f"{dist_info}/RECORD,,"]) + "\n").encode()
    wheel = out / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_DEFLATED) as archive:
        for path, data in files.items():
            archive.writestr(path, data)
    return wheel


@dataclass(frozen=True)
class Runner:
    """A clean Python like a CI image's (no Release Gate, no Django) and an index of one wheel."""

    bin: Path
    wheels: Path
    stubs: Path


@pytest.fixture(scope="session")
def runner_python(tmp_path_factory: pytest.TempPathFactory) -> Runner:
    base = tmp_path_factory.mktemp("runner")
    wheels = base / "wheels"
    wheels.mkdir()
    build_wheel(ROOT, wheels)
    subprocess.run([sys.executable, "-m", "venv", str(base / "python")], check=True, capture_output=True)
    stubs = base / "stubs"
    stubs.mkdir()
    for tool, body in STUBS.items():
        (stubs / tool).write_text(f"#!/bin/sh\n{body}\n")
        (stubs / tool).chmod(0o755)
    return Runner(bin=base / "python" / "bin", wheels=wheels, stubs=stubs)


@pytest.fixture
def runner(runner_python: Runner) -> Runner:
    """The runner's Python without Release Gate, so that each example's install step installs it."""
    subprocess.run(
        [str(runner_python.bin / "python"), "-m", "pip", "uninstall", "--yes", "--quiet", "releasegate"],
        check=True,
        capture_output=True,
        env={**os.environ, "PIP_CONFIG_FILE": os.devnull},
    )
    return runner_python


@pytest.fixture
def workspace(tmp_path: Path, cast: Cast) -> Path:
    """The service's repository as a runner checks it out, plus the stand-ins' evidence."""
    JourneyFactory(journey_id="PAY-001", domain=cast.payments, critical=True)
    JourneyFactory(journey_id="PAY-002", domain=cast.payments, critical=True)
    ws = tmp_path / "workspace"
    (ws / "release").mkdir(parents=True)
    shutil.copy(EXAMPLES / "changelog.json", ws / "release" / "changelog.json")
    data = tmp_path / "stub-data"
    data.mkdir()
    (data / "junit.xml").write_bytes(junit_with_journeys({"PAY-001": "passed", "PAY-002": "passed"}))
    (data / "k6-summary.json").write_bytes(k6_passing())
    (data / "semgrep.sarif").write_bytes(sarif_clean())
    return ws


def base_environment(runner: Runner, ws: Path) -> dict[str, str]:
    kept = {
        key: value for key, value in os.environ.items() if key in {"HOME", "LANG", "LC_ALL", "TZ", "TMPDIR", "USER"}
    }
    return {
        **kept,
        "PATH": f"{runner.stubs}:{runner.bin}:/usr/local/bin:/usr/bin:/bin",
        "CI": "true",
        "STUB_DATA": str(ws.parent / "stub-data"),
        # The bank's index, here: this project's wheel in a folder, nothing else.
        "PIP_CONFIG_FILE": os.devnull,
        "PIP_NO_INDEX": "1",
        "PIP_FIND_LINKS": str(runner.wheels),
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
    }


@dataclass
class Log:
    """What ran, what it printed, and whether the one step allowed to fail (the rollout, when
    the test makes it fail) did."""

    rollout_fails: bool
    outputs: list[str] = field(default_factory=list)
    failed: bool = False

    def shell(self, command: list[str], script: str, env: dict[str, str], ws: Path) -> bool:
        path = ws.parent / "step.sh"
        path.write_text(script)
        result = subprocess.run(
            [*command, str(path)],
            env={**env, "ROLLOUT_FAILS": "1" if self.rollout_fails else ""},
            cwd=ws,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        output = result.stdout + result.stderr
        self.outputs.append(output)
        if result.returncode == 0:
            return True
        problem = f"failed ({result.returncode}):\n{script}\n{output}"
        assert self.rollout_fails, problem
        assert "kubectl rollout status" in script, problem
        self.failed = True
        return False


def read_env_file(path: Path) -> dict[str, str]:
    if not path.exists():
        return {}
    return dict(line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)


def approver_hook(cast: Cast) -> Callable[[str], None]:
    """The signing authority, between jobs: approves each changelog once it is submitted."""
    approved: set[Any] = set()

    def hook(_: str) -> None:
        for changelog in Changelog.objects.all():
            revision = changelog.current_revision
            if revision is not None and revision.status == "submitted" and changelog.pk not in approved:
                approve(cast, changelog)
                approved.add(changelog.pk)

    return hook


def assert_deployed_through_the_gate(token: str, log: Log) -> None:
    """The change went through the gate and the deployment was reported as it ended."""
    changelog = Changelog.objects.get()
    revision = changelog.current_revision
    assert revision is not None
    assert log.failed == log.rollout_fails
    assert (changelog.status == ChangelogStatus.DEPLOYED) != log.rollout_fails
    assert revision.artifact_digest == DIGEST
    assert revision.content["artifact"]["version"] == TAG
    assert revision.source_revision == SOURCE_REVISION
    assert sorted(revision.evidence.values_list("kind", flat=True)) == ["performance", "sanity", "security"]
    assert GateDecision.objects.filter(outcome="allow", changelog=changelog).exists()
    assert list(Deployment.objects.order_by("reported_at").values_list("status", "unauthorised")) == [
        ("started", False),
        ("failed" if log.rollout_fails else "succeeded", False),
    ]
    assert all(token not in output for output in log.outputs)


# --- GitHub Actions -------------------------------------------------------------------------

EXPRESSION = re.compile(r"\$\{\{\s*(.*?)\s*\}\}")
ROLLOUT = pytest.mark.parametrize("rollout_fails", [False, True], ids=["rollout succeeds", "rollout fails"])


def resolve(value: Any, values: dict[str, str]) -> str:
    def one(match: re.Match[str]) -> str:
        assert match.group(1) in values, f"the harness has no value for ${{{{ {match.group(1)} }}}}"
        return values[match.group(1)]

    return EXPRESSION.sub(one, str(value))


def github_condition(condition: str, *, failed: bool, env: dict[str, str]) -> bool:
    """The few `if:` forms the example uses: success(), failure(), env.X == '' and env.X != ''
    joined by &&. Anything else fails the test, so the example cannot outgrow the harness."""
    if not condition:
        return not failed
    result = True
    for term in (term.strip() for term in condition.split("&&")):
        match = re.fullmatch(r"env\.(\w+) (==|!=) ''", term)
        if term in {"success()", "failure()"}:
            result &= failed == (term == "failure()")
        elif match:
            result &= (env.get(match.group(1), "") == "") == (match.group(2) == "==")
        else:
            raise AssertionError(f"the harness cannot evaluate if: {condition}")
    return result


@ROLLOUT
def test_the_github_actions_workflow_runs_as_written(
    live_server: Any, cast: Cast, runner: Runner, workspace: Path, rollout_fails: bool
) -> None:
    workflow = yaml.safe_load((EXAMPLES / "github-actions-release-gate.yml").read_text())
    env = {
        **base_environment(runner, workspace),
        "GITHUB_ACTIONS": "true",
        "GITHUB_WORKSPACE": str(workspace),
        "GITHUB_SHA": SOURCE_REVISION,
        "GITHUB_REF_NAME": TAG,
        **workflow["env"],
        "RELEASEGATE_URL": live_server.url,
    }
    values = {
        "secrets.RELEASEGATE_TOKEN": cast.pipeline.token,
        "vars.PIP_INDEX_URL": "https://pypi.bank.example/simple",
        "needs.build.outputs.digest": DIGEST,
        "github.server_url": "https://github.bank.example",
        "github.repository": "payments/payments-api",
        "github.run_id": "4242",
        "github.run_attempt": "1",
    }
    after_job = approver_hook(cast)
    log, not_run = Log(rollout_fails), []
    for job_name, job in workflow["jobs"].items():
        if not any("run" in step for step in job["steps"]):
            not_run.append(f"job {job_name}")
            continue
        job_env = {**env, **{key: resolve(value, values) for key, value in job.get("env", {}).items()}}
        github_env = workspace.parent / f"github-env-{job_name}"
        step_outputs: dict[str, str] = {}
        for step in job["steps"]:
            if "uses" in step:
                not_run.append(step["uses"].split("@")[0])
                continue
            output_file = workspace.parent / "github-output"
            output_file.write_text("")
            step_env = {
                **job_env,
                **read_env_file(github_env),
                **{key: resolve(value, values) for key, value in step.get("env", {}).items()},
                "GITHUB_ENV": str(github_env),
                "GITHUB_OUTPUT": str(output_file),
            }
            if not github_condition(step.get("if", ""), failed=log.failed, env=step_env):
                not_run.append(step["name"])
                continue
            log.shell(["bash", "--noprofile", "--norc", "-eo", "pipefail"], step["run"], step_env, workspace)
            if "id" in step:
                step_outputs |= {f"steps.{step['id']}.outputs.{k}": v for k, v in read_env_file(output_file).items()}
        for name, expression in job.get("outputs", {}).items():
            values[f"needs.{job_name}.outputs.{name}"] = resolve(expression, step_outputs)
        after_job(job_name)

    assert_deployed_through_the_gate(cast.pipeline.token, log)
    uses = ["job build", "actions/checkout", "actions/setup-python", "actions/setup-python"]
    other_report = "Report the deployment as succeeded" if rollout_fails else "Report the deployment as failed"
    assert not_run == [*uses, other_report]


# --- GitLab CI ------------------------------------------------------------------------------

GITLAB_KEYWORDS = {"stages", "variables", "default", "workflow", "include", "image", "services", "cache"}


@ROLLOUT
def test_the_gitlab_ci_pipeline_runs_as_written(
    live_server: Any, cast: Cast, runner: Runner, workspace: Path, rollout_fails: bool
) -> None:
    config = yaml.safe_load((EXAMPLES / ".gitlab-ci.yml").read_text())
    env = {
        **base_environment(runner, workspace),
        "GITLAB_CI": "true",
        "CI_PROJECT_DIR": str(workspace),
        "CI_COMMIT_SHA": SOURCE_REVISION,
        "CI_COMMIT_TAG": TAG,
        "CI_JOB_URL": "https://gitlab.bank.example/payments/payments-api/-/jobs/4242",
        "RELEASEGATE_TOKEN": cast.pipeline.token,  # a masked CI/CD variable
        "PIP_INDEX_URL": "https://pypi.bank.example/simple",  # a CI/CD variable
        "IMAGE_DIGEST": DIGEST,  # the build job's dotenv report
        **{key: str(value) for key, value in config["variables"].items()},
        "RELEASEGATE_URL": live_server.url,
    }
    jobs = {
        name: {**config.get(job.get("extends", ""), {}), **job}
        for name, job in config.items()
        if name not in GITLAB_KEYWORDS and not name.startswith(".")
    }
    after_job = approver_hook(cast)
    log = Log(rollout_fails)
    bash = ["bash", "--noprofile", "--norc", "-eo", "pipefail"]
    for name in sorted(jobs, key=lambda name: config["stages"].index(jobs[name]["stage"])):
        job = jobs[name]
        job_env = {**env, **job.get("variables", {})}
        succeeded = log.shell(bash, "\n".join([*job.get("before_script", []), *job["script"]]), job_env, workspace)
        if "after_script" in job:
            status = "success" if succeeded else "failed"
            log.shell(bash, "\n".join(job["after_script"]), {**job_env, "CI_JOB_STATUS": status}, workspace)
        if not succeeded:
            break
        dotenv = job.get("artifacts", {}).get("reports", {}).get("dotenv")
        if dotenv:
            env |= read_env_file(workspace / dotenv)
        after_job(name)

    assert list(jobs) == ["staging-tests", "load-test", "security-scan", "changelog", "deploy-production"]
    assert_deployed_through_the_gate(cast.pipeline.token, log)


# --- Jenkins --------------------------------------------------------------------------------


@ROLLOUT
def test_the_jenkinsfile_runs_as_written(
    live_server: Any, cast: Cast, runner: Runner, workspace: Path, rollout_fails: bool
) -> None:
    text = (EXAMPLES / "Jenkinsfile").read_text()
    (workspace / "image.digest").write_text(DIGEST + "\n")  # left by the build stage
    environment = re.search(r"environment \{\n(.*?)\n  \}", text, re.DOTALL)
    assert environment is not None
    credentials = {"releasegate-token": cast.pipeline.token}
    declared = {}
    for line in environment.group(1).splitlines():
        match = re.fullmatch(r"\s*(\w+) = (?:'([^']*)'|credentials\('([^']*)'\))", line)
        assert match, f"the harness cannot read {line!r}"
        declared[match.group(1)] = match.group(2) if match.group(2) is not None else credentials[match.group(3)]
    env = {
        **base_environment(runner, workspace),
        "WORKSPACE": str(workspace),
        "BUILD_URL": "https://jenkins.bank.example/job/payments-api/job/v1.4.2/7/",
        "GIT_COMMIT": SOURCE_REVISION,
        "TAG_NAME": TAG,
        **declared,
        "RELEASEGATE_URL": live_server.url,
    }
    after_block = approver_hook(cast)
    log, ran = Log(rollout_fails), []
    for match in re.finditer(r"sh '''\n(.*?)'''", text, re.DOTALL):
        in_failure_post = text[: match.start()].rstrip().endswith("failure {")
        if in_failure_post != log.failed:
            continue  # after a failure only `post { failure }` runs; without one, it does not
        ran.append("post failure" if in_failure_post else "stage")
        log.shell(["sh", "-xe"], match.group(1), env, workspace)
        after_block("sh")

    assert ran == ["stage"] * 5 + (["post failure"] if rollout_fails else ["stage"])
    assert_deployed_through_the_gate(cast.pipeline.token, log)
