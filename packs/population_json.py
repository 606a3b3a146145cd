"""``population.json``: the population of a period as data an auditor's tools read (PR-16), with
a stratified sample they can draw again (PR-17).

Beside the CSV's columns, every change and deployment row carries the leaf indexes of its
audit events in the log, and the document names the log range and the signed checkpoint it was
made against, with the record counts. Each change gets its stratum, class (train or hotfix),
domain and whether it happened off the organisation's working hours, and the sample holds
``POPULATION_SAMPLE_PER_STRATUM`` changes of each stratum, drawn with the pack's seed
(packs.render.sample.stratified_sample), each with the inclusion proofs of its events: the
standalone verifier proves a sampled row against the checkpoint without asking the server.
"""

import dataclasses
import json
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime, time
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from django.conf import settings

from audit.models import AuditEvent, Checkpoint
from changelogs.models import Changelog
from packs.render.archive import proof_json
from packs.render.data import AuditItem, ChangeRow, DeploymentRow, PopulationPack
from packs.render.sample import STRATIFIED_METHOD, is_off_hours, stratified_sample, stratum_of

FORMAT = "releasegate/population/v1"
WORKING_DAYS = (0, 1, 2, 3, 4)  # Monday to Friday
_CHUNK = 500
T = TypeVar("T")


def working_hours() -> tuple[ZoneInfo, time, time]:
    opens, _, closes = settings.ORGANISATION_WORKING_HOURS.partition("-")
    return ZoneInfo(settings.ORGANISATION_TIME_ZONE), time.fromisoformat(opens), time.fromisoformat(closes)


def _chunks(rows: Iterable[T]) -> Iterator[list[T]]:
    chunk: list[T] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) == _CHUNK:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _leaves(target_type: str, ids: list[str], tree_size: int) -> dict[str, list[int]]:
    """The leaf indexes of the events about each target, in log order (within the checkpoint)."""
    found: dict[str, list[int]] = {}
    events = AuditEvent.objects.filter(
        target_type=target_type, target_id__in=ids, leaf__leaf_index__lt=tree_size
    ).order_by("leaf__leaf_index")
    for target_id, index in events.values_list("target_id", "leaf__leaf_index"):
        found.setdefault(target_id, []).append(index)
    return found


def _change(row: ChangeRow, leaves: list[int], off_hours: bool) -> dict[str, Any]:
    stratum = stratum_of(kind=row.kind, domain=row.domain, off_hours=off_hours)
    return {**dataclasses.asdict(row), "off_hours": off_hours, "stratum": stratum, "leaf_indexes": leaves}


def _deployment(row: DeploymentRow, leaves: list[int]) -> dict[str, Any]:
    return {**dataclasses.asdict(row), "leaf_indexes": leaves}


def population_json(
    population: PopulationPack, *, audit_items: Callable[[Changelog, Checkpoint], Iterable[AuditItem]]
) -> bytes:
    """``audit_items`` gives a change's audit events with their proofs, as its changelog pack
    carries them (packs.builds passes its own, so both packs prove the same events)."""
    checkpoint = Checkpoint.objects.get(signed_note=population.checkpoint)
    zone, opens, closes = working_hours()
    per_stratum = settings.POPULATION_SAMPLE_PER_STRATUM
    changes: list[dict[str, Any]] = []
    for chunk in _chunks(population.changes):
        leaves = _leaves("changelogs.changelog", [row.changelog_id for row in chunk], checkpoint.tree_size)
        for row in chunk:
            # A change happens when it is deployed; one never deployed, when it was submitted.
            moment = row.first_deployed_at or row.submitted_at
            off_hours = bool(moment) and is_off_hours(
                datetime.fromisoformat(moment), zone=zone, opens=opens, closes=closes, working_days=WORKING_DAYS
            )
            changes.append(_change(row, leaves.get(row.changelog_id, []), off_hours))
    deployments: list[dict[str, Any]] = []
    for reports in _chunks(population.deployments):
        found = _leaves("releasegate.deployment", [report.deployment_id for report in reports], checkpoint.tree_size)
        deployments += [_deployment(report, found.get(report.deployment_id, [])) for report in reports]
    strata = stratified_sample(
        ((change["changelog_id"], change["stratum"]) for change in changes),
        seed=population.sample_seed,
        size=per_stratum,
    )
    sampled = sorted({changelog_id for ids in strata.values() for changelog_id in ids})
    proofs = {
        str(changelog.pk): [
            json.loads(proof_json(item, checkpoint.tree_size)) for item in audit_items(changelog, checkpoint)
        ]
        for changelog in Changelog.objects.filter(pk__in=sampled).order_by("pk")
    }
    document = {
        "format": FORMAT,
        "organisation": population.organisation,
        "generated_at": population.generated_at,
        "period": {"start": population.period_start, "end": population.period_end},
        "domain": population.domain,
        "counts": {"changes": len(changes), "deployments": len(deployments)},
        "audit_log": {
            "first_leaf": population.audit_first_leaf,
            "last_leaf": population.audit_last_leaf,
            "tree_size": checkpoint.tree_size,
            "checkpoint": population.checkpoint,
            "public_key": population.public_key,
        },
        "working_hours": {
            "time_zone": settings.ORGANISATION_TIME_ZONE,
            "hours": settings.ORGANISATION_WORKING_HOURS,
            "days": "Monday to Friday",
        },
        "changes": changes,
        "deployments": deployments,
        "sample": {
            "seed": population.sample_seed,
            "per_stratum": per_stratum,
            "method": STRATIFIED_METHOD.format(size=per_stratum),
            "strata": strata,
            "proofs": proofs,
        },
    }
    return (json.dumps(document, indent=1, ensure_ascii=False, sort_keys=True) + "\n").encode("utf-8")
