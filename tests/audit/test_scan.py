"""The pure parts of verification's fast path (audit/scan.py)."""

import pytest

from audit.scan import aligned_blocks, node_levels
from tlog.merkle import Frontier, leaf_hash


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


@pytest.mark.parametrize(
    ("start", "count"), [(0, 1), (0, 13), (5, 11), (6, 26), (64, 64), (3, 1), (18, 19), (1000, 77)]
)
def test_node_levels_are_the_nodes_wholly_inside_the_range(start: int, count: int) -> None:
    """What the scan compares with the stored nodes: every node the frontier completes that
    lies wholly inside the range, level by level in index order, and no other."""
    leaves = _leaves(start + count)
    frontier = Frontier()
    inside: dict[int, list[bytes]] = {}
    for leaf in leaves:
        for level, index, digest in frontier.append(leaf):
            if index << level >= start:
                inside.setdefault(level, []).append(digest)

    levels = node_levels(start, b"".join(leaves[start:]))

    assert levels[0] == b"".join(leaves[start:])
    assert {level: levels[level] for level in range(1, len(levels))} == {
        level: b"".join(nodes) for level, nodes in inside.items()
    }
