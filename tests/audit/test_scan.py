"""The pure parts of verification's fast path (audit/scan.py)."""

import pytest

from audit.scan import aligned_blocks, perfect_root
from tlog.merkle import Frontier, leaf_hash, root_of


def _leaves(count: int) -> list[bytes]:
    return [leaf_hash(str(n).encode()) for n in range(count)]


@pytest.mark.parametrize(("start", "count"), [(0, 1), (0, 13), (5, 11), (6, 26), (64, 64), (3, 1), (1000, 77)])
def test_aligned_blocks_append_to_the_same_frontier_as_the_leaves(start: int, count: int) -> None:
    prefix, hashes = _leaves(start), _leaves(start + count)[start:]
    one_by_one = Frontier()
    one_by_one.extend(prefix + hashes)
    by_blocks = Frontier()
    by_blocks.extend(prefix)

    for level, root in aligned_blocks(start, b"".join(hashes)):
        assert by_blocks.size % (1 << level) == 0
        by_blocks.append_subtree(level, root)

    assert by_blocks == one_by_one


def test_perfect_root_is_the_tree_head_of_a_power_of_two_leaves() -> None:
    for level in range(8):
        hashes = _leaves(1 << level)
        assert perfect_root(b"".join(hashes)) == root_of(hashes)
