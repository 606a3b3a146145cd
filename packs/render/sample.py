"""The auditor's reproducible random sample of changes.

A change is in the sample of seed ``s`` and size ``n`` when ``SHA-256("<s>:<changelog id>")``
is among the ``n`` smallest of the population. That depends only on the seed and the ids, not
on the order rows arrive in, the database, or Python's random module, so an auditor can redo
it from the population CSV with a one-line script (``SAMPLE_SCRIPT``) and the seed printed on
the pack. It also streams: one pass, never more than ``n`` ids held.
"""

import hashlib
import heapq
from collections.abc import Iterable
from datetime import datetime, time, tzinfo

SAMPLE_METHOD = (
    'A change is in the sample when SHA-256 of "<seed>:<changelog id>" (UTF-8, as lowercase hex) '
    "is among the {size} smallest of all changes in the population."
)

# Redo the sample from the population CSV; {seed} and {size} are filled in.
SAMPLE_SCRIPT = (
    "python3 -c 'import csv,hashlib; "
    'ids={{r["changelog_id"] for r in csv.DictReader(open("population.csv")) if r["record"]=="change"}}; '
    'key=lambda i: hashlib.sha256(("{seed}:"+i).encode()).hexdigest(); '
    "print(*sorted(ids,key=key)[:{size}],sep=chr(10))'"
)


def sample_key(seed: int, changelog_id: str) -> str:
    return hashlib.sha256(f"{seed}:{changelog_id}".encode()).hexdigest()


def sample_changelog_ids(changelog_ids: Iterable[str], *, seed: int, size: int) -> list[str]:
    """The sample of ``size`` ids for ``seed``, in sample order (smallest key first).

    Duplicate ids count once; a population smaller than ``size`` is sampled whole.
    """
    if size < 0:
        raise ValueError("a sample size cannot be negative")
    # A max-heap (negated keys) of the best ``size`` so far: its top is the one to beat.
    heap: list[tuple[int, str]] = []
    members: set[str] = set()
    for changelog_id in changelog_ids:
        if changelog_id in members or not size:
            continue
        key = int(sample_key(seed, changelog_id), 16)
        if len(heap) < size:
            heapq.heappush(heap, (-key, changelog_id))
            members.add(changelog_id)
        elif key < -heap[0][0]:
            _, dropped = heapq.heapreplace(heap, (-key, changelog_id))
            members.discard(dropped)
            members.add(changelog_id)
    return [changelog_id for _, changelog_id in sorted(heap, reverse=True)]


# --- Stratified sampling (PR-17) ---------------------------------------------------------------

STRATIFIED_METHOD = (
    "Changes are grouped into strata by class (train or hotfix), domain and whether they happened "
    'off hours; in each stratum, a change is in the sample when SHA-256 of "<seed>:<changelog id>" '
    "is among the {size} smallest of that stratum."
)


def stratum_of(*, kind: str, domain: str, off_hours: bool) -> str:
    return f"{kind}/{domain}/{'off-hours' if off_hours else 'working-hours'}"


def is_off_hours(moment: datetime, *, zone: tzinfo, opens: time, closes: time, working_days: Iterable[int]) -> bool:
    """Whether ``moment`` (aware) falls outside the organisation's working hours, read in its
    time zone: on a day not among ``working_days`` (Monday 0 … Sunday 6), or before ``opens`` or
    at or after ``closes``."""
    local = moment.astimezone(zone)
    return local.weekday() not in set(working_days) or not opens <= local.time() < closes


def stratified_sample(rows: Iterable[tuple[str, str]], *, seed: int, size: int) -> dict[str, list[str]]:
    """``size`` ids of each stratum, from (changelog id, stratum) pairs, with the seeded draw of
    ``sample_changelog_ids`` inside each stratum; strata in sorted order. Depends only on the
    seed, the ids and their strata, so anyone can redraw it from the exported rows."""
    strata: dict[str, list[str]] = {}
    for changelog_id, stratum in rows:
        strata.setdefault(stratum, []).append(changelog_id)
    return {stratum: sample_changelog_ids(ids, seed=seed, size=size) for stratum, ids in sorted(strata.items())}
