"""``releasegate``: the command-line client a CI pipeline runs to talk to the gate.

Standard library only, so that it installs on any runner and never imports Django (an
import-linter contract keeps it so). PyYAML is used when it is installed, for changelog files
written in YAML. It fails closed: it exits 0 only on a clear yes from the gate.

    releasegate check --service S --digest sha256:... [--env production] [--changelog ID]
                      [--wait 30m] [--interval 15s]
    releasegate changelog create -f changelog.yaml [--set artifact.digest=...] [--quiet]
    releasegate changelog submit [-f changelog.yaml] [--changelog ID] [--set ...] [--quiet]
    releasegate evidence add --changelog ID --kind K [--format F] [--environment E] [--artifact-digest D]
                             [--tool NAME] [--journeys IDS] [--quiet] FILE
    releasegate deploy report --service S --digest D --status STATUS [--env production]
                              [--run-url URL] [--started-at ISO] [--finished-at ISO] [--key KEY]

Global options (before or after the command): --url, --token, --timeout, --json. The URL
and token come from RELEASEGATE_URL and RELEASEGATE_TOKEN; RELEASEGATE_CA_BUNDLE names extra
CA certificates. TLS certificates are always verified.

Exit codes (docs/cli.md has the full table):
  0  allowed, or done
  1  the gate said no: denied, refused the changelog or the evidence file, or flagged the
     deployment as unauthorised
  2  usage: bad arguments, missing configuration or files, or an answer saying the request
     cannot be right (401 bad token, 403, 404; a 400 on check or deploy report)
  3  no trustworthy answer: unreachable, timed out, TLS failure, 5xx, 429, a redirect, or
     anything that is not Release Gate's JSON. Do not deploy.
"""

import argparse
import hashlib
import http.client
import ipaddress
import json
import os
import re
import ssl
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import Message
from pathlib import Path
from typing import Any, NoReturn

EXIT_OK = 0
EXIT_NO = 1
EXIT_USAGE = 2
EXIT_UNAVAILABLE = 3

API_PREFIX = "/api/v1"
MAX_ANSWER_BYTES = 16 * 1024 * 1024
DIGEST_PATTERN = re.compile(r"^sha256:[0-9a-f]{64}$")
SLUG_PATTERN = re.compile(r"^[-a-zA-Z0-9_]+$")
EVIDENCE_KINDS = ("sanity", "performance", "security", "document")
DEPLOYMENT_STATUSES = ("started", "succeeded", "failed", "rolled_back")
# A changelog file names its service and kind; an edit of an existing changelog sends only content.
IDENTITY_FIELDS = ("service", "kind")


# --- errors: each carries its exit code ---------------------------------------------------


class CliError(Exception):
    exit_code = EXIT_UNAVAILABLE
    outcome = "unavailable"

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        fields: dict[str, Any] | None = None,
        result: Any = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code
        self.fields = fields or {}
        self.result = result
        self.retry_after = retry_after
        self.usage = ""

    def to_json(self) -> dict[str, Any]:
        return {"message": self.message, "status": self.status, "code": self.code, "fields": self.fields}


class Refused(CliError):
    """The gate understood the request and said no to it on its merits."""

    exit_code = EXIT_NO
    outcome = "refused"


class UsageError(CliError):
    """The request cannot work as written: fix the arguments or the configuration."""

    exit_code = EXIT_USAGE
    outcome = "usage_error"


class Unavailable(CliError):
    """No answer that can be trusted: fail closed."""

    exit_code = EXIT_UNAVAILABLE
    outcome = "unavailable"


# --- small parsers ------------------------------------------------------------------------

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str) -> float:
    """Seconds in ``90``, ``90s``, ``15m``, ``1h30m`` or ``500ms``."""
    value = text.strip().lower()
    if re.fullmatch(r"\d+(?:\.\d+)?", value):
        return float(value)
    parts = _DURATION_PART.findall(value)
    if not value or "".join(number + unit for number, unit in parts) != value:
        raise ValueError(f"not a duration: {text!r} (use e.g. 30s, 15m, 1h, 1h30m)")
    return sum(float(number) * _DURATION_UNITS[unit] for number, unit in parts)


def format_duration(seconds: float) -> str:
    if seconds < 1:
        return f"{round(seconds * 1000)}ms"
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    text = (f"{hours}h" if hours else "") + (f"{minutes}m" if minutes else "") + (f"{secs}s" if secs else "")
    return text or "0s"


def _duration_arg(minimum: float) -> Callable[[str], float]:
    def parse(text: str) -> float:
        try:
            seconds = parse_duration(text)
        except ValueError as error:
            raise argparse.ArgumentTypeError(str(error)) from error
        if seconds < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {format_duration(minimum)}")
        return seconds

    return parse


def _digest_arg(text: str) -> str:
    if not DIGEST_PATTERN.match(text):
        raise argparse.ArgumentTypeError("must be sha256: followed by 64 lower-case hex digits")
    return text


def _slug_arg(text: str) -> str:
    if not SLUG_PATTERN.match(text):
        raise argparse.ArgumentTypeError("must be a slug (letters, digits, - and _)")
    return text


def _uuid_arg(text: str) -> str:
    if not text.strip():
        # ID=$(releasegate changelog create … --quiet) leaves ID empty when the create failed.
        raise argparse.ArgumentTypeError(
            "is empty: the command meant to give the changelog id failed (see its error above)"
        )
    try:
        return str(uuid.UUID(text))
    except ValueError as error:
        raise argparse.ArgumentTypeError("must be a changelog id (a UUID)") from error


def _timestamp_arg(text: str) -> str:
    """An ISO 8601 time with its offset, normalised to UTC so that equal times give equal keys."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError("must be an ISO 8601 time, e.g. 2026-12-01T09:00:00Z") from error
    if moment.tzinfo is None:
        raise argparse.ArgumentTypeError("must carry its offset (Z or +01:00): a bare local time is ambiguous")
    return _utc_text(moment)


def _url_arg(text: str) -> str:
    parts = urllib.parse.urlsplit(text)
    if parts.scheme not in {"http", "https"} or not parts.netloc:
        raise argparse.ArgumentTypeError("must be an http(s) URL")
    return text


def _utc_text(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"the key {key!r} appears twice")
        result[key] = value
    return result


def _yaml_load(text: str, name: str) -> Any:
    """YAML through PyYAML's safe loader, with two changes for changelogs: numbers and dates
    stay text exactly as written (``version: 1.10`` is "1.10", not 1.1), and a key given twice
    is an error instead of quietly keeping the last value."""
    try:
        import yaml
    except ImportError as error:
        raise UsageError(
            f"{name}: reading YAML needs PyYAML (pip install PyYAML); or write the changelog as JSON"
        ) from error

    as_text = {"tag:yaml.org,2002:int", "tag:yaml.org,2002:float", "tag:yaml.org,2002:timestamp"}

    class ChangelogLoader(yaml.SafeLoader):
        def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
            self.flatten_mapping(node)
            seen: set[Any] = set()
            for key_node, _ in node.value:
                key = self.construct_object(key_node, deep=deep)
                if key in seen:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"the key {key!r} appears twice", key_node.start_mark
                    )
                seen.add(key)
            return super().construct_mapping(node, deep=deep)

    ChangelogLoader.yaml_implicit_resolvers = {
        first: [(tag, pattern) for tag, pattern in resolvers if tag not in as_text]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }
    try:
        return yaml.load(text, Loader=ChangelogLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as error:
        raise UsageError(f"{name}: not valid YAML: {error}") from error


def read_changelog_file(path_text: str) -> dict[str, Any]:
    path = Path(path_text)
    if not path.is_file():
        raise UsageError(f"{path_text}: no such file")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise UsageError(f"{path_text}: cannot be read as UTF-8 text: {error}") from error
    suffix = path.suffix.lower()
    if suffix == ".json":
        try:
            data = json.loads(text, object_pairs_hook=_no_duplicate_keys)
        except ValueError as error:
            raise UsageError(f"{path_text}: not valid JSON: {error}") from error
    elif suffix in {".yaml", ".yml"}:
        data = _yaml_load(text, path_text)
    else:
        raise UsageError(f"{path_text}: name the changelog file .json, .yaml or .yml")
    if not isinstance(data, dict):
        raise UsageError(f"{path_text}: a changelog is a mapping of fields (service, kind, artifact, ...)")
    return data


def apply_settings(data: dict[str, Any], settings: Sequence[str]) -> dict[str, Any]:
    """``--set artifact.digest=sha256:...``: put a text value at a dotted path, for the values
    a pipeline only knows when it runs (digest, version, source revision)."""
    for setting in settings:
        path, sep, value = setting.partition("=")
        keys = path.split(".")
        if not sep or not all(keys):
            raise UsageError(f"--set {setting!r}: write it as field.path=value")
        node = data
        for key in keys[:-1]:
            node = node.setdefault(key, {})
            if not isinstance(node, dict):
                raise UsageError(f"--set {setting!r}: {key} is not a mapping in the changelog file")
        node[keys[-1]] = value
    return data


def multipart_encode(fields: dict[str, str], *, file_name: str, data: bytes) -> tuple[bytes, str]:
    """multipart/form-data (RFC 7578) with the text fields and one part named ``file``."""
    boundary = f"releasegate-{uuid.uuid4().hex}"
    while boundary.encode() in data:  # pragma: no cover - 128 random bits
        boundary = f"releasegate-{uuid.uuid4().hex}"
    quoted = file_name.replace("\r", "%0D").replace("\n", "%0A").replace('"', "%22")
    chunks: list[bytes] = []
    for name, value in fields.items():
        chunks += [
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode(),
            value.encode(),
            b"\r\n",
        ]
    chunks += [
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{quoted}"\r\n'.encode(),
        b"Content-Type: application/octet-stream\r\n\r\n",
        data,
        f"\r\n--{boundary}--\r\n".encode(),
    ]
    return b"".join(chunks), f"multipart/form-data; boundary={boundary}"


def deployment_key(report: dict[str, Any]) -> str:
    """The default idempotency key: a hash of the report itself, so that a retried step sending
    the same report is recognised, and a different report never collides with it."""
    canonical = json.dumps(report, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "rgcli-" + hashlib.sha256(canonical.encode()).hexdigest()


def version() -> str:
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as package_version

    try:
        return package_version("releasegate")
    except PackageNotFoundError:
        return "unknown"


# --- HTTP ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Connection:
    base_url: str
    token: str
    timeout: float
    ca_bundle: str | None
    request_id: str


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def connection_from(args: argparse.Namespace, request_id: str, environ: dict[str, str]) -> Connection:
    raw_url = (args.url or environ.get("RELEASEGATE_URL", "")).strip()
    token = (args.token or environ.get("RELEASEGATE_TOKEN", "")).strip()
    if not raw_url:
        raise UsageError("no gate URL: set RELEASEGATE_URL (or --url), e.g. https://release-gate.bank.example")
    if not token:
        raise UsageError("no API token: set RELEASEGATE_TOKEN (or --token) from the CI's secret store")
    if any(character.isspace() or not character.isprintable() for character in token):
        raise UsageError("RELEASEGATE_TOKEN contains spaces or control characters; copy it again")
    parts = urllib.parse.urlsplit(raw_url)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise UsageError("RELEASEGATE_URL must be an https:// URL, e.g. https://release-gate.bank.example")
    if parts.username or parts.password:
        raise UsageError("RELEASEGATE_URL must not carry credentials; the token goes in RELEASEGATE_TOKEN")
    if parts.query or parts.fragment:
        raise UsageError("RELEASEGATE_URL must be the gate's base address, without ? or #")
    if parts.scheme == "http" and not _is_loopback(parts.hostname) and environ.get("RELEASEGATE_ALLOW_HTTP") != "1":
        raise UsageError(
            "RELEASEGATE_URL is plain http to another host: the token would travel in clear. Use https "
            "(RELEASEGATE_ALLOW_HTTP=1 only where a service mesh encrypts the hop)"
        )
    path = parts.path.rstrip("/")
    path = path.removesuffix(API_PREFIX)
    ca_bundle = environ.get("RELEASEGATE_CA_BUNDLE") or None
    if ca_bundle and not Path(ca_bundle).is_file():
        raise UsageError(f"RELEASEGATE_CA_BUNDLE: {ca_bundle}: no such file")
    return Connection(
        base_url=urllib.parse.urlunsplit((parts.scheme, parts.netloc, path, "", "")),
        token=token,
        timeout=args.timeout,
        ca_bundle=ca_bundle,
        request_id=request_id,
    )


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A redirect is answered, not followed: following it would resend the token to wherever
    the redirect points, and turn a POST into a GET."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


@dataclass(frozen=True)
class Answer:
    status: int
    body: dict[str, Any]

    @property
    def code(self) -> str:
        return str(self.body.get("code", ""))

    @property
    def message(self) -> str:
        return str(self.body.get("message", ""))


def _has_code_and_message(body: Any) -> bool:
    """The shape of an API error, and of a gate reason: ``code`` and ``message`` strings."""
    return isinstance(body, dict) and isinstance(body.get("code"), str) and isinstance(body.get("message"), str)


def _json_object(headers: Message, raw: bytes) -> dict[str, Any] | None:
    media_type = (headers.get("Content-Type") or "").split(";")[0].strip().lower()
    if media_type != "application/json" and not media_type.endswith("+json"):
        return None
    try:
        body = json.loads(raw)
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


class Gate:
    """The API over urllib: TLS verified, no redirects, one request id per invocation."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self.user_agent = f"releasegate-cli/{version()}"
        context = ssl.create_default_context(cafile=connection.ca_bundle)
        self._opener = urllib.request.build_opener(_NoRedirects(), urllib.request.HTTPSHandler(context=context))

    def post_json(self, path: str, body: dict[str, Any]) -> Answer:
        return self.request("POST", path, json.dumps(body).encode(), "application/json")

    def request(self, method: str, path: str, data: bytes | None = None, content_type: str | None = None) -> Answer:
        connection = self.connection
        url = connection.base_url + API_PREFIX + path
        headers = {
            "Authorization": f"Bearer {connection.token}",
            "Accept": "application/json",
            "User-Agent": self.user_agent,
            "X-Request-ID": connection.request_id,
        }
        if content_type:
            headers["Content-Type"] = content_type
        # The scheme was checked in connection_from: only http(s) reaches here.
        request = urllib.request.Request(url, data=data, method=method, headers=headers)  # noqa: S310
        where = f"{method} {url}"
        try:
            with self._opener.open(request, timeout=connection.timeout) as response:
                return self._answer(response.status, response.headers, response.read(MAX_ANSWER_BYTES + 1), where)
        except urllib.error.HTTPError as error:
            with error:
                raw = error.read(MAX_ANSWER_BYTES + 1)
            return self._answer(error.code, error.headers, raw, where)
        except urllib.error.URLError as error:
            reason = error.reason
            if isinstance(reason, ssl.SSLCertVerificationError):
                raise Unavailable(
                    f"TLS: the gate's certificate is not trusted ({reason.verify_message}); "
                    "set RELEASEGATE_CA_BUNDLE to the bank's CA certificates. ({where})"
                ) from error
            if isinstance(reason, TimeoutError):
                raise Unavailable(
                    f"no answer from the gate within {format_duration(connection.timeout)} ({where})"
                ) from error
            raise Unavailable(f"the gate is unreachable: {reason} ({where})") from error
        except TimeoutError as error:
            raise Unavailable(
                f"no answer from the gate within {format_duration(connection.timeout)} ({where})"
            ) from error
        except (http.client.HTTPException, OSError) as error:
            raise Unavailable(f"the connection to the gate failed: {error!r} ({where})") from error

    @staticmethod
    def _answer(status: int, headers: Message, raw: bytes, where: str) -> Answer:
        if len(raw) > MAX_ANSWER_BYTES:
            raise Unavailable(f"the answer is larger than {MAX_ANSWER_BYTES} bytes ({where})", status=status)
        if 300 <= status < 400:
            raise Unavailable(
                f"the gate answered {status} with a redirect to {headers.get('Location')!r}, which is not followed; "
                f"set RELEASEGATE_URL to the address that answers ({where})",
                status=status,
            )
        body = _json_object(headers, raw)
        is_error = body is not None and _has_code_and_message(body)
        error_detail = f" ({body['code']}: {body['message']})" if body is not None and is_error else ""
        code = str(body["code"]) if body is not None and is_error else None
        if status == 429:
            retry_after = headers.get("Retry-After") or ""
            raise Unavailable(
                f"the gate is throttling requests (HTTP 429){error_detail} ({where})",
                status=status,
                code=code,
                retry_after=float(retry_after) if retry_after.isdigit() else None,
            )
        if status >= 500:
            raise Unavailable(f"the gate failed with HTTP {status}{error_detail} ({where})", status=status, code=code)
        if body is None:
            content_type = headers.get("Content-Type") or "no content type"
            raise Unavailable(
                f"the answer (HTTP {status}, {content_type}) is not Release Gate's JSON; "
                f"is RELEASEGATE_URL the gate? ({where})",
                status=status,
            )
        if 200 <= status < 300 or (400 <= status < 500 and _has_code_and_message(body)):
            return Answer(status, body)
        raise Unavailable(f"unexpected answer HTTP {status} ({where})", status=status)


def rejection(answer: Answer, *, content: bool) -> CliError:
    """What a 4xx error answer means for the pipeline. ``content`` is true for the commands
    whose input is a document the gate judges (a changelog, an evidence file): there, 400, 409
    and 413 refuse the document (1). Elsewhere they mean the arguments are wrong (2)."""
    status, code, message = answer.status, answer.code, answer.message
    fields = answer.body.get("fields") if isinstance(answer.body.get("fields"), dict) else {}
    if status == 401:
        return UsageError(
            f"the gate does not accept the token ({code}): {message} Check RELEASEGATE_TOKEN.",
            status=status,
            code=code,
        )
    if status in {403, 404}:
        return UsageError(f"the gate refused ({status} {code}): {message}", status=status, code=code, fields=fields)
    if status in {400, 409, 413}:
        kind = Refused if content else UsageError
        return kind(f"the gate refused ({status} {code}): {message}", status=status, code=code, fields=fields)
    return Unavailable(f"unexpected answer HTTP {status} ({code}): {message}", status=status, code=code)


# --- results and output -------------------------------------------------------------------


@dataclass
class Result:
    exit_code: int
    outcome: str
    lines: list[str]
    result: Any
    quiet: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class Output:
    def __init__(self, *, as_json: bool, quiet: bool, request_id: str) -> None:
        self.as_json = as_json
        self.quiet = quiet
        self.request_id = request_id

    def progress(self, line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    def done(self, command: str, result: Result) -> int:
        if self.as_json:
            self._json(
                command,
                exit_code=result.exit_code,
                outcome=result.outcome,
                result=result.result,
                error=None,
                extra=result.extra,
            )
        elif self.quiet and result.quiet is not None:
            print(result.quiet, flush=True)
        else:
            for line in result.lines:
                print(line, flush=True)
        return result.exit_code

    def failed(self, command: str, error: CliError) -> int:
        if error.usage and not self.as_json:
            print(error.usage.rstrip(), file=sys.stderr)
        print(f"releasegate: error: {error.message}", file=sys.stderr)
        for path, problems in error.fields.items():
            for problem in problems if isinstance(problems, list) else [problems]:
                if isinstance(problem, dict):
                    print(f"  {path or '(request)'}: {problem.get('code')}: {problem.get('message')}", file=sys.stderr)
        if error.exit_code == EXIT_UNAVAILABLE:
            print(
                "releasegate: no trustworthy answer from the gate: failing closed (exit 3). Do not deploy.",
                file=sys.stderr,
            )
        if not isinstance(error, UsageError) or error.status is not None:
            print(f"releasegate: request id {self.request_id}", file=sys.stderr)
        sys.stderr.flush()
        if self.as_json:
            self._json(
                command,
                exit_code=error.exit_code,
                outcome=error.outcome,
                result=error.result,
                error=error.to_json(),
                extra={},
            )
        return error.exit_code

    def _json(
        self, command: str, *, exit_code: int, outcome: str, result: Any, error: Any, extra: dict[str, Any]
    ) -> None:
        document = {
            "command": command,
            "exit_code": exit_code,
            "outcome": outcome,
            **extra,
            "request_id": self.request_id,
            "result": result,
            "error": error,
        }
        print(json.dumps(document, indent=2, sort_keys=False), flush=True)


# --- commands -----------------------------------------------------------------------------


def _valid_decision(answer: Answer, asked: dict[str, Any]) -> dict[str, Any]:
    """The gate's decision, or Unavailable when the answer is not clearly one about what was asked."""
    if answer.status != 200:
        raise rejection(answer, content=False)
    body = answer.body
    reasons = body.get("reasons")
    if body.get("decision") not in {"allow", "deny"} or not isinstance(reasons, list):
        raise Unavailable("the gate's answer has no allow/deny decision; treating it as no answer", result=body)
    if not all(_has_code_and_message(reason) for reason in reasons):
        raise Unavailable("the gate's answer has malformed reasons; treating it as no answer", result=body)
    for name in ("service", "environment", "artifact_digest"):
        if body.get(name) != asked[name]:
            raise Unavailable(f"the gate answered about another {name} ({body.get(name)!r}); treating it as no answer")
    if body["decision"] == "allow" and asked.get("changelog") and body.get("changelog") != asked["changelog"]:
        raise Unavailable("the gate allowed another changelog than the one named; treating it as no answer")
    return body


def _reason_lines(reasons: list[dict[str, Any]]) -> list[str]:
    return [f"  - {reason['code']}: {reason['message']}" for reason in reasons]


def _decision_result(decision: dict[str, Any], waited: float | None, attempts: int) -> Result:
    allowed = decision["decision"] == "allow"
    head = (
        f"{'ALLOW' if allowed else 'DENY'} {decision['service']} {decision['artifact_digest']} "
        f"to {decision['environment']}"
    )
    lines = [head]
    if allowed:
        changelog = f"changelog {decision.get('changelog')} revision {decision.get('revision')}"
        lines.append(f"  {changelog}, policy {decision.get('policy')}")
        lines.append(f"  decision {decision.get('decision_id')}, valid until {decision.get('valid_until')}")
    else:
        lines += _reason_lines(decision["reasons"])
        lines.append(f"  decision {decision.get('decision_id')}")
        if waited is not None:
            lines.append(f"  still denied after waiting {format_duration(waited)} ({attempts} checks)")
    extra: dict[str, Any] = {"decision": decision["decision"], "reasons": decision["reasons"]}
    if waited is not None:
        extra |= {"waited_seconds": round(waited, 3), "attempts": attempts}
    return Result(EXIT_OK if allowed else EXIT_NO, decision["decision"], lines, decision, extra=extra)


def cmd_check(args: argparse.Namespace, gate: Gate, out: Output) -> Result:
    asked: dict[str, Any] = {"service": args.service, "environment": args.env, "artifact_digest": args.digest}
    if args.changelog:
        asked["changelog"] = args.changelog
    if not args.wait:
        return _decision_result(_valid_decision(gate.post_json("/gate/check", asked), asked), None, 1)

    started = time.monotonic()
    deadline = started + args.wait
    out.progress(
        f"releasegate: waiting up to {format_duration(args.wait)} for the gate to allow {args.service} "
        f"{args.digest} to {args.env}, asking every {format_duration(args.interval)}"
    )
    last: dict[str, Any] | None = None
    last_error: Unavailable | None = None
    shown: Any = None
    attempts = 0
    while True:
        attempts += 1
        delay = args.interval
        minutes, seconds = divmod(int(time.monotonic() - started), 60)
        elapsed = f"{minutes:02d}:{seconds:02d}"
        try:
            last = _valid_decision(gate.post_json("/gate/check", asked), asked)
            last_error = None
        except Unavailable as error:
            last_error = error
            if shown != ("error", error.message):
                out.progress(f"[{elapsed}] no answer: {error.message}; asking again until the time runs out")
                shown = ("error", error.message)
            delay = max(delay, error.retry_after or 0)
        else:
            if last["decision"] == "allow":
                return _decision_result(last, time.monotonic() - started, attempts)
            reasons = tuple((reason["code"], reason["message"]) for reason in last["reasons"])
            if shown != reasons:
                out.progress("\n".join([f"[{elapsed}] denied; waiting for:", *_reason_lines(last["reasons"])]))
                shown = reasons
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        time.sleep(min(delay, remaining))
    waited = time.monotonic() - started
    if last_error is not None or last is None:
        final = last_error or Unavailable("no answer from the gate")
        final.message = f"{final.message}; gave up after waiting {format_duration(waited)}"
        raise final
    return _decision_result(last, waited, attempts)


def _changelog_lines(verb: str, changelog: dict[str, Any]) -> list[str]:
    revision = changelog.get("revision") or {}
    lines = [
        f"Changelog {changelog['id']} {verb}: {changelog.get('service')} ({changelog.get('kind')}), "
        f"revision {revision.get('number')}, status {changelog.get('status')}"
    ]
    if revision.get("content_hash"):
        lines.append(f"  content sha256 {revision['content_hash']}")
    return lines


def _changelog_body(answer: Answer, *, expect: set[int]) -> dict[str, Any]:
    if answer.status not in expect:
        raise rejection(answer, content=True)
    if not isinstance(answer.body.get("id"), str) or not isinstance(answer.body.get("revision"), dict):
        raise Unavailable("the gate's answer does not describe a changelog", result=answer.body)
    return answer.body


def _changelog_document(args: argparse.Namespace) -> dict[str, Any]:
    return apply_settings(read_changelog_file(args.file), args.set or [])


def cmd_changelog_create(args: argparse.Namespace, gate: Gate, out: Output) -> Result:
    document = _changelog_document(args)
    changelog = _changelog_body(gate.post_json("/changelogs/", document), expect={201})
    lines = [*_changelog_lines("created as a draft", changelog), "  add evidence, then: releasegate changelog submit"]
    lines[-1] += f" --changelog {changelog['id']}"
    return Result(EXIT_OK, "created", lines, changelog, quiet=changelog["id"])


def cmd_changelog_submit(args: argparse.Namespace, gate: Gate, out: Output) -> Result:
    if not args.file and not args.changelog:
        raise UsageError(
            "changelog submit needs -f FILE (create and submit), --changelog ID, or both (edit and submit)"
        )
    changelog_id = args.changelog
    before: dict[str, Any] | None = None
    if args.file:
        document = _changelog_document(args)
        if changelog_id:
            current = _changelog_body(gate.request("GET", f"/changelogs/{changelog_id}/"), expect={200})
            for name in IDENTITY_FIELDS:
                if name in document and document[name] != current.get(name):
                    raise UsageError(
                        f"the file says {name} {document[name]!r} but changelog {changelog_id} is {current.get(name)!r}"
                    )
            content = {key: value for key, value in document.items() if key not in IDENTITY_FIELDS}
            edit = gate.request(
                "PATCH", f"/changelogs/{changelog_id}/", json.dumps(content).encode(), "application/json"
            )
            before = _changelog_body(edit, expect={200})
        else:
            before = _changelog_body(gate.post_json("/changelogs/", document), expect={201})
            changelog_id = before["id"]
    try:
        changelog = _changelog_body(gate.request("POST", f"/changelogs/{changelog_id}/submit"), expect={200})
    except CliError as error:
        if before is not None:
            error.result = {"changelog": before}
            error.message += f" (changelog {changelog_id} is saved as a draft but not submitted)"
        raise
    return Result(
        EXIT_OK, "submitted", _changelog_lines("submitted for approval", changelog), changelog, quiet=changelog["id"]
    )


def _file_read(name: str) -> tuple[Path, bytes]:
    path = Path(name)
    if not path.is_file():
        raise UsageError(f"{name}: no such file")
    try:
        return path, path.read_bytes()
    except OSError as error:
        raise UsageError(f"{name}: cannot be read: {error}") from error


def _same_bytes(recorded: dict[str, Any], data: bytes) -> None:
    """The gate answers the SHA-256 of what it stored: anything else was not what was sent."""
    sent = hashlib.sha256(data).hexdigest()
    if recorded.get("sha256") != sent:
        raise Unavailable(
            f"the gate recorded sha256 {recorded.get('sha256')!r} but the file sent has {sent}", result=recorded
        )


def cmd_evidence_add(args: argparse.Namespace, gate: Gate, out: Output) -> Result:
    path, data = _file_read(args.file)
    fields = {
        "kind": args.kind,
        "format": args.format or "",
        "environment": args.environment or "",
        "artifact_digest": args.artifact_digest or "",
        "tool": args.tool or "",
        "journeys": args.journeys or "",
    }
    body, content_type = multipart_encode({k: v for k, v in fields.items() if v}, file_name=path.name, data=data)
    answer = gate.request("POST", f"/changelogs/{args.changelog}/evidence/", body, content_type)
    if answer.status != 201:
        raise rejection(answer, content=True)
    evidence = answer.body
    _same_bytes(evidence, data)
    lines = [
        f"Evidence {evidence.get('id')} stored on changelog {args.changelog}: {evidence.get('kind')} "
        f"({evidence.get('format')}) {evidence.get('file_name')}, {evidence.get('size')} bytes",
        f"  sha256 {evidence['sha256']}",
        f"  verdict {evidence.get('verdict')}",
    ]
    if evidence.get("verdict") == "fail":
        lines.append("  the parser found failures in this file: the gate will deny until they are gone")
    return Result(
        EXIT_OK, "stored", lines, evidence, quiet=str(evidence.get("id")), extra={"verdict": evidence.get("verdict")}
    )


def cmd_deploy_report(args: argparse.Namespace, gate: Gate, out: Output) -> Result:
    report: dict[str, Any] = {
        "service": args.service,
        "environment": args.env,
        "artifact_digest": args.digest,
        "status": args.status,
        "pipeline_run_url": args.run_url or "",
        "started_at": args.started_at or _utc_text(datetime.now(UTC).replace(microsecond=0)),
        "finished_at": args.finished_at,
    }
    if args.data_change_executor:  # only when named: the derived keys of earlier reports stay the same
        report["data_change_executor"] = args.data_change_executor
    key = args.key or deployment_key(report)
    answer = gate.post_json("/deployments/", {"idempotency_key": key, **report})
    if answer.status not in {200, 201}:
        raise rejection(answer, content=False)
    deployment = answer.body
    if not isinstance(deployment.get("unauthorised"), bool) or not isinstance(deployment.get("id"), str):
        raise Unavailable("the gate's answer does not describe a deployment", result=deployment)
    repeated = answer.status == 200
    head = (
        f"Deployment {deployment['id']} {'was already recorded' if repeated else 'recorded'}: "
        f"{deployment.get('service')} {deployment.get('artifact_digest')} to {deployment.get('environment')}, "
        f"{deployment.get('status')}"
    )
    extra = {"unauthorised": deployment["unauthorised"], "repeated": repeated, "idempotency_key": key}
    if deployment["unauthorised"]:
        lines = [
            head,
            "  UNAUTHORISED: no allow decision of the gate covers this deployment. It is flagged to the "
            "domain's signing authorities and auditors.",
        ]
        if deployment.get("not_covered_because"):
            lines.append(f"  why: {deployment['not_covered_because']} (docs/gate.md)")
        return Result(EXIT_NO, "unauthorised", lines, deployment, quiet=deployment["id"], extra=extra)
    lines = [head, f"  covered by gate decision {deployment.get('decision')}, changelog {deployment.get('changelog')}"]
    return Result(EXIT_OK, "recorded", lines, deployment, quiet=deployment["id"], extra=extra)


def cmd_deploy_smoke(args: argparse.Namespace, gate: Gate, out: Output) -> Result:
    """The production smoke test of the critical journeys, reported against the deployment it
    tested (PR-19). Exit 0 when every critical journey passed; 1 when one did not: the gate
    has then marked the deployment failed and the change rolled back, and the pipeline runs
    the rollback plan it prints."""
    path, data = _file_read(args.file)
    body, content_type = multipart_encode({}, file_name=path.name, data=data)
    answer = gate.request("POST", f"/deployments/{args.deployment}/smoke", body, content_type)
    if answer.status != 201:
        raise rejection(answer, content=True)
    smoke = answer.body
    if not isinstance(smoke.get("passed"), bool) or not isinstance(smoke.get("journeys"), dict):
        raise Unavailable("the gate's answer does not describe a smoke test", result=smoke)
    _same_bytes(smoke, data)
    journeys = ", ".join(f"{journey} {outcome}" for journey, outcome in sorted(smoke["journeys"].items()))
    head = f"Smoke test {smoke.get('id')} of deployment {args.deployment} recorded: {path.name}"
    extra = {"passed": smoke["passed"], "failed_journeys": smoke.get("failed_journeys") or []}
    if smoke["passed"]:
        lines = [head, f"  passed: {journeys or 'no critical journeys'}"]
        return Result(EXIT_OK, "passed", lines, smoke, quiet=str(smoke.get("id")), extra=extra)
    failed = ", ".join(extra["failed_journeys"]) or "a critical journey"
    lines = [
        head,
        f"  FAILED: {failed} (all: {journeys})",
        "  the gate marked the deployment failed and the change rolled back, and told the domain's signing "
        "authorities: run the change's rollback plan now (docs/gate.md)",
    ]
    return Result(EXIT_NO, "failed", lines, smoke, quiet=str(smoke.get("id")), extra=extra)


# --- the command line ---------------------------------------------------------------------


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is raised so that it can leave as JSON with --json; the
    exit code stays argparse's 2."""

    def error(self, message: str) -> NoReturn:
        error = UsageError(message)
        error.usage = self.format_usage()
        raise error


def _global_options(parser: argparse.ArgumentParser, *, defaults: bool) -> None:
    """Global options work before and after the command; the command's copy only overrides
    what is given there."""

    def default(value: Any) -> Any:
        return value if defaults else argparse.SUPPRESS

    parser.add_argument("--url", default=default(None), help="the gate's base URL (default: $RELEASEGATE_URL)")
    parser.add_argument(
        "--token", default=default(None), help="API token (default: $RELEASEGATE_TOKEN; prefer the variable)"
    )
    parser.add_argument(
        "--timeout",
        type=_duration_arg(0.1),
        default=default(10.0),
        metavar="DURATION",
        help="per request (default 10s)",
    )
    parser.add_argument("--json", action="store_true", default=default(False), help="print one JSON document")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="releasegate",
        description="Talk to Release Gate from a CI pipeline. Exit codes: 0 allowed/done, 1 the gate said no, "
        "2 usage or configuration, 3 no trustworthy answer (fail closed).",
    )
    _global_options(parser, defaults=True)
    parser.add_argument("--version", action="version", version=f"releasegate-cli {version()}")
    common = _Parser(add_help=False)
    _global_options(common, defaults=False)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    check = commands.add_parser("check", parents=[common], help="may this artifact be deployed now?")
    check.add_argument("--service", required=True, type=_slug_arg)
    check.add_argument("--digest", required=True, type=_digest_arg, help="sha256:<64 hex> of the artifact")
    check.add_argument("--env", default="production", help="default production")
    check.add_argument("--changelog", type=_uuid_arg, help="match this changelog only")
    check.add_argument(
        "--wait", type=_duration_arg(0), default=0.0, metavar="DURATION", help="ask again while denied, up to this long"
    )
    check.add_argument(
        "--interval", type=_duration_arg(0.1), default=15.0, metavar="DURATION", help="between checks (default 15s)"
    )
    check.set_defaults(handler=cmd_check, command_name="check")

    changelog = commands.add_parser("changelog", help="create and submit changelogs")
    changelog_commands = changelog.add_subparsers(dest="subcommand", metavar="SUBCOMMAND", parser_class=_Parser)
    for name, handler, text in (
        ("create", cmd_changelog_create, "create a draft from a file (add evidence, then submit)"),
        ("submit", cmd_changelog_submit, "submit for approval: a new one from a file, or --changelog ID"),
    ):
        sub = changelog_commands.add_parser(name, parents=[common], help=text)
        sub.add_argument("-f", "--file", required=name == "create", help="changelog as .yaml, .yml or .json")
        if name == "submit":
            sub.add_argument("--changelog", type=_uuid_arg, help="the draft to submit (edited first when -f is given)")
        sub.add_argument(
            "--set",
            action="append",
            metavar="PATH=VALUE",
            help="set a text field of the file, e.g. artifact.digest=sha256:... (repeatable)",
        )
        sub.add_argument("-q", "--quiet", action="store_true", help="print only the changelog id")
        sub.set_defaults(handler=handler, command_name=f"changelog {name}")

    evidence = commands.add_parser("evidence", help="attach evidence files")
    evidence_commands = evidence.add_subparsers(dest="subcommand", metavar="SUBCOMMAND", parser_class=_Parser)
    add = evidence_commands.add_parser("add", parents=[common], help="upload one file to a draft changelog")
    add.add_argument("--changelog", required=True, type=_uuid_arg)
    add.add_argument("--kind", required=True, choices=EVIDENCE_KINDS)
    add.add_argument("--format", help="e.g. junit, k6_summary, sarif (detected from the content when left out)")
    add.add_argument("--environment", help="where it ran, e.g. staging")
    add.add_argument("--artifact-digest", help="the artifact digest (sha256:…) the tests or measurements ran against")
    add.add_argument("--tool", help="the tool that produced it, e.g. pytest")
    add.add_argument("--journeys", help="journey ids the file is meant to cover, comma-separated")
    add.add_argument("-q", "--quiet", action="store_true", help="print only the evidence id")
    add.add_argument("file", metavar="FILE")
    add.set_defaults(handler=cmd_evidence_add, command_name="evidence add")

    deploy = commands.add_parser("deploy", help="report deployments")
    deploy_commands = deploy.add_subparsers(dest="subcommand", metavar="SUBCOMMAND", parser_class=_Parser)
    report = deploy_commands.add_parser("report", parents=[common], help="report what was deployed")
    report.add_argument("--service", required=True, type=_slug_arg)
    report.add_argument("--digest", required=True, type=_digest_arg, help="the digest actually deployed")
    report.add_argument("--status", required=True, choices=DEPLOYMENT_STATUSES)
    report.add_argument("--env", default="production", help="default production")
    report.add_argument("--run-url", type=_url_arg, help="the pipeline run, e.g. $CI_PIPELINE_URL")
    report.add_argument("--started-at", type=_timestamp_arg, help="ISO 8601 with offset (default: now)")
    report.add_argument("--finished-at", type=_timestamp_arg, help="ISO 8601 with offset")
    report.add_argument(
        "--data-change-executor", help="who ran the change's data changes (username or e-mail; none of its approvers)"
    )
    report.add_argument("--key", help="idempotency key (default: derived from the report itself)")
    report.add_argument("-q", "--quiet", action="store_true", help="print only the deployment id")
    report.set_defaults(handler=cmd_deploy_report, command_name="deploy report")
    smoke = deploy_commands.add_parser(
        "smoke", parents=[common], help="report the production smoke test of the critical journeys"
    )
    smoke.add_argument("--deployment", required=True, type=_uuid_arg, help="the id `deploy report` printed")
    smoke.add_argument("-q", "--quiet", action="store_true", help="print only the smoke test's id")
    smoke.add_argument("file", metavar="FILE", help="JUnit XML, Playwright or CTRF JSON, tagged with journey ids")
    smoke.set_defaults(handler=cmd_deploy_smoke, command_name="deploy smoke")
    return parser


def main(argv: Sequence[str] | None = None, environ: dict[str, str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    request_id = uuid.uuid4().hex
    out = Output(as_json="--json" in arguments, quiet=False, request_id=request_id)
    command = "releasegate"
    try:
        parser = build_parser()
        args = parser.parse_args(arguments)
        if not hasattr(args, "handler"):
            error = UsageError("name a command: check, changelog create|submit, evidence add, deploy report|smoke")
            error.usage = parser.format_usage()
            raise error
        command = args.command_name
        out = Output(as_json=args.json, quiet=getattr(args, "quiet", False), request_id=request_id)
        gate = Gate(connection_from(args, request_id, dict(os.environ if environ is None else environ)))
        return out.done(command, args.handler(args, gate, out))
    except CliError as error:
        return out.failed(command, error)
    except KeyboardInterrupt:
        return out.failed(command, Unavailable("interrupted before the gate answered"))


if __name__ == "__main__":
    sys.exit(main())
