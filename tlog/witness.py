"""A transparency-log witness: ``python -m tlog.witness``.

Run by a second team or in another data centre, it is what makes a rollback or rebuild of
the audit log visible even to someone holding the whole database: it implements C2SP
``tlog-witness`` ``add-checkpoint`` and answers with ``tlog-cosignature`` (Ed25519) lines. It
remembers, in its own state file, the latest checkpoint it cosigned for each log, and cosigns
a new one only with a consistency proof from that one; anything else is refused (409 with the
size it knows, 422 for a proof that does not verify).

Standard library plus ``cryptography``; no Django (it imports only the pure
``tlog.merkle`` and ``tlog.note``).

    python -m tlog.witness generate-key witness.bank.example/w1 --out w1.key
    python -m tlog.witness serve --key w1.key --log-key 'releasegate.local/audit-log+…' \\
        --state w1-state.json --listen 127.0.0.1:8701

The log submits to ``http://127.0.0.1:8701/add-checkpoint`` (``AUDIT_WITNESSES``).
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tlog.cosignature import Cosigner
from tlog.merkle import HASH_SIZE, ProofError, verify_consistency
from tlog.note import Checkpoint, NoteError, NoteVerifier

MAX_BODY = 64 * 1024
MAX_PROOF_LINES = 63


class Refused(Exception):
    def __init__(self, status: int, message: str, *, size: int | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.size = size


class Witness:
    """The witness's decisions and state, apart from HTTP."""

    def __init__(self, cosigner: Cosigner, logs: list[NoteVerifier], state_file: Path) -> None:
        self.cosigner = cosigner
        self.logs = {verifier.name: verifier for verifier in logs}
        self.state_file = state_file
        self._lock = threading.Lock()  # checking the old size and recording the new one: atomic
        self._state: dict[str, dict[str, object]] = json.loads(state_file.read_text()) if state_file.exists() else {}

    def add_checkpoint(self, request: bytes) -> str:
        try:
            text = request.decode("utf-8")
        except UnicodeDecodeError as error:
            raise Refused(400, "not UTF-8") from error
        head, sep, note = text.partition("\n\n")
        if not sep:
            raise Refused(400, "no checkpoint")
        lines = head.split("\n")
        if not lines[0].startswith("old ") or not lines[0][4:].isdigit() or (lines[0][4:] != str(int(lines[0][4:]))):
            raise Refused(400, "malformed old size line")
        old = int(lines[0][4:])
        if len(lines) - 1 > MAX_PROOF_LINES:
            raise Refused(400, "too many proof lines")
        try:
            proof = [base64.b64decode(line, validate=True) for line in lines[1:]]
        except ValueError as error:
            raise Refused(400, "malformed proof line") from error
        if any(len(node) != HASH_SIZE for node in proof):
            raise Refused(400, "malformed proof line")
        origin = note.split("\n", 1)[0]
        verifier = self.logs.get(origin)
        if verifier is None:
            raise Refused(404, "unknown log")
        try:
            body = verifier.open(note)
            checkpoint = Checkpoint.parse(body)
        except NoteError as error:
            raise Refused(403, f"no valid signature by the log's key ({error})") from error
        if old > checkpoint.size:
            raise Refused(400, "old size is larger than the checkpoint's")
        with self._lock:
            known = self._state.get(origin, {"size": 0, "root": ""})
            known_size = int(known["size"])  # type: ignore[call-overload]
            if old != known_size:
                raise Refused(409, "old size is not the size last cosigned", size=known_size)
            if old == 0 and proof:
                raise Refused(400, "a proof from size 0 must be empty")
            if old:
                known_root = base64.b64decode(str(known["root"]))
                if old == checkpoint.size:
                    if known_root != checkpoint.root_hash:
                        raise Refused(409, "same size, different root", size=known_size)
                else:
                    try:
                        verify_consistency(old, checkpoint.size, proof, known_root, checkpoint.root_hash)
                    except ProofError as error:
                        raise Refused(422, f"the consistency proof does not verify ({error})") from error
            self._state[origin] = {"size": checkpoint.size, "root": base64.b64encode(checkpoint.root_hash).decode()}
            self._persist()
            return self.cosigner.cosign(body, int(time.time()))

    def _persist(self) -> None:
        self.state_file.parent.mkdir(parents=True, exist_ok=True)
        descriptor, temporary = tempfile.mkstemp(dir=self.state_file.parent, prefix=self.state_file.name + ".")
        with os.fdopen(descriptor, "w") as file:
            json.dump(self._state, file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, self.state_file)


def _handler(witness: Witness) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            if self.path.rstrip("/").rsplit("/", 1)[-1] != "add-checkpoint":
                self._answer(404, "not found\n")
                return
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY:
                self._answer(413, "too large\n")
                return
            try:
                self._answer(200, witness.add_checkpoint(self.rfile.read(length)))
            except Refused as refusal:
                if refusal.status == 409 and refusal.size is not None:
                    self._answer(409, f"{refusal.size}\n", content_type="text/x.tlog.size")
                else:
                    self._answer(refusal.status, f"{refusal}\n")

        def _answer(self, status: int, body: str, content_type: str = "text/plain; charset=utf-8") -> None:
            data = body.encode()
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: object) -> None:
            sys.stderr.write(f"witness: {self.address_string()} {format % args}\n")

    return Handler


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tlog.witness", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    generate = commands.add_parser("generate-key", help="make a witness key; prints its verifier key")
    generate.add_argument("name", help="the witness's name, e.g. witness.bank.example/w1")
    generate.add_argument("--out", required=True, type=Path)
    serve = commands.add_parser("serve", help="answer add-checkpoint")
    serve.add_argument("--key", required=True, type=Path, help="the witness key file (generate-key)")
    serve.add_argument("--log-key", action="append", required=True, help="a log's verifier key (repeatable)")
    serve.add_argument("--state", required=True, type=Path, help="where the witness keeps what it cosigned")
    serve.add_argument("--listen", default="127.0.0.1:8701", help="host:port (port 0: any free port)")
    arguments = parser.parse_args(argv)
    if arguments.command == "generate-key":
        cosigner = Cosigner(arguments.name, Ed25519PrivateKey.generate())
        descriptor = os.open(arguments.out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as file:
            file.write(cosigner.to_string() + "\n")
        print(cosigner.verifier_key())  # noqa: T201 - the command's output
        return 0
    cosigner = Cosigner.from_string(arguments.key.read_text())
    logs = [NoteVerifier.from_string(key) for key in arguments.log_key]
    witness = Witness(cosigner, logs, arguments.state)
    host, _, port = arguments.listen.rpartition(":")
    server = ThreadingHTTPServer((host, int(port)), _handler(witness))
    address, bound = server.server_address[:2]
    print(f"listening on {address!s}:{bound}", flush=True)  # noqa: T201
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
