"""Content-addressed storage of evidence files, through Django's ``STORAGES["evidence"]``
(the filesystem by default, S3-compatible object storage in production).

A file's key is its SHA-256, so the same bytes are stored once, a stored file can be checked
against its key at any time, and nothing ever overwrites a file with different bytes.
"""

import hashlib

from django.core.files.base import ContentFile
from django.core.files.storage import Storage, storages


class EvidenceCorrupted(Exception):
    """The stored bytes no longer hash to their key."""


def evidence_storage() -> Storage:
    return storages["evidence"]


def blob_key(sha256: str) -> str:
    return f"sha256/{sha256[:2]}/{sha256[2:4]}/{sha256}"


def blob_put(data: bytes) -> tuple[str, str]:
    """Store the bytes (once) and return their SHA-256 and storage key."""
    sha256 = hashlib.sha256(data).hexdigest()
    key = blob_key(sha256)
    storage = evidence_storage()
    if not storage.exists(key):
        saved = storage.save(key, ContentFile(data))
        if saved != key:  # a concurrent upload of the same bytes won the race; keep one copy
            storage.delete(saved)
    return sha256, key


def blob_read(key: str, *, sha256: str) -> bytes:
    """The stored bytes, checked against their hash before anyone relies on them."""
    with evidence_storage().open(key, "rb") as stored:
        data: bytes = stored.read()
    if hashlib.sha256(data).hexdigest() != sha256:
        raise EvidenceCorrupted(f"stored evidence {key} does not hash to {sha256}")
    return data
