"""Signing pack PDFs: poppler's pdfsig must call an intact pack valid and a pack with one changed
byte invalid; with a timestamp server, the signature carries an RFC 3161 timestamp.

pdfsig (poppler 22.12) prints "Signature Validation: Signature is Valid." for an intact
signature and "Signature Validation: Digest Mismatch." when a byte of the signed range changed
(its word for invalid: the document's digest no longer matches the signed one). For the
self-signed development certificate it adds "Certificate Validation: Certificate issuer is
unknown.", which is about trust, not integrity: the tests assert on the signature line only.
"""

import re
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from io import BytesIO
from pathlib import Path
from typing import Any

import pytest
from asn1crypto import keys as asn1_keys
from asn1crypto import tsp
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.timestamps import DummyTimeStamper

from packs.render.howto import SIGNATURE_VALID
from packs.render.pdf.changelog import render_changelog_pdf
from releasegate.pdfsign import (
    FIELD_NAME,
    PackSigningError,
    certificate_sha256,
    generate_development_certificate,
    sign_pdf,
)
from tests.local_server import POLL_SECONDS
from tests.packs.support import make_changelog_pack, pdfsig

DIGEST_MISMATCH = "Signature Validation: Digest Mismatch."
NOW = datetime(2026, 11, 28, 10, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def key_and_cert() -> tuple[bytes, bytes]:
    return generate_development_certificate("Release Gate evidence packs (development)", "Example Bank plc", now=NOW)


@pytest.fixture(scope="module")
def unsigned() -> bytes:
    return render_changelog_pdf(make_changelog_pack()[0])


@pytest.fixture(scope="module")
def signed(unsigned: bytes, key_and_cert: tuple[bytes, bytes]) -> bytes:
    key, cert = key_and_cert
    return sign_pdf(unsigned, key_pem=key, cert_pem=cert, reason="Evidence pack", location="London")


def _signature_line(output: str) -> str:
    return next(line.strip(" -") for line in output.splitlines() if "Signature Validation" in line)


def test_pdfsig_says_the_signature_of_a_signed_pack_is_valid(signed: bytes, tmp_path: Path) -> None:
    result = pdfsig(signed, tmp_path)
    assert _signature_line(result.stdout) == SIGNATURE_VALID, result.stdout
    assert f"Signature Field Name: {FIELD_NAME}" in result.stdout
    assert "Signature Type: ETSI.CAdES.detached" in result.stdout  # PAdES
    assert "Signing Hash Algorithm: SHA-256" in result.stdout
    assert "Total document signed" in result.stdout
    assert "Signer Certificate Common Name: Release Gate evidence packs (development)" in result.stdout


def test_signing_appends_to_the_rendered_bytes_and_changes_none_of_them(unsigned: bytes, signed: bytes) -> None:
    assert signed.startswith(unsigned)
    assert len(signed) > len(unsigned)


@pytest.mark.parametrize("where", [0.1, 0.5, 0.9])
@pytest.mark.requirement("PR-18")
def test_one_changed_byte_in_the_signed_range_makes_the_signature_invalid(
    unsigned: bytes, signed: bytes, tmp_path: Path, where: float
) -> None:
    # A byte inside a compressed stream: the file still parses, only the digest differs.
    found = re.compile(rb"\nstream\r?\n").search(unsigned, int(len(unsigned) * where))
    assert found is not None
    tampered = bytearray(signed)
    tampered[found.end() + 10] ^= 0x01
    result = pdfsig(bytes(tampered), tmp_path)
    assert _signature_line(result.stdout) == DIGEST_MISMATCH, result.stdout


def test_one_changed_byte_in_the_visible_text_of_the_document_info_makes_it_invalid(
    signed: bytes, tmp_path: Path
) -> None:
    at = signed.index(b"(Example Bank plc)") + 1
    tampered = signed[:at] + b"F" + signed[at + 1 :]
    assert _signature_line(pdfsig(tampered, tmp_path).stdout) == DIGEST_MISMATCH


def test_a_key_that_is_not_the_certificates_is_refused(unsigned: bytes, key_and_cert: tuple[bytes, bytes]) -> None:
    other_key, _ = generate_development_certificate("someone else", "Example Bank plc")
    with pytest.raises(PackSigningError, match="does not belong"):
        sign_pdf(unsigned, key_pem=other_key, cert_pem=key_and_cert[1], reason="x")


def test_unreadable_key_material_is_refused(unsigned: bytes, key_and_cert: tuple[bytes, bytes]) -> None:
    with pytest.raises(PackSigningError, match="cannot read"):
        sign_pdf(unsigned, key_pem=b"not a key", cert_pem=key_and_cert[1], reason="x")


def test_the_development_certificate_is_a_two_year_document_signing_certificate(
    key_and_cert: tuple[bytes, bytes],
) -> None:
    key_pem, cert_pem = key_and_cert
    cert = x509.load_pem_x509_certificate(cert_pem)
    usage = cert.extensions.get_extension_for_class(x509.KeyUsage)
    assert usage.critical
    assert usage.value.digital_signature
    assert usage.value.content_commitment  # nonRepudiation
    assert not usage.value.key_cert_sign
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert cert.not_valid_after_utc - cert.not_valid_before_utc >= timedelta(days=730)
    assert cert.not_valid_before_utc <= NOW
    assert cert.subject == cert.issuer
    assert cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == "Example Bank plc"
    key = serialization.load_pem_private_key(key_pem, password=None)
    assert key.public_key().public_numbers() == cert.public_key().public_numbers()  # type: ignore[union-attr]
    assert len(certificate_sha256(cert_pem)) == 64


def test_a_certificate_issued_by_a_ca_is_signed_with_its_chain_embedded(unsigned: bytes, tmp_path: Path) -> None:
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Example Bank document CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(1)
        .not_valid_before(NOW - timedelta(days=1))
        .not_valid_after(NOW + timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Release Gate packs")]))
        .issuer_name(ca_name)
        .public_key(leaf_key.public_key())
        .serial_number(2)
        .not_valid_before(NOW - timedelta(days=1))
        .not_valid_after(NOW + timedelta(days=365))
        .add_extension(
            x509.KeyUsage(True, True, False, False, False, False, False, False, False),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )
    signed = sign_pdf(
        unsigned,
        key_pem=leaf_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ),
        cert_pem=leaf.public_bytes(serialization.Encoding.PEM),
        chain_pem=ca.public_bytes(serialization.Encoding.PEM),
        reason="Evidence pack",
    )
    assert _signature_line(pdfsig(signed, tmp_path).stdout) == SIGNATURE_VALID
    embedded = PdfFileReader(BytesIO(signed)).embedded_signatures[0]
    assert {c.subject.human_friendly for c in embedded.other_embedded_certs} == {
        "Common Name: Example Bank document CA"
    }


# --- RFC 3161 timestamps --------------------------------------------------------------------


class _TimestampAuthority:
    """An RFC 3161 server on 127.0.0.1, answering with pyHanko's test time-stamper."""

    def __init__(self) -> None:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)  # pyHanko's test TSA is RSA-only
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Test TSA")])
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(7)
            .not_valid_before(NOW - timedelta(days=1))
            .not_valid_after(NOW + timedelta(days=365))
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.TIME_STAMPING]), critical=True)
            .sign(key, hashes.SHA256())
        )
        stamper = DummyTimeStamper(
            tsa_cert=asn1_x509.Certificate.load(cert.public_bytes(serialization.Encoding.DER)),
            tsa_key=asn1_keys.PrivateKeyInfo.load(
                key.private_bytes(
                    serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
                )
            ),
            fixed_dt=NOW,
        )
        self.requests = 0
        authority = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                authority.requests += 1
                request = tsp.TimeStampReq.load(self.rfile.read(int(self.headers["Content-Length"])))
                body = stamper.request_tsa_response(request).dump()
                self.send_response(200)
                self.send_header("Content-Type", "application/timestamp-reply")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/tsa"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(POLL_SECONDS,), daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _timestamp_token(signed: bytes) -> Any:
    """The RFC 3161 token in the signature's unsigned attributes (id-aa-signatureTimeStampToken)."""
    signer_info = PdfFileReader(BytesIO(signed)).embedded_signatures[0].signer_info
    for attribute in signer_info["unsigned_attrs"] or []:
        if attribute["type"].native == "signature_time_stamp_token":
            return attribute["values"][0]
    return None


@pytest.fixture
def timestamp_authority() -> Iterator[_TimestampAuthority]:
    authority = _TimestampAuthority()
    yield authority
    authority.stop()


def test_with_a_timestamp_server_the_signature_carries_an_rfc_3161_timestamp(
    unsigned: bytes, key_and_cert: tuple[bytes, bytes], timestamp_authority: _TimestampAuthority, tmp_path: Path
) -> None:
    key, cert = key_and_cert
    signed = sign_pdf(
        unsigned, key_pem=key, cert_pem=cert, timestamp_url=timestamp_authority.url, reason="Evidence pack"
    )
    assert timestamp_authority.requests >= 1
    token = _timestamp_token(signed)
    assert token is not None
    assert token["content"]["encap_content_info"]["content"].parsed["gen_time"].native == NOW
    assert _signature_line(pdfsig(signed, tmp_path).stdout) == SIGNATURE_VALID


def test_without_a_timestamp_server_there_is_no_timestamp(signed: bytes) -> None:
    assert _timestamp_token(signed) is None


def test_a_timestamp_server_that_does_not_answer_fails_the_signing(
    unsigned: bytes, key_and_cert: tuple[bytes, bytes], timestamp_authority: _TimestampAuthority
) -> None:
    url = timestamp_authority.url
    timestamp_authority.stop()
    with pytest.raises(PackSigningError, match="gave no timestamp"):
        sign_pdf(unsigned, key_pem=key_and_cert[0], cert_pem=key_and_cert[1], timestamp_url=url, reason="x")


def _with_visible_text_appended(pdf: bytes) -> bytes:
    """What a forger does without the key: an incremental update drawing text on page 1. The
    signed bytes stay intact, so the signature alone still verifies."""
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
    from pyhanko.stamp import TextStamp, TextStampStyle

    writer = IncrementalPdfFileWriter(BytesIO(pdf))
    TextStamp(writer, TextStampStyle(stamp_text="APPROVED BY THE BOARD")).apply(0, 50, 700)
    out = BytesIO()
    writer.write(out)
    return out.getvalue()


def test_a_visible_update_appended_after_signing_is_reported_by_pdfsig(signed: bytes, tmp_path: Path) -> None:
    doctored = _with_visible_text_appended(signed)
    assert doctored.startswith(signed)

    result = pdfsig(doctored, tmp_path)

    assert "Not total document signed" in result.stdout, result.stdout
    assert "- Total document signed" not in result.stdout


def test_the_pack_signature_certifies_that_no_changes_are_allowed(signed: bytes) -> None:
    from pyhanko.pdf_utils.reader import PdfFileReader
    from pyhanko.sign.fields import MDPPerm

    reader = PdfFileReader(BytesIO(signed))
    signature = reader.embedded_signatures[0]

    assert signature.docmdp_level == MDPPerm.NO_CHANGES
