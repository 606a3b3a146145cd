"""A small fake of GitHub's API on 127.0.0.1, strict where GitHub is: it verifies the App's
RS256 JWT with the App's public key and checks its claims before it issues an installation
token, and takes a deployment protection rule answer only with a token it issued. Callbacks can
be made to fail (the first N, or all)."""

import base64
import json
import re
import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.client import HTTPMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

_TOKEN_PATH = re.compile(r"^/app/installations/(\d+)/access_tokens$")
_CALLBACK_PATH = re.compile(r"^/repos/([^/]+)/([^/]+)/actions/runs/(\d+)/deployment_protection_rule$")


def b64url_decode(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


class JwtRejectedError(Exception):
    pass


def jwt_verify(token: str, public_key: rsa.RSAPublicKey, *, app_id: str, now: float) -> dict[str, Any]:
    """What GitHub checks of an App's JWT: RS256 signature by the App's key, ``iss`` the App,
    issued in the past and expiring no more than ten minutes from now."""
    parts = token.split(".")
    if len(parts) != 3:
        raise JwtRejectedError("not a compact JWS")
    header = json.loads(b64url_decode(parts[0]))
    claims: dict[str, Any] = json.loads(b64url_decode(parts[1]))
    if header.get("alg") != "RS256":
        raise JwtRejectedError(f"alg {header.get('alg')!r}")
    try:
        public_key.verify(
            b64url_decode(parts[2]), f"{parts[0]}.{parts[1]}".encode("ascii"), padding.PKCS1v15(), hashes.SHA256()
        )
    except InvalidSignature:
        raise JwtRejectedError("bad signature") from None
    if claims.get("iss") != app_id:
        raise JwtRejectedError(f"iss {claims.get('iss')!r}")
    iat, exp = claims.get("iat"), claims.get("exp")
    if not isinstance(iat, int) or not isinstance(exp, int):
        raise JwtRejectedError("iat and exp must be integers")
    if iat > now:
        raise JwtRejectedError("issued in the future")
    if exp <= now or exp > now + 600:
        raise JwtRejectedError("expired, or expires more than ten minutes from now")
    return claims


@dataclass
class TokenRequest:
    installation_id: int
    claims: dict[str, Any]
    body: dict[str, Any]
    token: str


@dataclass
class Callback:
    path: str
    authorization: str
    body: dict[str, Any]
    status: int
    headers: HTTPMessage  # looks names up case-insensitively
    at: float  # time.monotonic() when it arrived


@dataclass
class FakeGitHub:
    public_key: rsa.RSAPublicKey
    app_id: str
    url: str = ""
    fail_callbacks: int = 0  # answer this many callbacks with ``failure_status`` first
    failure_status: int = 500
    token_requests: list[TokenRequest] = field(default_factory=list)
    rejected_jwts: list[str] = field(default_factory=list)
    callbacks: list[Callback] = field(default_factory=list)
    issued: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def callback_url(self, owner: str = "bank", repo: str = "payments-api", run_id: int = 4242) -> str:
        return f"{self.url}/repos/{owner}/{repo}/actions/runs/{run_id}/deployment_protection_rule"

    def accepted(self) -> list[Callback]:
        return [callback for callback in self.callbacks if 200 <= callback.status < 300]

    def handle(self, path: str, headers: Any, body: bytes) -> tuple[int, dict[str, Any] | None]:
        authorization = str(headers.get("Authorization", ""))
        scheme, _, credentials = authorization.partition(" ")
        if headers.get("Accept") != "application/vnd.github+json" or not headers.get("User-Agent"):
            return 400, {"message": "Accept and User-Agent are required"}
        if match := _TOKEN_PATH.match(path):
            return self._token(int(match.group(1)), scheme, credentials, body)
        if _CALLBACK_PATH.match(path):
            return self._callback(path, authorization, scheme, credentials, headers, body)
        return 404, {"message": "Not Found"}

    def _token(self, installation_id: int, scheme: str, jwt: str, body: bytes) -> tuple[int, dict[str, Any] | None]:
        if scheme != "Bearer":
            return 401, {"message": "A JSON web token could not be decoded"}
        try:
            claims = jwt_verify(jwt, self.public_key, app_id=self.app_id, now=time.time())
        except (JwtRejectedError, ValueError) as error:
            with self.lock:
                self.rejected_jwts.append(str(error))
            return 401, {"message": f"'Expiration time' claim ('exp') or signature is invalid: {error}"}
        token = f"ghs_{secrets.token_urlsafe(24)}"
        with self.lock:
            self.issued.add(token)
            self.token_requests.append(
                TokenRequest(
                    installation_id=installation_id, claims=claims, body=json.loads(body or b"{}"), token=token
                )
            )
        return 201, {"token": token, "expires_at": "2099-01-01T00:00:00Z", "permissions": {"deployments": "write"}}

    def _callback(
        self, path: str, authorization: str, scheme: str, token: str, headers: Any, body: bytes
    ) -> tuple[int, dict[str, Any] | None]:
        with self.lock:
            if scheme != "Bearer" or token not in self.issued:
                status = 401
            elif self.fail_callbacks > 0:
                self.fail_callbacks -= 1
                status = self.failure_status
            else:
                status = 204
            self.callbacks.append(
                Callback(
                    path=path,
                    authorization=authorization,
                    body=json.loads(body),
                    status=status,
                    headers=headers,
                    at=time.monotonic(),
                )
            )
        if status == 204:
            return 204, None
        return status, {"message": "Server Error" if status >= 500 else "Bad credentials"}


@contextmanager
def running_fake_github(public_key: rsa.RSAPublicKey, app_id: str) -> Iterator[FakeGitHub]:
    fake = FakeGitHub(public_key=public_key, app_id=app_id)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            status, answer = fake.handle(self.path, self.headers, body)
            data = json.dumps(answer).encode() if answer is not None else b""
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:  # quiet test output
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, name="fake-github", daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
