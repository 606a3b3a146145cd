"""The Merkle core against public RFC 6962 vectors and against a brute-force tree."""

import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

import pytest

from tests.shared_data import MERKLE_VECTORS_DIR
from tlog.merkle import (
    EMPTY_ROOT,
    HASH_SIZE,
    Coord,
    Frontier,
    ProofError,
    consistency_proof,
    consistency_proof_nodes,
    inclusion_proof,
    inclusion_proof_nodes,
    leaf_hash,
    node_hash,
    range_coords,
    root_from_inclusion,
    root_of,
    verify_consistency,
    verify_inclusion,
)

ROOTS = json.loads((MERKLE_VECTORS_DIR / "roots.json").read_text())
INCLUSION = json.loads((MERKLE_VECTORS_DIR / "inclusion.json").read_text())
CONSISTENCY = json.loads((MERKLE_VECTORS_DIR / "consistency.json").read_text())
VECTOR_LEAVES = [leaf_hash(bytes.fromhex(x)) for x in ROOTS["leaf_inputs_hex"]]
VECTOR_ROOTS = [bytes.fromhex(x) for x in ROOTS["root_hex_by_tree_size"]]


def mth(leaves: Sequence[bytes]) -> bytes:
    """RFC 6962 section 2.1, literally: the recursive definition."""
    n = len(leaves)
    if n == 0:
        return hashlib.sha256(b"").digest()
    if n == 1:
        return leaves[0]
    k = 1
    while k * 2 < n:
        k *= 2
    return node_hash(mth(leaves[:k]), mth(leaves[k:]))


def rfc_path(m: int, leaves: Sequence[bytes]) -> list[bytes]:
    """PATH(m, D[n]) of RFC 6962 section 2.1.1, literally."""
    n = len(leaves)
    if n == 1:
        return []
    k = 1
    while k * 2 < n:
        k *= 2
    if m < k:
        return [*rfc_path(m, leaves[:k]), mth(leaves[k:])]
    return [*rfc_path(m - k, leaves[k:]), mth(leaves[:k])]


def rfc_subproof(m: int, leaves: Sequence[bytes], complete: bool) -> list[bytes]:
    """SUBPROOF(m, D[n], b) of RFC 6962 section 2.1.2, literally."""
    n = len(leaves)
    if m == n:
        return [] if complete else [mth(leaves)]
    k = 1
    while k * 2 < n:
        k *= 2
    if m <= k:
        return [*rfc_subproof(m, leaves[:k], complete), mth(leaves[k:])]
    return [*rfc_subproof(m - k, leaves[k:], False), mth(leaves[:k])]


def make_leaves(n: int) -> list[bytes]:
    return [leaf_hash(f"entry {i}".encode()) for i in range(n)]


class Store:
    """What the service keeps: leaf hashes at level 0 and the nodes Frontier reports."""

    def __init__(self, leaves: Sequence[bytes]) -> None:
        self.nodes: dict[Coord, bytes] = {}
        self.frontier = Frontier()
        self.calls: list[list[Coord]] = []
        for i, h in enumerate(leaves):
            self.nodes[(0, i)] = h
            for level, index, node in self.frontier.append(h):
                assert (level, index) not in self.nodes
                self.nodes[(level, index)] = node

    def fetch(self, coords: Sequence[Coord]) -> Mapping[Coord, bytes]:
        self.calls.append(list(coords))
        return {c: self.nodes[c] for c in coords}


N = 40
LEAVES = make_leaves(N)
STORE = Store(LEAVES)
PREFIX_ROOTS = [mth(LEAVES[:n]) for n in range(N + 1)]


def h(x: str) -> bytes:
    return bytes.fromhex(x)


def test_leaf_and_node_hashes_use_the_rfc_6962_domain_prefixes() -> None:
    assert leaf_hash(b"abc") == hashlib.sha256(b"\x00abc").digest()
    assert node_hash(b"a" * 32, b"b" * 32) == hashlib.sha256(b"\x01" + b"a" * 32 + b"b" * 32).digest()
    assert EMPTY_ROOT.hex() == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert HASH_SIZE == 32


@pytest.mark.parametrize("n", range(9))
def test_root_of_matches_the_vector_roots_for_the_first_n_leaves(n: int) -> None:
    assert root_of(VECTOR_LEAVES[:n]) == VECTOR_ROOTS[n]


@pytest.mark.parametrize("n", range(9))
def test_frontier_appends_reach_the_vector_roots(n: int) -> None:
    frontier = Frontier()
    frontier.extend(VECTOR_LEAVES[:n])
    assert frontier.size == n
    assert frontier.root() == VECTOR_ROOTS[n]


def test_root_of_agrees_with_the_recursive_definition_up_to_70_leaves() -> None:
    leaves = make_leaves(70)
    for n in range(71):
        assert root_of(leaves[:n]) == mth(leaves[:n])


def test_the_frontier_reports_every_perfect_subtree_once_with_its_brute_force_hash() -> None:
    leaves = make_leaves(70)
    frontier = Frontier()
    seen: dict[tuple[int, int], bytes] = {}
    for size in range(1, 71):
        completed = frontier.append(leaves[size - 1])
        assert [lvl for lvl, _, _ in completed] == list(range(1, len(completed) + 1))
        for level, index, node in completed:
            assert level >= 1
            assert (level, index) not in seen
            seen[(level, index)] = node
        expected = {
            (level, index): mth(leaves[index << level : (index + 1) << level])
            for level in range(1, size.bit_length())
            for index in range(size >> level)
        }
        assert seen == expected
        assert frontier.root() == mth(leaves[:size])
        assert len(frontier.hashes) == size.bit_count()


def test_appending_a_whole_subtree_equals_appending_its_leaves_one_by_one() -> None:
    leaves = make_leaves(70)
    for start in range(64):
        for level in range(7):
            width = 1 << level
            if start % width or start + width > 70:
                continue
            one_by_one = Frontier()
            one_by_one.extend(leaves[:start])
            at_once = one_by_one.copy()
            nodes = one_by_one.extend(leaves[start : start + width])
            reported = at_once.append_subtree(level, mth(leaves[start : start + width]))
            assert at_once == one_by_one
            # Only the nodes above the subtree: those inside it are the caller's.
            assert reported == [node for node in nodes if node[0] > level]
    assert Frontier().append_subtree(0, leaves[0]) == Frontier().append(leaves[0])


def test_a_subtree_must_start_on_a_node_boundary_and_be_a_hash() -> None:
    frontier = Frontier()
    frontier.extend(make_leaves(6))
    with pytest.raises(ValueError):
        frontier.append_subtree(2, leaf_hash(b"x"))  # 6 is not a multiple of 4
    with pytest.raises(ValueError):
        frontier.append_subtree(1, b"short")
    with pytest.raises(ValueError):
        frontier.append_subtree(-1, leaf_hash(b"x"))
    assert frontier.size == 6


def test_the_frontier_round_trips_through_json() -> None:
    frontier = Frontier()
    frontier.extend(make_leaves(13))
    data = json.loads(json.dumps(frontier.to_json()))
    assert data["size"] == 13
    restored = Frontier.from_json(data)
    assert restored == frontier
    assert restored.root() == frontier.root()
    restored.append(leaf_hash(b"next"))
    frontier.append(leaf_hash(b"next"))
    assert restored.root() == frontier.root()


@pytest.mark.parametrize(
    "data",
    [
        {"size": 3, "hashes": ["00" * 32]},
        {"size": 1, "hashes": ["00" * 31]},
        {"size": 1, "hashes": ["zz" * 32]},
        {"size": -1, "hashes": []},
        {"size": True, "hashes": ["00" * 32]},
        {"size": 1},
        [],
    ],
)
def test_frontier_from_json_refuses_malformed_data(data: Any) -> None:
    with pytest.raises((TypeError, ValueError)):
        Frontier.from_json(data)


def test_frontier_append_refuses_a_leaf_hash_of_the_wrong_length() -> None:
    with pytest.raises(ValueError):
        Frontier().append(b"short")


def test_range_coords_cover_a_range_with_perfect_subtrees_largest_first() -> None:
    assert range_coords(0, 13) == [(3, 0), (2, 2), (0, 12)]
    assert range_coords(8, 15) == [(2, 2), (1, 6), (0, 14)]
    assert range_coords(5, 6) == [(0, 5)]
    with pytest.raises(ValueError):
        range_coords(2, 6)  # not a node-aligned range
    with pytest.raises(ValueError):
        range_coords(3, 3)


def test_generated_inclusion_proofs_match_the_rfc_and_verify_for_all_pairs_up_to_40() -> None:
    for size in range(1, N + 1):
        for index in range(size):
            STORE.calls.clear()
            proof = inclusion_proof(index, size, STORE.fetch)
            assert proof == rfc_path(index, LEAVES[:size])
            assert len(STORE.calls) == (1 if size > 1 else 0)
            verify_inclusion(LEAVES[index], index, size, proof, PREFIX_ROOTS[size])
            assert root_from_inclusion(LEAVES[index], index, size, proof) == PREFIX_ROOTS[size]


def test_generated_consistency_proofs_match_the_rfc_and_verify_for_all_pairs_up_to_40() -> None:
    for size2 in range(1, N + 1):
        for size1 in range(1, size2 + 1):
            STORE.calls.clear()
            proof = consistency_proof(size1, size2, STORE.fetch)
            assert proof == rfc_subproof(size1, LEAVES[:size2], True)
            assert len(STORE.calls) == (1 if size1 < size2 else 0)
            verify_consistency(size1, size2, proof, PREFIX_ROOTS[size1], PREFIX_ROOTS[size2])


def test_fetch_is_asked_only_for_perfect_subtrees_the_log_has_stored() -> None:
    for size in range(1, N + 1):
        for index in range(size):
            for coords in inclusion_proof_nodes(index, size):
                assert all(c in STORE.nodes for c in coords)
                assert all((i + 1) << lvl <= size for lvl, i in coords)
        for size1 in range(1, size + 1):
            for coords in consistency_proof_nodes(size1, size):
                assert all(c in STORE.nodes for c in coords)


def test_a_proof_element_on_the_ragged_edge_is_folded_from_several_stored_nodes() -> None:
    # Leaf 0 of a 7-leaf tree: the top element is MTH(D[4:7]) = H(node(1,2), leaf 6).
    assert inclusion_proof_nodes(0, 7) == [[(0, 1)], [(1, 1)], [(1, 2), (0, 6)]]
    assert consistency_proof_nodes(3, 7) == [[(0, 2)], [(0, 3)], [(1, 0)], [(1, 2), (0, 6)]]


@pytest.mark.parametrize("args", [(0, 0), (3, 3), (4, 3), (-1, 3), (True, 3), (0, 2**64)])
def test_inclusion_proof_generation_validates_its_arguments(args: tuple[int, int]) -> None:
    with pytest.raises(ValueError):
        inclusion_proof_nodes(*args)


@pytest.mark.parametrize("args", [(0, 0), (0, 5), (6, 5), (-1, 5)])
def test_consistency_proof_generation_validates_its_arguments(args: tuple[int, int]) -> None:
    with pytest.raises(ValueError):
        consistency_proof_nodes(*args)


def test_proof_generation_reports_a_node_missing_from_the_store() -> None:
    with pytest.raises(ValueError, match="missing"):
        inclusion_proof(0, 8, lambda coords: {})


def test_generated_proofs_equal_the_valid_vector_proofs() -> None:
    store = Store(VECTOR_LEAVES)
    compared = 0
    for case in INCLUSION:
        if not case["want_error"] and case["tree_size"] <= len(VECTOR_LEAVES):
            proof = inclusion_proof(case["leaf_index"], case["tree_size"], store.fetch)
            assert [p.hex() for p in proof] == case["proof"], case["source"]
            compared += 1
    for case in CONSISTENCY:
        real_roots = len(case["root1"]) == 64 and case["size1"] > 0
        if not case["want_error"] and real_roots and case["size2"] <= len(VECTOR_LEAVES):
            proof = consistency_proof(case["size1"], case["size2"], store.fetch)
            assert [p.hex() for p in proof] == case["proof"], case["source"]
            compared += 1
    assert compared >= 9


def _inclusion_case(case: dict[str, Any]) -> None:
    verify_inclusion(
        h(case["leaf_hash"]),
        case["leaf_index"],
        case["tree_size"],
        [h(p) for p in case["proof"]],
        h(case["root"]),
    )


def _consistency_case(case: dict[str, Any]) -> None:
    verify_consistency(
        case["size1"],
        case["size2"],
        [h(p) for p in case["proof"]],
        h(case["root1"]),
        h(case["root2"]),
    )


@pytest.mark.parametrize("case", INCLUSION, ids=[c["source"] for c in INCLUSION])
def test_every_inclusion_vector_is_accepted_or_refused_as_it_says(case: dict[str, Any]) -> None:
    if case["want_error"]:
        with pytest.raises(ProofError):
            _inclusion_case(case)
    else:
        _inclusion_case(case)


@pytest.mark.parametrize("case", CONSISTENCY, ids=[c["source"] for c in CONSISTENCY])
def test_every_consistency_vector_is_accepted_or_refused_as_it_says(case: dict[str, Any]) -> None:
    if case["want_error"]:
        with pytest.raises(ProofError):
            _consistency_case(case)
    else:
        _consistency_case(case)


def test_it_rejects_a_consistency_proof_from_size_zero() -> None:
    with pytest.raises(ProofError, match="empty tree"):
        verify_consistency(0, 0, [], EMPTY_ROOT, EMPTY_ROOT)
    with pytest.raises(ProofError, match="empty tree"):
        verify_consistency(0, 1, [EMPTY_ROOT], EMPTY_ROOT, VECTOR_ROOTS[1])


def test_it_rejects_a_huge_leaf_index_cleanly() -> None:
    with pytest.raises(ProofError):
        verify_inclusion(VECTOR_LEAVES[0], 2**64 - 1, 8, [], VECTOR_ROOTS[8])
    with pytest.raises(ProofError):
        verify_inclusion(VECTOR_LEAVES[0], 2**70, 2**71, [], VECTOR_ROOTS[8])


def test_it_rejects_hashes_that_are_not_32_bytes() -> None:
    proof = inclusion_proof(1, 2, STORE.fetch)
    with pytest.raises(ProofError, match="32"):
        verify_inclusion(LEAVES[1][:31], 1, 2, proof, PREFIX_ROOTS[2])
    with pytest.raises(ProofError, match="32"):
        verify_inclusion(LEAVES[1], 1, 2, [proof[0] + b"\x00"], PREFIX_ROOTS[2])
    with pytest.raises(ProofError, match="32"):
        verify_inclusion(LEAVES[1], 1, 2, proof, PREFIX_ROOTS[2][:16])


def test_it_rejects_a_proof_for_a_different_leaf_or_tree() -> None:
    proof = inclusion_proof(5, 13, STORE.fetch)
    verify_inclusion(LEAVES[5], 5, 13, proof, PREFIX_ROOTS[13])
    with pytest.raises(ProofError):
        verify_inclusion(LEAVES[6], 5, 13, proof, PREFIX_ROOTS[13])
    with pytest.raises(ProofError):
        verify_inclusion(LEAVES[5], 4, 13, proof, PREFIX_ROOTS[13])
    with pytest.raises(ProofError):
        verify_inclusion(LEAVES[5], 5, 14, proof, PREFIX_ROOTS[14])
    with pytest.raises(ProofError):
        verify_inclusion(LEAVES[5], 5, 13, proof[:-1], PREFIX_ROOTS[13])
    with pytest.raises(ProofError):
        verify_inclusion(LEAVES[5], 5, 13, [*proof, proof[0]], PREFIX_ROOTS[13])


def test_it_rejects_a_consistency_proof_against_a_forked_history() -> None:
    forked = [*LEAVES[:10], leaf_hash(b"rewritten"), *LEAVES[11:20]]
    proof = consistency_proof(12, 20, STORE.fetch)
    verify_consistency(12, 20, proof, PREFIX_ROOTS[12], PREFIX_ROOTS[20])
    with pytest.raises(ProofError):
        verify_consistency(12, 20, proof, mth(forked[:12]), PREFIX_ROOTS[20])
    with pytest.raises(ProofError):
        verify_consistency(12, 20, proof, PREFIX_ROOTS[12], mth(forked))
    with pytest.raises(ProofError):
        verify_consistency(12, 20, [], PREFIX_ROOTS[12], PREFIX_ROOTS[20])
    with pytest.raises(ProofError):
        verify_consistency(20, 12, proof, PREFIX_ROOTS[20], PREFIX_ROOTS[12])
