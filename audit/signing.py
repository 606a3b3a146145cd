"""The checkpoint signing key, from settings."""

import functools
import os
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from tlog.note import NoteSigner, generate_signer, signer_from_string, signer_to_string


@functools.cache
def checkpoint_signer() -> NoteSigner:
    if settings.AUDIT_SIGNING_KEY:
        return signer_from_string(settings.AUDIT_SIGNING_KEY)
    if not settings.AUDIT_SIGNING_KEY_FILE:
        raise ImproperlyConfigured("AUDIT_SIGNING_KEY or AUDIT_SIGNING_KEY_FILE must be set")
    path = Path(settings.AUDIT_SIGNING_KEY_FILE)
    if not path.exists():
        if not settings.DEBUG:
            raise ImproperlyConfigured(f"AUDIT_SIGNING_KEY_FILE {path} does not exist")
        _write_development_key(path)
    return signer_from_string(path.read_text().strip())


def _write_development_key(path: Path) -> None:
    """DEBUG only: a key for this machine, readable by its owner alone."""
    path.parent.mkdir(parents=True, exist_ok=True)
    signer = generate_signer(settings.AUDIT_LOG_ORIGIN)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as key_file:
        key_file.write(signer_to_string(signer) + "\n")


def verifier_key() -> str:
    """The public key string that auditors verify checkpoints with."""
    return checkpoint_signer().verifier_key()
