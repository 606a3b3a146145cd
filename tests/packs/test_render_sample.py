"""The auditor's seeded sample: reproducible, order-independent, and redoable by hand."""

import hashlib

import pytest

from packs.render.sample import sample_changelog_ids, sample_key

IDS = [f"c{n:07d}-5d2a-4c7e-9a41-8f2d6c1b7e90" for n in range(1_000)]


@pytest.mark.requirement("PR-17")
def test_it_takes_the_ids_with_the_smallest_seeded_hashes_in_that_order() -> None:
    by_key = sorted(IDS, key=lambda i: hashlib.sha256(f"77:{i}".encode()).hexdigest())
    assert sample_changelog_ids(IDS, seed=77, size=25) == by_key[:25]


@pytest.mark.requirement("PR-17")
def test_the_same_seed_gives_the_same_sample_whatever_the_order_and_duplicates() -> None:
    forwards = sample_changelog_ids(IDS, seed=5, size=10)
    assert sample_changelog_ids(reversed(IDS), seed=5, size=10) == forwards
    assert sample_changelog_ids(IDS + IDS[::3], seed=5, size=10) == forwards
    assert sample_changelog_ids(IDS, seed=6, size=10) != forwards


def test_a_population_smaller_than_the_sample_is_taken_whole() -> None:
    assert sorted(sample_changelog_ids(IDS[:3], seed=1, size=10)) == IDS[:3]
    assert sample_changelog_ids([], seed=1, size=10) == []
    assert sample_changelog_ids(IDS, seed=1, size=0) == []


def test_a_negative_size_is_refused() -> None:
    with pytest.raises(ValueError, match="negative"):
        sample_changelog_ids(IDS, seed=1, size=-1)


def test_the_key_is_the_sha256_of_seed_colon_id() -> None:
    assert sample_key(3, "abc") == hashlib.sha256(b"3:abc").hexdigest()
