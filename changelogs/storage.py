"""Content-addressed storage of evidence files, through Django's ``STORAGES["evidence"]``
(the filesystem by default, S3-compatible object storage in production).

A file's key is its SHA-256, so the same bytes are stored once, a stored file can be checked
against its key at any time, and nothing ever overwrites a file with different bytes.

A write never leaves a lie behind (issue 19): the bytes go to a temporary name, are flushed to
the disk and read back, and only bytes that hash to what was meant are moved into place, in one
rename. A key that already exists is trusted only after its bytes are read and hashed: a damaged
object (a disk that filled up under an older version, a hand edit) is replaced by the next upload
of the same bytes. A full disk ends the request with ``507 storage_full`` and no partial file.
"""

import errno
import hashlib
import os
import secrets
from pathlib import Path

from django.core.files.base import ContentFile
from django.core.files.storage import FileSystemStorage, Storage, storages

from core.errors import CommonError, InsufficientStorage


class EvidenceCorrupted(Exception):
    """The stored bytes no longer hash to their key."""


class StoredWrongBytes(Exception):
    """What storage holds after a write is not what was written (a device that lies, an S3
    upload cut short): the write is undone and the caller fails."""


_FULL = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}
_CHUNK = 1 << 20


def evidence_storage() -> Storage:
    return storages["evidence"]


def blob_key(sha256: str) -> str:
    return f"sha256/{sha256[:2]}/{sha256[2:4]}/{sha256}"


def storage_full(error: OSError) -> bool:
    return error.errno in _FULL


def _full() -> InsufficientStorage:
    return InsufficientStorage(
        CommonError.STORAGE_FULL, "The evidence store is full; nothing was recorded. Try again when space is freed."
    )


def stored_sha256(storage: Storage, key: str) -> str | None:
    """The SHA-256 of what ``key`` holds now, None when it holds nothing."""
    try:
        with storage.open(key, "rb") as stored:
            digest = hashlib.sha256()
            while chunk := stored.read(_CHUNK):
                digest.update(chunk)
    except FileNotFoundError:
        return None
    except OSError:  # S3 and others raise their own errors for a missing object
        if not storage.exists(key):
            return None
        raise
    return digest.hexdigest()


def stored_write(storage: Storage, key: str, data: bytes, *, sha256: str | None = None) -> str:
    """Put ``data`` under ``key`` so that the key holds either its old content or exactly
    ``data``, never a part of it. Returns the SHA-256 of ``data``. Raises
    ``InsufficientStorage`` (507) when the disk is full, leaving no partial file."""
    sha256 = sha256 or hashlib.sha256(data).hexdigest()
    try:
        if isinstance(storage, FileSystemStorage):
            _write_file(storage, key, data, sha256)
        else:
            _write_object(storage, key, data, sha256)
    except OSError as error:
        if storage_full(error):
            raise _full() from error
        raise
    return sha256


def _write_file(storage: FileSystemStorage, key: str, data: bytes, sha256: str) -> None:
    final = Path(storage.path(key))
    directory_mode = storage.directory_permissions_mode or 0o750
    final.parent.mkdir(mode=directory_mode, parents=True, exist_ok=True)
    temporary = final.with_name(f".{final.name}.{secrets.token_hex(8)}.partial")
    mode = storage.file_permissions_mode or 0o640
    try:
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        with os.fdopen(descriptor, "wb") as written:
            written.write(data)
            written.flush()
            os.fsync(written.fileno())
        if _file_sha256(temporary) != sha256:
            raise StoredWrongBytes(f"the bytes written to {key} do not read back as {sha256}")
        os.replace(temporary, final)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    _fsync_directory(final.parent)


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stored:
        while chunk := stored.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _fsync_directory(directory: Path) -> None:
    """The rename is durable only once the directory is on disk too."""
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _write_object(storage: Storage, key: str, data: bytes, sha256: str) -> None:
    """Object stores replace an object in one operation (a failed upload leaves the old one);
    what is there afterwards is read back and checked, and removed if it is wrong."""
    saved = storage.save(key, ContentFile(data))
    if saved != key:  # a backend that renames instead of overwriting; keep one copy under the key
        storage.delete(saved)
    if stored_sha256(storage, key) != sha256:
        storage.delete(key)
        raise StoredWrongBytes(f"the object stored under {key} does not hash to {sha256}")


def blob_put(data: bytes) -> tuple[str, str]:
    """Store the bytes (once) and return their SHA-256 and storage key. An existing key is
    kept only when its bytes hash to it; otherwise the new upload repairs it."""
    sha256 = hashlib.sha256(data).hexdigest()
    key = blob_key(sha256)
    storage = evidence_storage()
    if stored_sha256(storage, key) != sha256:
        stored_write(storage, key, data, sha256=sha256)
    return sha256, key


def blob_read(key: str, *, sha256: str) -> bytes:
    """The stored bytes, checked against their hash before anyone relies on them."""
    try:
        with evidence_storage().open(key, "rb") as stored:
            data: bytes = stored.read()
    except FileNotFoundError as error:
        raise EvidenceCorrupted(f"stored evidence {key} is missing") from error
    if hashlib.sha256(data).hexdigest() != sha256:
        raise EvidenceCorrupted(f"stored evidence {key} does not hash to {sha256}")
    return data
