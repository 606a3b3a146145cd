"""The audit log's pure kernel: Merkle tree and proofs, signed notes and checkpoints, witness
cosignatures, canonical JSON, the standalone verifier and the witness.

Standard library and ``cryptography`` only; it imports no app and no Django, so the
``releasegate-verify`` distribution (verify/) and the witness ship it alone. The ``audit``
app builds the stored log on it.
"""
