"""A whole Release Gate of its own for fault tests: a private PostgreSQL cluster (the machine's
initdb and pg_ctl, a private data directory and a free port, run as the postgres OS user when
started as root) and gunicorn with two workers in front of it. The test stops and starts the
database under load, which it cannot do to the shared server."""

import glob
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.processes import free_port, process_stop

REPOSITORY = Path(__file__).resolve().parents[2]


def _postgres_bin() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found:
        pytest.skip("needs PostgreSQL's server binaries (/usr/lib/postgresql/*/bin): CI's PostgreSQL pass has them")
    return Path(found[-1]).parent


class PrivatePostgres:
    def __init__(self) -> None:
        self.bin = _postgres_bin()
        self.root = Path(tempfile.mkdtemp(prefix="releasegate-pg-"))
        self.data = self.root / "data"
        self.port = free_port()
        self.url = f"postgres://postgres@127.0.0.1:{self.port}/releasegate"
        self.as_user: list[str] = []
        if os.geteuid() == 0:  # initdb refuses root
            try:
                pwd.getpwnam("postgres")
            except KeyError:
                pytest.skip("running as root needs a postgres OS user for initdb")
            shutil.chown(self.root, "postgres", "postgres")
            self.as_user = ["runuser", "-u", "postgres", "--"]
        os.chmod(self.root, 0o755)  # noqa: S103 - the postgres user must reach its data directory

    def _run(self, *command: str) -> None:
        subprocess.run([*self.as_user, *command], check=True, capture_output=True, cwd=self.root)

    def init(self) -> None:
        self._run(str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8")
        self.start()
        self._run(str(self.bin / "createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "releasegate")

    def start(self) -> None:
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.root} -c fsync=off"
        self._run(
            str(self.bin / "pg_ctl"), "-D", str(self.data), "-o", options, "-l", str(self.root / "log"), "-w", "start"
        )

    def stop(self, mode: str = "fast") -> None:
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop")

    def destroy(self) -> None:
        subprocess.run(
            [*self.as_user, str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop"],
            capture_output=True,
            check=False,
        )
        shutil.rmtree(self.root, ignore_errors=True)


class PrivateService:
    """Release Gate on the private database: migrated, seeded with the demo (a pipeline token
    and changes for the gate), served by gunicorn with two workers and ``DEBUG=0`` as in
    production (the keys are the test run's, from tests/settings.py), Celery eager."""

    def __init__(self, database_url: str, workdir: Path) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.var = workdir / "var"
        self.var.mkdir(parents=True, exist_ok=True)
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("CELERY_", "DJANGO_", "PYTEST_"))},
            "DJANGO_SETTINGS_MODULE": "releasegate.settings",
            "DEBUG": "1",
            "DATABASE_URL": database_url,
            "RELEASEGATE_VAR_DIR": str(self.var),
            "CELERY_BROKER_URL": "",
            "METRICS_PUBLIC": "1",
        }
        self.process: subprocess.Popen[bytes] | None = None
        self.log = workdir / "gunicorn.log"

    def manage(self, *args: str) -> str:
        done = subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=REPOSITORY,
            env=self.env,
            capture_output=True,
            text=True,
            check=False,
        )
        assert done.returncode == 0, done.stderr[-2000:]
        return done.stdout

    def prepare(self) -> str:
        self.manage("migrate", "--noinput")
        self.manage("seed_demo", "--quiet")
        return (self.var / "demo-pipeline-token").read_text().strip()

    def serve(self) -> None:
        gunicorn = Path(sys.executable).with_name("gunicorn")
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                [str(gunicorn), "releasegate.wsgi", "-b", f"127.0.0.1:{self.port}", "-w", "2", "--timeout", "30"],
                cwd=REPOSITORY,
                env={**self.env, "DEBUG": "0"},
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{self.base}/healthz", timeout=1) as response:  # noqa: S310 - loopback
                    if response.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                time.sleep(0.2)
        raise AssertionError(f"gunicorn did not answer: {self.log.read_text()[-2000:]}")

    def stop(self) -> None:
        if self.process is not None:
            process_stop(self.process, timeout=20)
            self.process = None
