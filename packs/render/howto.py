"""How an auditor checks a pack: the file names inside the ZIP and the steps with their exact
commands. The PDF's last section and the ZIP's VERIFY.md are both written from here, so they
cannot drift apart."""

from collections.abc import Sequence
from dataclasses import dataclass

from packs.render.sample import SAMPLE_METHOD, SAMPLE_SCRIPT

PDF_NAME = "pack.pdf"
EVENTS_NAME = "events.jsonl"
CHECKPOINT_NAME = "checkpoint.txt"
PUBLIC_KEY_NAME = "public-key.txt"
CERTIFICATE_NAME = "signing-certificate.pem"
APPROVAL_SIGNATURES_NAME = "approval-signatures.json"
PROOFS_DIR = "proofs"
EVIDENCE_DIR = "evidence"
VERIFIER_DIR = "verifier"
MANIFEST_NAME = "manifest.json"
MANIFEST_SIGNATURE_NAME = "manifest.sig"
VERIFY_NAME = "VERIFY.md"
POPULATION_CSV_NAME = "population.csv"

SIGNATURE_VALID = "Signature Validation: Signature is Valid."
"""What poppler's ``pdfsig`` prints for a signature whose signed bytes are intact (22.12)."""
DIGEST_MISMATCH = "Signature Validation: Digest Mismatch."
"""What it prints when a byte of the signed range changed."""
TOTAL_DOCUMENT_SIGNED = "Total document signed"
"""What it prints when the signature covers the whole file: nothing was appended after it."""
NOT_TOTAL_DOCUMENT_SIGNED = "Not total document signed"
"""What it prints when something was appended after the signature (an incremental update)."""

MANIFEST_CHECK = (
    "python3 -c 'import hashlib,json,pathlib,sys; "
    'f=json.loads(pathlib.Path("manifest.json").read_text())["files"]; '
    "bad=[p for p,h in sorted(f.items()) if hashlib.sha256(pathlib.Path(p).read_bytes()).hexdigest()!=h]; "
    'extra=sorted(str(p) for p in pathlib.Path(".").rglob("*") if p.is_file() and str(p) not in f '
    'and str(p) not in ("manifest.json","manifest.sig","pack.pdf","pack.pdf.sig0")); '
    'print(*(["MISMATCH "+p for p in bad]+["NOT IN MANIFEST "+p for p in extra]) or ["OK: %d files match" % len(f)], '
    "sep=chr(10)); sys.exit(1 if bad or extra else 0)'"
)
MANIFEST_CHECK_JQ = "jq -r '.files | to_entries[] | \"\\(.value)  \\(.key)\"' manifest.json | sha256sum --check --quiet"

EVENTS_CHECK = (
    "python3 -c 'import json,pathlib,sys; "
    f'ps=sorted((json.loads(p.read_text()) for p in pathlib.Path("{PROOFS_DIR}").glob("*.json")), '
    'key=lambda p: p["leaf_index"]); '
    f'ev=pathlib.Path("{EVENTS_NAME}").read_text(encoding="utf-8").splitlines(); '
    'ok=len(ev)==len(ps) and all(e==p["event"] for e,p in zip(ev,ps)); '
    'print("OK: %d events, each the event of its proof" % len(ev) if ok else "MISMATCH"); sys.exit(0 if ok else 1)\''
)

CERTIFICATE_FINGERPRINT = (
    "pdfsig -dump {pdf} && openssl pkcs7 -inform DER -in {pdf}.sig0 -print_certs "
    "| openssl x509 -noout -fingerprint -sha256"
)


@dataclass(frozen=True)
class Step:
    title: str
    text: str
    commands: tuple[str, ...] = ()


def _signature_step(pdf: str, certificate_sha256: str, organisation: str) -> Step:
    trust = (
        f"The signing certificate's SHA-256 fingerprint is {certificate_sha256}; "
        "compare it with the one the bank publishes for its evidence-pack key (the second command prints it; it "
        f"writes {pdf}.sig0 beside the PDF)."
        if certificate_sha256
        else "Compare the signing certificate with the one the bank publishes for its evidence-pack key."
    )
    return Step(
        "The PDF's signature",
        f"The PDF is signed by {organisation} (PAdES, a certification signature that allows no changes). "
        f'pdfsig must print "{SIGNATURE_VALID}": the signed bytes are exactly those that were signed; a single '
        f'changed byte makes it print "{DIGEST_MISMATCH}". It must also print "{TOTAL_DOCUMENT_SIGNED}": '
        f'"{NOT_TOTAL_DOCUMENT_SIGNED}" means something (text, a page, an annotation) was appended after '
        "signing, which a valid signature alone does not show; such a PDF is not the one that was signed. "
        "Other readers say the certification is broken or that changes were made. The certificate "
        "line depends on whether your machine trusts the issuer: for a development (self-signed) certificate it "
        'says "Certificate issuer is unknown.", which says '
        f"nothing about the document's integrity. {trust}",
        (f"pdfsig {pdf}", CERTIFICATE_FINGERPRINT.format(pdf=pdf)),
    )


def _trust_anchor_text() -> str:
    return (
        "The log's public key and checkpoint in this pack prove nothing by themselves: compare the public key "
        "with the one the bank publishes (GET /api/v1/audit/public-key), and check that the checkpoint is "
        "consistent with a checkpoint you keep outside the service (python3 -m tlog.verifier consistency, "
        "see docs/audit.md)."
    )


def changelog_steps(
    *,
    leaf_indexes: Sequence[int],
    certificate_sha256: str = "",
    organisation: str = "the bank",
    vectors: bool = False,
) -> list[Step]:
    """The steps for a changelog pack's ZIP, run from the folder it was unpacked into."""
    key, cp = f"../{PUBLIC_KEY_NAME}", f"../{CHECKPOINT_NAME}"
    first = min(leaf_indexes, default=0)
    steps = [
        Step(
            "Unpack the ZIP and check every file against the manifest",
            f"{MANIFEST_NAME} lists the SHA-256 of every other file in the ZIP (use the ZIP's own file name in the "
            "first command). The second command checks them all, and that no file is missing from the manifest, "
            "with Python 3 only; the third checks the same hashes with jq and sha256sum.",
            ("unzip -q evidence-pack.zip -d pack && cd pack", MANIFEST_CHECK, MANIFEST_CHECK_JQ),
        ),
        _signature_step(PDF_NAME, certificate_sha256, organisation),
        Step(
            "The evidence files",
            f"Each file under {EVIDENCE_DIR}/ is the uploaded file byte for byte; its SHA-256 is printed in the "
            "Evidence section of the PDF and must match.",
            (f"sha256sum {EVIDENCE_DIR}/*",),
        ),
        Step(
            "The checkpoint",
            "The standalone verifier needs Python 3.11 and the cryptography package, nothing else "
            f"(pip install cryptography). It is in {VERIFIER_DIR}/; run it from there. This checks the "
            f"checkpoint's Ed25519 signature with the log's public key. {_trust_anchor_text()}",
            (f"cd {VERIFIER_DIR}", f"python3 -m tlog.verifier checkpoint --key {key} {cp}"),
        ),
        Step(
            "Every audit event is in the log",
            f"Each file in {PROOFS_DIR}/ is the inclusion proof of one event (named by its leaf index) against "
            "the checkpoint; it carries the event's canonical bytes, and the verifier checks that the leaf hash is "
            "their hash. Exit status 0 means verified, 1 not verified (the reason is on stderr). The first command "
            f"checks the event at leaf {first}; the second checks them all.",
            (
                f"python3 -m tlog.verifier inclusion --key {key} --checkpoint {cp} ../{PROOFS_DIR}/{first}.json",
                f"fail=0; for p in ../{PROOFS_DIR}/*.json; do python3 -m tlog.verifier inclusion --key {key} "
                f'--checkpoint {cp} "$p" || fail=1; done; test $fail = 0 && echo "OK: every proof verified"',
            ),
        ),
        Step(
            "events.jsonl is the events of the proofs",
            f"{EVENTS_NAME} holds the canonical bytes of the same events, one per line in leaf order, for reading "
            "and for tools. Run from the unpacked folder:",
            ("cd ..", EVENTS_CHECK),
        ),
    ]
    if not leaf_indexes:  # nothing to prove: say so instead of naming proofs that do not exist
        steps[4:] = [
            Step(
                "Audit events",
                "This change has no audit events in the log up to the checkpoint, so there are no proofs to check.",
                ("cd ..",),
            )
        ]
    steps.append(
        Step(
            "The ZIP is this PDF's, as a whole",
            f"{MANIFEST_NAME} is signed with the PDF's key ({MANIFEST_SIGNATURE_NAME}) and the PDF prints its SHA-256 "
            '("ZIP manifest" on the first page): a file changed with the manifest recomputed no longer matches '
            "either. The verifier's pack command checks that, every file against the manifest, that the PDF is "
            "signed with the pack's certificate, and every proof. Run it with a verifier you installed "
            f"independently (from the bank's published releasegate-verify source, say), not only the {VERIFIER_DIR}/ "
            "copy in the ZIP, which whoever could change the ZIP could change too. From the unpacked folder:",
            (f"cd {VERIFIER_DIR} && python3 -m tlog.verifier pack .. && cd ..",),
        )
    )
    if vectors:
        steps.insert(
            3,
            Step(
                "The verifier itself",
                "Before trusting the verifier, let it check itself against the public RFC 6962 / RFC 9162 test "
                f"vectors in {VERIFIER_DIR}/vectors/ (or any copy you fetched yourself). Run from the unpacked folder:",
                (f"cd {VERIFIER_DIR} && python3 -m tlog.verifier vectors vectors && cd ..",),
            ),
        )
    return steps


def population_steps(
    *, seed: int, size: int, certificate_sha256: str = "", organisation: str = "the bank"
) -> list[Step]:
    """The steps for a population pack (PDF and CSV)."""
    return [
        _signature_step("population.pdf", certificate_sha256, organisation),
        Step(
            "The checkpoint",
            "The checkpoint printed above covers the audit-log range of this population. Save it to "
            "checkpoint.txt exactly as printed (it ends with the signature line) and check it with the standalone "
            f"verifier from a changelog pack's {VERIFIER_DIR}/ folder. {_trust_anchor_text()}",
            ("python3 -m tlog.verifier checkpoint --key public-key.txt checkpoint.txt",),
        ),
        Step(
            "The sample",
            SAMPLE_METHOD.format(size=size) + f" The seed is {seed}. This redoes it from the population CSV:",
            (SAMPLE_SCRIPT.format(seed=seed, size=size),),
        ),
    ]
