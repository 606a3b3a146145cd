"""Signing evidence-pack PDFs: PAdES baseline signatures with pyHanko, an RFC 3161 timestamp
when a timestamp server is configured, and the development certificate ``make run`` signs
with.

The signature is an incremental update: the rendered PDF's bytes stay exactly as they were,
followed by a signature field ("ReleaseGate", invisible) whose byte range covers everything
but the signature itself. It is a certification signature allowing no changes (DocMDP P=1).
Poppler's ``pdfsig`` (22.12) then reports "Signature is Valid." and "Total document signed";
after any byte of the signed range changes, "Digest Mismatch."; after anything is appended
(a later incremental update, which leaves the signed bytes intact), "Not total document
signed". Whether the certificate is
trusted is a separate question for the reader's trust store: for a self-signed development
certificate pdfsig says "Certificate issuer is unknown.".
"""

import functools
import hashlib
from datetime import UTC, datetime, timedelta
from io import BytesIO
from typing import Any

from asn1crypto import keys as asn1_keys
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from pyhanko.keys import load_certs_from_pemder_data
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.sign import signers
from pyhanko.sign.fields import MDPPerm, SigSeedSubFilter
from pyhanko.sign.general import SigningError
from pyhanko.sign.timestamps import HTTPTimeStamper, TimestampRequestError
from pyhanko_certvalidator.registry import SimpleCertificateStore

FIELD_NAME = "ReleaseGate"
DEVELOPMENT_VALIDITY = timedelta(days=730)
_DOCUMENT_SIGNING = x509.ObjectIdentifier("1.3.6.1.5.5.7.3.36")  # id-kp-documentSigning, RFC 9336
_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "sha256": hashes.SHA256,
    "sha384": hashes.SHA384,
    "sha512": hashes.SHA512,
}


class PackSigningError(Exception):
    """The PDF could not be signed: unusable key or certificate, or no timestamp."""


class _LoadedKeySigner(signers.SimpleSigner):
    """pyHanko's SimpleSigner parses the private key again for every signature (twice per PDF,
    with the size estimate), and cryptography checks an RSA key on every parse: about 0.15 s
    for RSA-3072. This one signs with the key parsed (and checked) once."""

    def __init__(self, *, private_key: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._private_key = private_key

    def sign_raw(self, data: bytes, digest_algorithm: str) -> bytes:
        key, digest = self._private_key, _HASHES.get(digest_algorithm)
        try:
            mechanism = self.get_signature_mechanism_for_digest(digest_algorithm).signature_algo
        except ValueError:
            mechanism = None
        if digest is not None and mechanism == "rsassa_pkcs1v15" and isinstance(key, rsa.RSAPrivateKey):
            return key.sign(data, padding.PKCS1v15(), digest())
        if digest is not None and mechanism == "ecdsa" and isinstance(key, ec.EllipticCurvePrivateKey):
            return key.sign(data, ec.ECDSA(digest()))
        return bytes(super().sign_raw(data, digest_algorithm))  # PSS, EdDSA…: pyHanko's own way


def _public_der(key: Any) -> bytes:
    return bytes(
        key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    )


@functools.lru_cache(maxsize=4)
def _signer(key_pem: bytes, cert_pem: bytes, chain_pem: bytes, passphrase: bytes | None) -> _LoadedKeySigner:
    """The signer for this key material, loaded and checked once per process."""
    try:
        key = serialization.load_pem_private_key(key_pem, password=passphrase)
        certs = list(load_certs_from_pemder_data(cert_pem))
        chain = list(load_certs_from_pemder_data(chain_pem)) if chain_pem.strip() else []
    except (ValueError, TypeError) as exc:
        raise PackSigningError(f"cannot read the signing key or certificates: {exc}") from exc
    if len(certs) != 1:
        raise PackSigningError(f"the signing certificate must be one certificate, not {len(certs)}")
    cert = x509.load_der_x509_certificate(certs[0].dump())
    # pyHanko would sign with a key of another certificate, and every reader would then report
    # the signature invalid: refuse here, where the cause is clear.
    if _public_der(key) != _public_der(cert):
        raise PackSigningError("the signing key does not belong to the signing certificate")
    pkcs8 = key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return _LoadedKeySigner(
        private_key=key,
        signing_cert=certs[0],
        signing_key=asn1_keys.PrivateKeyInfo.load(pkcs8),
        cert_registry=SimpleCertificateStore.from_certs(chain),  # type: ignore[no-untyped-call]  # unannotated upstream
    )


def certificate_sha256(cert_pem: bytes) -> str:
    """SHA-256 (hex) of the certificate's DER: the fingerprint printed in packs for auditors."""
    return hashlib.sha256(x509.load_pem_x509_certificate(cert_pem).public_bytes(serialization.Encoding.DER)).hexdigest()


def sign_pdf(
    pdf: bytes,
    *,
    key_pem: bytes,
    cert_pem: bytes,
    chain_pem: bytes = b"",
    timestamp_url: str = "",
    reason: str,
    location: str = "",
    key_passphrase: bytes | None = None,
    timestamp_timeout: float = 10.0,
) -> bytes:
    """``pdf`` with a PAdES signature (SHA-256, ETSI.CAdES.detached) by the key and
    certificate, the ``chain_pem`` certificates embedded for validators, and an RFC 3161
    signature timestamp from ``timestamp_url`` when it is set (PAdES B-T; otherwise B-B).

    Raises PackSigningError when it cannot sign or the timestamp server gives no timestamp:
    a pack is never quietly left without the timestamp that was asked for."""
    signer = _signer(key_pem, cert_pem, chain_pem, key_passphrase)
    meta = signers.PdfSignatureMetadata(
        field_name=FIELD_NAME,
        md_algorithm="sha256",
        subfilter=SigSeedSubFilter.PADES,
        # A certification signature that allows no changes (DocMDP P=1): any update appended
        # later, even a visible one that leaves the signed bytes intact, is a modification
        # readers report (Acrobat: "changes have been made"; pdfsig: "Not total document signed").
        certify=True,
        docmdp_permissions=MDPPerm.NO_CHANGES,
        reason=reason,
        location=location or None,
    )
    timestamper = HTTPTimeStamper(timestamp_url, timeout=timestamp_timeout) if timestamp_url else None
    pdf_signer = signers.PdfSigner(meta, signer=signer, timestamper=timestamper)
    try:
        signed = pdf_signer.sign_pdf(IncrementalPdfFileWriter(BytesIO(pdf)), output=BytesIO())
    except TimestampRequestError as exc:
        raise PackSigningError(f"the timestamp server {timestamp_url} gave no timestamp: {exc}") from exc
    except SigningError as exc:
        raise PackSigningError(f"pyHanko could not sign: {exc}") from exc
    return bytes(signed.getvalue())


def sign_manifest(manifest: bytes, *, key_pem: bytes, cert_pem: bytes, key_passphrase: bytes | None = None) -> bytes:
    """A detached signature of the ZIP's manifest by the pack key (RSA PKCS#1 v1.5 or ECDSA,
    SHA-256), which ``python -m tlog.verifier pack`` checks with the pack's certificate."""
    key = _signer(key_pem, cert_pem, b"", key_passphrase)._private_key
    if isinstance(key, rsa.RSAPrivateKey):
        return bytes(key.sign(manifest, padding.PKCS1v15(), hashes.SHA256()))
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return bytes(key.sign(manifest, ec.ECDSA(hashes.SHA256())))
    raise PackSigningError("the pack key must be RSA or ECDSA to sign the manifest")


def generate_development_certificate(
    common_name: str, organisation: str, *, now: datetime | None = None
) -> tuple[bytes, bytes]:
    """A new RSA-3072 key and a self-signed certificate for signing documents, valid two
    years from ``now``: ``(key PEM (PKCS#8, unencrypted), certificate PEM)``.

    For development only: no reader trusts it, so ``pdfsig`` shows the signature valid but
    the certificate not trusted. Production uses a certificate from the bank's CA."""
    now = now or datetime.now(UTC)
    key = rsa.generate_private_key(public_exponent=65537, key_size=3072)
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, organisation),
        ]
    )
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + DEVELOPMENT_VALIDITY)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=True,  # nonRepudiation
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([_DOCUMENT_SIGNING, ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return key_pem, cert.public_bytes(serialization.Encoding.PEM)
