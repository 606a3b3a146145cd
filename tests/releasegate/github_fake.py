"""A small fake of GitHub's API on 127.0.0.1, strict where GitHub is: it verifies the App's
RS256 JWT with the App's public key and checks its claims before it issues an installation
token, and takes a deployment protection rule answer only with a token it issued. Callbacks can
be made to fail (the first N, or all).

It also serves a repository's commits as GitHub's REST API does (written from GitHub's REST
docs: "Get a repository installation for the authenticated app", "Compare two commits", "Get a
pull request", "List commits on a pull request", "Get a commit"), to installation tokens it
issued for reading: ``add_commit`` builds a history, ``pulls`` holds pull requests. Reads can be
made to fail too (the first N)."""

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
from typing import Any
from urllib.parse import parse_qs, urlsplit

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from tests.local_server import QuietHandler, local_server, url_of

_TOKEN_PATH = re.compile(r"^/app/installations/(\d+)/access_tokens$")
_CALLBACK_PATH = re.compile(r"^/repos/([^/]+)/([^/]+)/actions/runs/(\d+)/deployment_protection_rule$")
_INSTALLATION_PATH = re.compile(r"^/repos/([^/]+)/([^/]+)/installation$")
_COMPARE_PATH = re.compile(r"^/repos/([^/]+)/([^/]+)/compare/([0-9a-f]+)\.\.\.([0-9a-f]+)$")
_PULL_PATH = re.compile(r"^/repos/([^/]+)/([^/]+)/pulls/(\d+)$")
_PULL_COMMITS_PATH = re.compile(r"^/repos/([^/]+)/([^/]+)/pulls/(\d+)/commits$")
_COMMIT_PATH = re.compile(r"^/repos/([^/]+)/([^/]+)/commits/([0-9a-f]+)$")


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
    # Reading a repository: where the App is installed ("owner/repo" -> installation id), its
    # commits by sha (GitHub's commit objects), its pull requests by number, and what was read.
    installations: dict[str, int] = field(default_factory=dict)
    commits: dict[str, dict[str, Any]] = field(default_factory=dict)
    pulls: dict[int, dict[str, Any]] = field(default_factory=dict)
    reads: list[str] = field(default_factory=list)
    fail_reads: int = 0  # answer this many reads with 502 first

    def add_commit(
        self,
        sha: str,
        *,
        name: str,
        email: str,
        login: str | None = None,
        message: str = "A change",
        parent: str | None = None,
    ) -> str:
        """A commit as GitHub's REST API shows it: git's author, the GitHub account it is linked
        to (None when the address belongs to no account), the message and its parent."""
        self.commits[sha] = {
            "sha": sha,
            "commit": {
                "author": {"name": name, "email": email, "date": "2026-12-01T09:00:00Z"},
                "committer": {"name": "GitHub", "email": "noreply@github.com", "date": "2026-12-01T09:00:00Z"},
                "message": message,
            },
            "author": {"login": login, "id": 1000 + len(self.commits), "type": "User"} if login else None,
            "committer": {"login": "web-flow", "id": 19864447, "type": "User"},
            "parents": [{"sha": parent}] if parent else [],
        }
        return sha

    def _ancestry(self, head: str) -> list[str]:
        """The first-parent history from head back to the root, newest first."""
        found = []
        while head in self.commits:
            found.append(head)
            parents = self.commits[head]["parents"]
            head = parents[0]["sha"] if parents else ""
        return found

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

    def read(self, path: str, query: dict[str, list[str]], headers: Any) -> tuple[int, Any]:
        """A GET: the installation with the App's JWT, anything else with a token it issued."""
        authorization = str(headers.get("Authorization", ""))
        scheme, _, credentials = authorization.partition(" ")
        with self.lock:
            self.reads.append(path)
            if self.fail_reads > 0:
                self.fail_reads -= 1
                return 502, {"message": "Server Error"}
        if headers.get("Accept") != "application/vnd.github+json" or not headers.get("User-Agent"):
            return 400, {"message": "Accept and User-Agent are required"}
        if match := _INSTALLATION_PATH.match(path):
            try:
                jwt_verify(credentials, self.public_key, app_id=self.app_id, now=time.time())
            except (JwtRejectedError, ValueError):
                return 401, {"message": "A JSON web token could not be decoded"}
            installation = self.installations.get(f"{match[1]}/{match[2]}".lower())
            return (200, {"id": installation, "app_id": 1}) if installation else (404, {"message": "Not Found"})
        if scheme != "Bearer" or credentials not in self.issued:
            return 401, {"message": "Bad credentials"}
        per_page = min(int(query.get("per_page", ["30"])[0]), 100)
        page = int(query.get("page", ["1"])[0])
        return self._repository(path, lambda items: items[(page - 1) * per_page : page * per_page])

    def _repository(self, path: str, paged: Any) -> tuple[int, Any]:
        if match := _COMPARE_PATH.match(path):
            base, head = match[3], match[4]
            history = self._ancestry(head)
            if head not in self.commits or base not in self.commits:
                return 404, {"message": "Not Found"}
            ahead = list(reversed(history[: history.index(base)])) if base in history else list(reversed(history))
            status = "identical" if base == head else "ahead" if base in history else "diverged"
            commits = [self.commits[sha] for sha in ahead]
            return 200, {
                "status": status,
                "ahead_by": len(commits),
                "total_commits": len(commits),
                "commits": paged(commits),
            }
        pulls = _PULL_COMMITS_PATH.match(path) or _PULL_PATH.match(path)
        if pulls:
            pull = self.pulls.get(int(pulls[3]))
            if pull is None:
                return 404, {"message": "Not Found"}
            if path.endswith("/commits"):
                return 200, paged([self.commits[sha] for sha in pull["commit_shas"]][:250])
            return 200, {key: value for key, value in pull.items() if key != "commit_shas"}
        if match := _COMMIT_PATH.match(path):
            commit = self.commits.get(match[3])
            return (200, commit) if commit else (422, {"message": "No commit found for SHA"})
        return 404, {"message": "Not Found"}

    def pull(self, number: int, commit_shas: list[str], *, merge_commit_sha: str | None = None) -> None:
        """A pull request whose commits are these, oldest first."""
        self.pulls[number] = {
            "number": number,
            "head": {"sha": commit_shas[-1], "ref": f"feature-{number}"},
            "merge_commit_sha": merge_commit_sha,
            "commits": len(commit_shas),
            "commit_shas": commit_shas,
        }

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

    class Handler(QuietHandler):
        def do_POST(self) -> None:  # noqa: N802 - the standard library names it
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            status, answer = fake.handle(self.path, self.headers, body)
            self._answer(status, json.dumps(answer).encode() if answer is not None else b"")

        def do_GET(self) -> None:  # noqa: N802 - the standard library names it
            parts = urlsplit(self.path)
            status, answer = fake.read(parts.path, parse_qs(parts.query), self.headers)
            self._answer(status, json.dumps(answer).encode())

        def _answer(self, status: int, data: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    with local_server(Handler, name="fake-github") as server:
        fake.url = url_of(server)
        yield fake
