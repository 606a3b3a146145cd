"""PR-16 and PR-17: population.json lists every change and deployment of the period with the
record counts, the audit log range and checkpoint, and the leaf indexes of each row's events; a
sampled row is proven against the checkpoint with the standalone verifier; the stratified
sample (class, domain, off hours) is drawn again identically from the exported rows."""

import csv
import hashlib
import io
import json
import subprocess
import sys
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from django.utils import timezone

from changelogs.models import Changelog
from packs.render.archive import standalone_verifier_sources
from packs.render.sample import is_off_hours, stratified_sample
from tests.conftest import Cast
from tests.packs.test_packs import download, first_day, request_pack
from tests.releasegate.gate_support import check, ready_changelog

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("eager_celery")]


def _deploy(cast: Cast, changelog: Changelog, key: str) -> None:
    pipeline = cast.pipeline.client()
    check(pipeline, digest=changelog.current_revision.artifact_digest)  # type: ignore[union-attr]
    response = pipeline.post(
        "/api/v1/deployments/",
        {
            "idempotency_key": key,
            "service": "payments-api",
            "environment": "production",
            "artifact_digest": changelog.current_revision.artifact_digest,  # type: ignore[union-attr]
            "status": "succeeded",
            "started_at": timezone.now().isoformat(),
        },
        format="json",
    )
    assert response.status_code == 201, response.json()


@pytest.fixture
def population(cast: Cast, settings: Any) -> dict[str, Any]:
    settings.POPULATION_SAMPLE_PER_STRATUM = 1
    train = ready_changelog(cast)
    _deploy(cast, train, "run-1")
    artifact = {**train.current_revision.content["artifact"], "digest": "sha256:" + "ef" * 32}  # type: ignore[union-attr]
    ready_changelog(cast, kind="hotfix", artifact=artifact)
    start = first_day().isoformat()
    end = (timezone.now() + timedelta(days=2)).isoformat()
    job = request_pack(cast, {"kind": "population", "start": start, "end": end, "sample_size": 1, "seed": 4242})
    document: dict[str, Any] = json.loads(download(cast, job, "population.json"))
    document["_csv"] = list(csv.DictReader(io.StringIO(download(cast, job, "population.csv").decode())))
    return document


@pytest.mark.requirement("PR-16")
def test_population_json_counts_every_change_and_deployment_with_the_log_range(population: dict[str, Any]) -> None:
    csv_changes = {row["changelog_id"] for row in population["_csv"] if row["record"] == "change"}
    csv_deployments = {row["deployment_id"] for row in population["_csv"] if row["record"] == "deployment"}

    assert population["format"] == "releasegate/population/v1"
    assert population["counts"] == {"changes": len(csv_changes), "deployments": len(csv_deployments)}
    assert {change["changelog_id"] for change in population["changes"]} == csv_changes
    assert {deployment["deployment_id"] for deployment in population["deployments"]} == csv_deployments
    log = population["audit_log"]
    assert 0 <= log["first_leaf"] <= log["last_leaf"] < log["tree_size"]
    assert log["checkpoint"].startswith("releasegate.test/audit-log\n")
    for row in population["changes"] + population["deployments"]:
        assert row["leaf_indexes"], row
        assert all(0 <= index < log["tree_size"] for index in row["leaf_indexes"])


@pytest.mark.requirement("PR-16")
def test_a_sampled_row_is_proven_against_the_checkpoint_with_the_standalone_verifier(
    population: dict[str, Any], tmp_path: Path
) -> None:
    for name, source in standalone_verifier_sources().items():
        (tmp_path / "verifier" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "verifier" / name).write_bytes(source)
    (tmp_path / "checkpoint.txt").write_text(population["audit_log"]["checkpoint"])
    (tmp_path / "public-key.txt").write_text(population["audit_log"]["public_key"] + "\n")
    proofs = population["sample"]["proofs"]
    rows = {change["changelog_id"]: change for change in population["changes"]}

    assert set(proofs) == {i for ids in population["sample"]["strata"].values() for i in ids}
    for changelog_id, row_proofs in proofs.items():
        assert set(rows[changelog_id]["leaf_indexes"]) <= {proof["leaf_index"] for proof in row_proofs}
        for number, proof in enumerate(row_proofs):
            path = tmp_path / f"{changelog_id}-{number}.json"
            path.write_text(json.dumps(proof))
            command = [sys.executable, "-m", "tlog.verifier", "inclusion", "--key", str(tmp_path / "public-key.txt")]
            command += ["--checkpoint", str(tmp_path / "checkpoint.txt"), str(path)]
            result = subprocess.run(command, cwd=tmp_path / "verifier", capture_output=True, text=True, check=False)
            assert result.returncode == 0, result.stderr
    tampered = {**next(iter(proofs.values()))[0]}
    tampered["event"] = tampered["event"].replace('"action":"', '"action":"x')
    (tmp_path / "tampered.json").write_text(json.dumps(tampered))
    command = [sys.executable, "-m", "tlog.verifier", "inclusion", "--key", str(tmp_path / "public-key.txt")]
    command += ["--checkpoint", str(tmp_path / "checkpoint.txt"), str(tmp_path / "tampered.json")]
    assert subprocess.run(command, cwd=tmp_path / "verifier", capture_output=True, check=False).returncode == 1


@pytest.mark.requirement("PR-17")
def test_the_stratified_sample_is_drawn_again_identically_from_the_exported_rows(population: dict[str, Any]) -> None:
    sample = population["sample"]
    rows = [(change["changelog_id"], change["stratum"]) for change in population["changes"]]

    assert stratified_sample(rows, seed=sample["seed"], size=sample["per_stratum"]) == sample["strata"]
    # and without Release Gate's code: the smallest SHA-256 of "<seed>:<id>" in each stratum
    redrawn: dict[str, list[str]] = {}
    for changelog_id, stratum in sorted(
        rows, key=lambda r: hashlib.sha256(f"{sample['seed']}:{r[0]}".encode()).hexdigest()
    ):
        if len(redrawn.setdefault(stratum, [])) < sample["per_stratum"]:
            redrawn[stratum].append(changelog_id)
    assert redrawn == sample["strata"]
    kinds = {change["stratum"].split("/")[0] for change in population["changes"]}
    assert kinds == {"train", "hotfix"}
    assert all(change["stratum"].split("/")[1] == change["domain"] for change in population["changes"])


@pytest.mark.requirement("PR-17")
def test_off_hours_are_read_in_the_organisations_time_zone_and_working_days() -> None:
    london = ZoneInfo("Europe/London")

    def off(moment: datetime) -> bool:
        return is_off_hours(moment, zone=london, opens=time(8), closes=time(18), working_days=range(5))

    assert not off(datetime(2026, 7, 1, 7, 30, tzinfo=UTC))  # 08:30 in London (summer time), a Wednesday
    assert off(datetime(2026, 12, 2, 7, 30, tzinfo=UTC))  # 07:30 in London (winter), a Wednesday
    assert off(datetime(2026, 7, 1, 17, 0, tzinfo=UTC))  # 18:00 in London: closed
    assert off(datetime(2026, 12, 5, 12, 0, tzinfo=UTC))  # a Saturday


def test_strata_split_by_class_domain_and_off_hours_and_draw_per_stratum() -> None:
    rows = [(f"id-{n}", stratum) for n in range(20) for stratum in ["train/payments/working-hours"]]
    rows += [
        ("h-1", "hotfix/payments/off-hours"),
        ("h-2", "hotfix/payments/off-hours"),
        ("t-9", "train/transfers/working-hours"),
    ]

    drawn = stratified_sample(rows, seed=7, size=2)

    assert sorted(drawn) == [
        "hotfix/payments/off-hours",
        "train/payments/working-hours",
        "train/transfers/working-hours",
    ]
    assert [len(ids) for ids in drawn.values()] == [2, 2, 1]
    assert stratified_sample(list(reversed(rows)), seed=7, size=2) == drawn
