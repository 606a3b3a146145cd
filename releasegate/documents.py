"""The organisation's document-signing key: evidence packs (packs), the access review and the
incident learning report are PDFs signed with it (releasegate.pdfsign), so pdfsig verifies each."""

import functools
import os
from pathlib import Path

from django.conf import settings

from releasegate.pdfsign import generate_development_certificate, sign_pdf


@functools.cache
def signing_material() -> tuple[bytes, bytes, bytes]:
    """(key PEM, certificate PEM, chain PEM) from settings. With DEBUG a development key and a
    self-signed certificate are made on first use (what `make run` relies on)."""
    key_path, cert_path = Path(settings.PACK_SIGNING_KEY_FILE), Path(settings.PACK_SIGNING_CERT_FILE)
    if settings.DEBUG and not key_path.exists() and not cert_path.exists():
        key_pem, cert_pem = generate_development_certificate(
            f"{settings.ORGANISATION_NAME} evidence packs (development)", settings.ORGANISATION_NAME
        )
        key_path.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "wb") as key_file:
            key_file.write(key_pem)
        cert_path.write_bytes(cert_pem)
    chain = Path(settings.PACK_SIGNING_CHAIN_FILE).read_bytes() if settings.PACK_SIGNING_CHAIN_FILE else b""
    return key_path.read_bytes(), cert_path.read_bytes(), chain


def key_passphrase() -> bytes | None:
    return settings.PACK_SIGNING_KEY_PASSPHRASE.encode() or None


def sign_document(pdf: bytes, reason: str) -> bytes:
    """The PDF signed with the organisation's key (and timestamped when PACK_TIMESTAMP_URL is set)."""
    key_pem, cert_pem, chain_pem = signing_material()
    return sign_pdf(
        pdf,
        key_pem=key_pem,
        cert_pem=cert_pem,
        chain_pem=chain_pem,
        timestamp_url=settings.PACK_TIMESTAMP_URL,
        reason=reason,
        location=settings.ORGANISATION_NAME,
        key_passphrase=key_passphrase(),
    )
