"""RFC 6962 / RFC 9162 Merkle tree: hashing, the append-only frontier, proofs, verification.

This is the pure core of the tamper-evident audit log. It is stdlib only and has no Django
import, because the standalone verifier (``python -m tlog.verifier``) ships it to auditors
who must be able to read and run it without the service.

Conventions
-----------
* Leaf hash ``SHA-256(0x00 || data)``, node hash ``SHA-256(0x01 || left || right)``, and the
  root of the empty tree ``SHA-256("")`` (RFC 6962 section 2.1). The 0x00/0x01 prefixes keep a
  leaf from ever being mistaken for an interior node (second-preimage resistance).
* A node is named by coordinates ``(level, index)``: level 0 are the leaf hashes, and the node
  at level ``L`` index ``I`` is the root of the *perfect* subtree over leaves
  ``[I * 2**L, (I + 1) * 2**L)``. Only perfect subtrees ever get coordinates: they never
  change once complete, so the service can store each one exactly once. Nodes on the ragged
  right edge of a tree whose size is not a power of two ("ephemeral" nodes) are never
  stored; they are recomputed by folding perfect subtrees right to left.
* Proof elements are in RFC 6962 / RFC 9162 order (from the leaf or old root upwards).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "MAX_TREE_SIZE",
    "Coord",
    "Fetch",
    "Frontier",
    "ProofError",
    "consistency_proof",
    "consistency_proof_nodes",
    "fold_right",
    "inclusion_proof",
    "inclusion_proof_nodes",
    "leaf_hash",
    "node_hash",
    "range_coords",
    "root_from_inclusion",
    "root_of",
    "verify_consistency",
    "verify_inclusion",
]

HASH_SIZE = 32
"""Every leaf hash, node hash, proof element and root is exactly this many bytes."""

MAX_TREE_SIZE = 2**64 - 1
"""Sizes and indices are uint64 in RFC 9162 and in every other implementation; anything
larger cannot come from an honest log, so it is refused rather than computed on."""

EMPTY_ROOT = hashlib.sha256(b"").digest()
"""MTH({}) = SHA-256 of the empty string (RFC 6962 section 2.1)."""

Coord = tuple[int, int]
"""``(level, index)`` of a perfect subtree; level 0 is a leaf hash."""

Fetch = Callable[[Sequence[Coord]], Mapping[Coord, bytes]]
"""Looks up stored node hashes by coordinates, in one round trip (one database query)."""


class ProofError(Exception):
    """A proof, hash or root did not verify. The message says briefly why."""


def leaf_hash(data: bytes) -> bytes:
    """Hash of one log entry: SHA-256(0x00 || data)."""
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """Hash of an interior node: SHA-256(0x01 || left || right)."""
    return hashlib.sha256(b"\x01" + left + right).digest()


def fold_right(hashes: Sequence[bytes]) -> bytes:
    """Combine the roots of consecutive perfect subtrees, largest (leftmost) first.

    Folding from the right is exactly how RFC 6962 hashes a range whose size is not a power
    of two: the left child is the largest perfect subtree, the right child is the rest.
    """
    if not hashes:
        raise ValueError("nothing to fold")
    acc = hashes[-1]
    for h in reversed(hashes[:-1]):
        acc = node_hash(h, acc)
    return acc


def root_of(leaf_hashes: Sequence[bytes]) -> bytes:
    """MTH of a whole list of leaf hashes; the reference the incremental code is tested by.

    Bottom-up, pairing neighbours and promoting an odd last node unchanged: this builds the
    same tree as RFC 6962's recursive split at the largest power of two, in linear time and
    without recursion.
    """
    if not leaf_hashes:
        return EMPTY_ROOT
    level = list(leaf_hashes)
    for h in level:
        _check_hash(h, "leaf hash", ValueError)
    sha256 = hashlib.sha256
    while len(level) > 1:
        paired = [sha256(b"\x01" + level[i] + level[i + 1]).digest() for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            paired.append(level[-1])
        level = paired
    return level[0]


def range_coords(start: int, end: int) -> list[Coord]:
    """The perfect subtrees covering leaves ``[start, end)``, largest (leftmost) first.

    ``start`` must be aligned as a node of the tree, i.e. a multiple of the smallest power of
    two >= ``end - start``; every range that appears in an RFC 6962 proof is. Then
    ``fold_right`` of these subtrees' hashes is ``MTH(D[start:end])``. With ``start = 0`` this
    is the frontier of a tree of size ``end``.
    """
    _check_count(start, "start", ValueError)
    _check_count(end, "end", ValueError)
    if start >= end:
        raise ValueError(f"empty range [{start}, {end})")
    width = end - start
    if start % (1 << (width - 1).bit_length()):
        raise ValueError(f"range [{start}, {end}) is not aligned to a tree node")
    coords: list[Coord] = []
    pos = start
    for level in range(width.bit_length() - 1, -1, -1):
        if width >> level & 1:
            coords.append((level, pos >> level))
            pos += 1 << level
    return coords


@dataclass
class Frontier:
    """The right edge of the tree (the compact range ``[0, size)``), enough to append.

    ``hashes`` are the roots of the perfect subtrees that make up the tree, largest first,
    one per set bit of ``size``. Appending a leaf merges equal-sized subtrees like a binary
    counter carrying, so it costs O(log n) hashes (amortised 2) and never needs old leaves.
    The service keeps one of these per log and stores the nodes ``append`` reports, which
    are then all it needs to serve any proof.
    """

    size: int = 0
    hashes: list[bytes] = field(default_factory=list)

    def __post_init__(self) -> None:
        _check_count(self.size, "size", ValueError)
        if len(self.hashes) != self.size.bit_count():
            raise ValueError(
                f"a frontier of size {self.size} has {self.size.bit_count()} hashes, not {len(self.hashes)}"
            )
        for h in self.hashes:
            _check_hash(h, "frontier hash", ValueError)
        self.hashes = [bytes(h) for h in self.hashes]

    def append(self, leaf_hash: bytes) -> list[tuple[int, int, bytes]]:
        """Add one leaf; return the interior nodes it completed as ``(level, index, hash)``.

        The nodes are in increasing level, all with level >= 1 (the leaf itself is the
        caller's level-0 node ``(0, old size)``). Each node is reported exactly once over
        the life of the log, so the caller can insert them without conflicts.
        """
        _check_hash(leaf_hash, "leaf hash", ValueError)
        if self.size >= MAX_TREE_SIZE:
            raise ValueError("tree is full")
        index = self.size
        acc = bytes(leaf_hash)
        completed: list[tuple[int, int, bytes]] = []
        level = 0
        while index >> level & 1:
            acc = hashlib.sha256(b"\x01" + self.hashes.pop() + acc).digest()
            level += 1
            completed.append((level, index >> level, acc))
        self.hashes.append(acc)
        self.size = index + 1
        return completed

    def append_subtree(self, level: int, root: bytes) -> list[tuple[int, int, bytes]]:
        """Add a whole perfect subtree of ``2**level`` leaves, given its root hash.

        The tree's size must be a multiple of ``2**level`` (the subtree starts at a node
        boundary). The frontier and the reported nodes are exactly those of appending the
        subtree's leaves one by one, except the nodes inside the subtree, which the caller
        has. ``append_subtree(0, h)`` is ``append(h)``.
        """
        _check_hash(root, "subtree root", ValueError)
        if isinstance(level, bool) or not isinstance(level, int) or not 0 <= level < 64:
            raise ValueError(f"subtree level must be an integer from 0 to 63, not {level!r}")
        width = 1 << level
        if self.size % width:
            raise ValueError(f"a subtree of {width} leaves cannot start at leaf {self.size}")
        if self.size + width > MAX_TREE_SIZE:
            raise ValueError("tree is full")
        index = self.size >> level
        acc = bytes(root)
        completed: list[tuple[int, int, bytes]] = []
        while index & 1:
            acc = hashlib.sha256(b"\x01" + self.hashes.pop() + acc).digest()
            index >>= 1
            level += 1
            completed.append((level, index, acc))
        self.hashes.append(acc)
        self.size += width
        return completed

    def extend(self, leaf_hashes: Iterable[bytes]) -> list[tuple[int, int, bytes]]:
        """Append several leaves; return every interior node they completed, in order."""
        completed: list[tuple[int, int, bytes]] = []
        for h in leaf_hashes:
            completed.extend(self.append(h))
        return completed

    def root(self) -> bytes:
        """The tree head hash at the current size (EMPTY_ROOT when empty)."""
        return fold_right(self.hashes) if self.hashes else EMPTY_ROOT

    def copy(self) -> Frontier:
        """An independent copy, e.g. to try appends before committing them."""
        return Frontier(self.size, list(self.hashes))

    def to_json(self) -> dict[str, Any]:
        """``{"size": n, "hashes": [hex, ...]}`` for storing beside the log head."""
        return {"size": self.size, "hashes": [h.hex() for h in self.hashes]}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Frontier:
        """Inverse of ``to_json``: TypeError for wrong JSON types, ValueError for bad values."""
        if not isinstance(data, Mapping):
            raise TypeError("frontier must be a JSON object")
        size = data.get("size")
        hashes = data.get("hashes")
        if not isinstance(size, int) or isinstance(size, bool):
            raise TypeError("frontier size must be an integer")
        if not isinstance(hashes, list) or not all(isinstance(h, str) for h in hashes):
            raise TypeError("frontier hashes must be a list of hex strings")
        return cls(size, [_hex_hash(h) for h in hashes])


# --- Proof generation -------------------------------------------------------------------
#
# A proof element is MTH(D[a:b]) for some node-aligned range [a, b). We describe it as the
# perfect subtrees covering that range (range_coords), so the caller can fetch every stored
# hash a proof needs in one query and we rebuild ephemeral right-edge nodes by folding.


def _inclusion_ranges(index: int, size: int) -> list[tuple[int, int]]:
    """PATH(m, D[0:n]) of RFC 6962 section 2.1.1, as leaf ranges, leaf level first."""
    ranges: list[tuple[int, int]] = []
    lo, hi = 0, size
    while hi - lo > 1:
        k = 1 << ((hi - lo - 1).bit_length() - 1)  # largest power of two < hi - lo
        if index < lo + k:
            ranges.append((lo + k, hi))
            hi = lo + k
        else:
            ranges.append((lo, lo + k))
            lo += k
    ranges.reverse()
    return ranges


def _consistency_ranges(size1: int, size2: int) -> list[tuple[int, int]]:
    """PROOF(m, D[0:n]) = SUBPROOF(m, D[0:n], true) of RFC 6962 section 2.1.2, as ranges."""
    ranges: list[tuple[int, int]] = []
    lo, hi, m, complete = 0, size2, size1, True
    while m != hi - lo:
        k = 1 << ((hi - lo - 1).bit_length() - 1)  # largest power of two < hi - lo
        if m <= k:
            ranges.append((lo + k, hi))
            hi = lo + k
        else:
            ranges.append((lo, lo + k))
            lo += k
            m -= k
            complete = False
    if not complete:
        ranges.append((lo, hi))
    ranges.reverse()
    return ranges


def inclusion_proof_nodes(index: int, size: int) -> list[list[Coord]]:
    """Which stored nodes make up each element of the inclusion proof of leaf ``index``.

    Element ``i`` of the proof is ``fold_right`` of the hashes at the coordinates in list
    ``i``. Raises ValueError unless ``0 <= index < size``.
    """
    _check_count(index, "index", ValueError)
    _check_count(size, "size", ValueError)
    if index >= size:
        raise ValueError(f"leaf index {index} is not below tree size {size}")
    return [range_coords(a, b) for a, b in _inclusion_ranges(index, size)]


def consistency_proof_nodes(size1: int, size2: int) -> list[list[Coord]]:
    """Which stored nodes make up each element of the consistency proof size1 -> size2.

    Same shape as ``inclusion_proof_nodes``. Raises ValueError unless
    ``0 < size1 <= size2`` (a proof from the empty tree proves nothing).
    """
    _check_count(size1, "size1", ValueError)
    _check_count(size2, "size2", ValueError)
    if size1 == 0:
        raise ValueError("a consistency proof from the empty tree proves nothing")
    if size1 > size2:
        raise ValueError(f"size1 {size1} is greater than size2 {size2}")
    return [range_coords(a, b) for a, b in _consistency_ranges(size1, size2)]


def _assemble(elements: list[list[Coord]], fetch: Fetch) -> list[bytes]:
    wanted = sorted({c for coords in elements for c in coords})
    if not wanted:
        return []
    found = fetch(wanted)
    proof: list[bytes] = []
    for coords in elements:
        hashes: list[bytes] = []
        for c in coords:
            h = found.get(c)
            if h is None:
                raise ValueError(f"node {c} is missing from the store")
            _check_hash(h, f"stored node {c}", ValueError)
            hashes.append(bytes(h))
        proof.append(fold_right(hashes))
    return proof


def inclusion_proof(index: int, size: int, fetch: Fetch) -> list[bytes]:
    """The RFC 9162 inclusion proof of leaf ``index`` in the tree of ``size`` leaves.

    ``fetch`` is called at most once, with every (level, index) the proof needs (sorted,
    no duplicates), and not at all when the proof is empty (size 1).
    """
    return _assemble(inclusion_proof_nodes(index, size), fetch)


def consistency_proof(size1: int, size2: int, fetch: Fetch) -> list[bytes]:
    """The RFC 9162 consistency proof between tree sizes ``size1`` and ``size2``.

    ``fetch`` as for ``inclusion_proof``; not called when the sizes are equal.
    """
    return _assemble(consistency_proof_nodes(size1, size2), fetch)


# --- Verification (RFC 9162 sections 2.1.3.2 and 2.1.4.2) ------------------------------


def root_from_inclusion(leaf_hash: bytes, index: int, size: int, proof: Sequence[bytes]) -> bytes:
    """The root an inclusion proof implies; ProofError if the proof has the wrong shape."""
    _check_count(index, "leaf index", ProofError)
    _check_count(size, "tree size", ProofError)
    if index >= size:
        raise ProofError(f"leaf index {index} is not below tree size {size}")
    _check_hash(leaf_hash, "leaf hash", ProofError)
    for i, p in enumerate(proof):
        _check_hash(p, f"proof element {i}", ProofError)
    fn, sn, r = index, size - 1, leaf_hash
    for p in proof:
        if sn == 0:
            raise ProofError("inclusion proof is too long")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("inclusion proof is too short")
    return r


def verify_inclusion(leaf_hash: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes) -> None:
    """Check that ``leaf_hash`` is leaf ``index`` of the tree of ``size`` with ``root``.

    Raises ProofError on any failure, including malformed arguments (an index at or past
    the size, hashes that are not 32 bytes), so callers need to catch one exception.
    """
    _check_hash(root, "root", ProofError)
    computed = root_from_inclusion(leaf_hash, index, size, proof)
    if not hmac.compare_digest(computed, root):
        raise ProofError("inclusion proof does not lead to the expected root")


def verify_consistency(size1: int, size2: int, proof: Sequence[bytes], root1: bytes, root2: bytes) -> None:
    """Check that the tree of ``size2``/``root2`` extends the tree of ``size1``/``root1``.

    Raises ProofError on any failure. Following the shared test vectors: a proof from size 0
    is refused (it proves nothing); between equal sizes the proof must be empty and the
    roots equal, and nothing else is checked.
    """
    _check_count(size1, "size1", ProofError)
    _check_count(size2, "size2", ProofError)
    if size1 == 0:
        raise ProofError("a consistency proof from the empty tree proves nothing")
    if size2 < size1:
        raise ProofError(f"size2 {size2} is smaller than size1 {size1}")
    if size1 == size2:
        if proof:
            raise ProofError("proof between equal tree sizes must be empty")
        if not isinstance(root1, bytes) or not isinstance(root2, bytes):
            raise ProofError("roots must be bytes")
        if not hmac.compare_digest(root1, root2):
            raise ProofError("roots differ at equal tree sizes")
        return
    _check_hash(root1, "root1", ProofError)
    _check_hash(root2, "root2", ProofError)
    for i, p in enumerate(proof):
        _check_hash(p, f"proof element {i}", ProofError)
    if not proof:
        raise ProofError("consistency proof is empty")

    path = list(proof)
    if size1 & (size1 - 1) == 0:  # size1 is a power of two: the old root is a node itself
        path.insert(0, root1)
    fn, sn = size1 - 1, size2 - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise ProofError("consistency proof is too long")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("consistency proof is too short")
    if not hmac.compare_digest(fr, root1):
        raise ProofError("consistency proof does not lead to the old root")
    if not hmac.compare_digest(sr, root2):
        raise ProofError("consistency proof does not lead to the new root")


# --- Argument checks --------------------------------------------------------------------


def _check_count(value: object, what: str, error: type[Exception]) -> None:
    if not isinstance(value, int) or isinstance(value, bool):
        raise error(f"{what} must be an integer")
    if not 0 <= value <= MAX_TREE_SIZE:
        raise error(f"{what} {value} is out of range")


def _check_hash(value: object, what: str, error: type[Exception]) -> None:
    if not isinstance(value, bytes | bytearray | memoryview):
        raise error(f"{what} must be bytes")
    if len(value) != HASH_SIZE:
        raise error(f"{what} is {len(value)} bytes, not {HASH_SIZE}")


def _hex_hash(text: str) -> bytes:
    if len(text) != 2 * HASH_SIZE or not all(c in "0123456789abcdefABCDEF" for c in text):
        raise ValueError(f"not a {HASH_SIZE}-byte hex hash: {text[:80]!r}")
    return bytes.fromhex(text)
