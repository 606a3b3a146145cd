"""Commit authors from the source: who wrote the commits a change deploys, as GitHub says.

Nobody who wrote a commit of a change may approve it, and the pipeline's own list of commit
authors (``content["commit_authors"]``) is whatever the pipeline chose to write. With the GitHub
App configured, Release Gate reads the authors itself, in the background after submission:

1. beat's ``commit_authors_sweep`` (every 15 s) finds the revisions submitted in the last week
   whose authors are not read yet (or whose last attempt failed and is due again), claims each
   for a while (a lease) and hands it to a worker (``commit_authors_read``);
2. the worker authenticates as the App (its JWT, releasegate/github.py), finds the App's
   installation on the service's repository and takes an installation token narrowed to that
   repository and to reading (contents, pull requests);
3. it lists the commits the change deploys: those between the service's previous deployed
   revision (the source revision of its latest covered, succeeded deployment) and the
   changelog's ``source_revision`` (``compare``); without a previous deployment, those of the
   pull request linked in the changelog, if it is this repository's and ends at
   ``source_revision`` (``pulls/N/commits``); else the head commit alone (``commits/SHA``);
4. each commit's author (name, e-mail and GitHub login) and every ``Co-authored-by`` trailer of
   its message are stored with the revision and where they came from
   (``changelogs.services.commit_authors_record``), audited on the changelog.

Approvals then exclude those authors as they exclude the declared ones (approvals.rules), and a
policy can require them per risk tier (``require_verified_commit_authors``: the gate denies
``commit_authors_unverified`` until they are read). Calls have short timeouts; a failed attempt
is retried with back-off, then the read is marked failed (and the change stays unverified).
"""

import json
import logging
import re
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from changelogs.authors import co_authors
from changelogs.models import ChangelogRevision, CommitAuthorsSource, CommitAuthorsStatus, RevisionStatus, Service
from changelogs.services import commit_authors_claim, commit_authors_record
from outbox.attempts import retry_delay
from releasegate.github import (
    GitHubCallError,
    github_app_jwt,
    github_opener,
    github_private_key,
    github_request,
)
from releasegate.models import Deployment, DeploymentStatus

logger = logging.getLogger(__name__)

TIMEOUT_SECONDS = 5
MAX_ATTEMPTS = 6
RETRY_BASE_SECONDS = 15
# A read lost with its worker is claimed again after this.
LEASE = timedelta(minutes=2)
# Submissions older than this are not read any more (GitHub configured later, a long outage).
LOOKBACK = timedelta(days=7)
PER_PAGE = 100
# At most this many pages of commits (1,000): beyond, the read is kept as incomplete.
MAX_PAGES = 10
# GitHub lists at most 250 commits of a pull request.
PULL_REQUEST_COMMITS_LIMIT = 250
SWEEP_LIMIT = 100

_PULL_PATH = re.compile(r"^/(?P<owner>[^/]+)/(?P<repo>[^/]+)/pull/(?P<number>[1-9][0-9]{0,9})/?$")


class GitHubNotFound(GitHubCallError):
    """404: no such installation, repository, commit or pull request. Asking again will not help."""


def _call(method: str, path: str, *, bearer: str, query: Mapping[str, Any] | None = None, payload: Any = None) -> Any:
    """One call to the configured GitHub API; its JSON answer, or GitHubCallError."""
    url = f"{settings.GITHUB_API_URL}{path}" + (f"?{urlencode(query)}" if query else "")
    request = github_request(url, method=method, bearer=bearer, payload=payload, what=path)
    try:
        with github_opener.open(request, timeout=TIMEOUT_SECONDS) as response:
            return json.loads(response.read(8 * 1024 * 1024))
    except urllib.error.HTTPError as error:
        with error:
            detail = error.read(4096).decode("utf-8", "replace")[:300]
        kind = GitHubNotFound if error.code == 404 else GitHubCallError
        raise kind(f"{method} {path}: HTTP {error.code} {error.reason}: {detail}") from None
    except (urllib.error.URLError, OSError) as error:  # refused, unreachable, TLS, timeout
        raise GitHubCallError(f"{method} {path}: {type(error).__name__}: {getattr(error, 'reason', error)}") from None
    except ValueError:
        raise GitHubCallError(f"{method} {path}: the answer is not JSON") from None


# Which repository, which commits


def github_web_host() -> str:
    """The host repositories live on for the configured API: github.com for api.github.com,
    the server itself for GitHub Enterprise Server (HOST/api/v3)."""
    host = urlsplit(settings.GITHUB_API_URL).netloc.lower()
    return host.removeprefix("api.")


def github_repository(service: Service) -> tuple[str, str] | None:
    """(owner, name) of the service's repository when it is on the configured GitHub."""
    parts = urlsplit(service.repository_url.strip())
    if parts.netloc.lower() != github_web_host():
        return None
    segments = [segment for segment in parts.path.split("/") if segment]
    if len(segments) != 2:
        return None
    return segments[0], segments[1].removesuffix(".git")


def linked_pull_request(content: Mapping[str, Any], owner: str, repo: str) -> int | None:
    """The number of the first pull request of this repository among the changelog's links."""
    for link in content.get("artifact", {}).get("links", []):
        parts = urlsplit(str(link.get("url", "")))
        match = _PULL_PATH.match(parts.path)
        if (
            match
            and parts.netloc.lower() == github_web_host()
            and (match["owner"].lower(), match["repo"].lower().removesuffix(".git")) == (owner.lower(), repo.lower())
        ):
            return int(match["number"])
    return None


def previous_deployed_revision(revision: ChangelogRevision) -> str:
    """The source revision of the service's latest covered, succeeded deployment of another
    change: where the commits this change deploys begin."""
    found: str | None = (
        Deployment.objects.filter(
            service_id=revision.changelog.service_id,
            status=DeploymentStatus.SUCCEEDED,
            unauthorised=False,
            decision__revision__isnull=False,
        )
        .exclude(changelog_id=revision.changelog_id)
        .order_by("-reported_at")
        .values_list("decision__revision__source_revision", flat=True)
        .first()
    )
    return found or ""


# Reading


def commit_authors(commit: Mapping[str, Any]) -> list[dict[str, str]]:
    """The author and co-authors of one commit of GitHub's REST API (its ``commit.author``, the
    GitHub account it is linked to, and the message's ``Co-authored-by`` trailers)."""
    detail = commit.get("commit") or {}
    author = detail.get("author") or {}
    account = commit.get("author") or {}
    found = [
        {
            "name": str(author.get("name") or ""),
            "email": str(author.get("email") or ""),
            "login": str(account.get("login") or ""),
            "role": "author",
        }
    ]
    found += [
        {"name": name, "email": email, "login": "", "role": "co_author"}
        for name, email in co_authors(str(detail.get("message") or ""))
    ]
    return found


@dataclass
class _Read:
    source: str
    repository: str
    head: str
    base: str = ""
    pull_request: int | None = None
    commits: list[Mapping[str, Any]] = field(default_factory=list)
    complete: bool = True


def _installation_token(owner: str, repo: str, *, now: datetime) -> str:
    """An installation token for the App's installation on the repository, for that repository
    only and for reading only."""
    jwt = github_app_jwt(now=now, app_id=settings.GITHUB_APP_ID, private_key=github_private_key())
    path = f"/repos/{quote(owner, safe='')}/{quote(repo, safe='')}"
    installation = _call("GET", f"{path}/installation", bearer=jwt)
    answer = _call(
        "POST",
        f"/app/installations/{int(installation['id'])}/access_tokens",
        bearer=jwt,
        payload={"repositories": [repo], "permissions": {"contents": "read", "pull_requests": "read"}},
    )
    token = answer.get("token") if isinstance(answer, dict) else None
    if not isinstance(token, str) or not token:
        raise GitHubCallError("installation token: the answer carries no token")
    return token


def _pages(path: str, *, token: str, limit: int) -> Iterator[Any]:
    for page in range(1, limit + 1):
        yield _call("GET", path, bearer=token, query={"per_page": PER_PAGE, "page": page})


def _read_commits(revision: ChangelogRevision, owner: str, repo: str, *, now: datetime) -> _Read:
    token = _installation_token(owner, repo, now=now)
    path = f"/repos/{quote(owner, safe='')}/{quote(repo, safe='')}"
    head = revision.source_revision
    read = _Read(source=CommitAuthorsSource.COMMIT, repository=f"{owner}/{repo}", head=head)
    base = previous_deployed_revision(revision)
    if base and base != head:
        read.source, read.base = CommitAuthorsSource.COMPARE, base
        total = 0
        for answer in _pages(
            f"{path}/compare/{quote(base, safe='')}...{quote(head, safe='')}", token=token, limit=MAX_PAGES
        ):
            total = int(answer.get("total_commits") or 0)
            read.commits += answer.get("commits") or []
            if len(read.commits) >= total or not answer.get("commits"):
                break
        read.complete = len(read.commits) >= total
    elif (number := linked_pull_request(revision.content, owner, repo)) is not None:
        pull = _call("GET", f"{path}/pulls/{number}", bearer=token)
        if head in {(pull.get("head") or {}).get("sha"), pull.get("merge_commit_sha")}:
            read.source, read.pull_request = CommitAuthorsSource.PULL_REQUEST, number
            for answer in _pages(f"{path}/pulls/{number}/commits", token=token, limit=3):
                read.commits += answer or []
                if len(answer or []) < PER_PAGE:
                    break
            count = int(pull.get("commits") or 0)
            read.complete = len(read.commits) >= count and count <= PULL_REQUEST_COMMITS_LIMIT
        # A link to a pull request that does not end at source_revision is not this change's:
        # only the head commit is read then.
    if not any(commit.get("sha") == head for commit in read.commits):
        # The head commit itself (a merge or squash commit; or nothing else to read).
        read.commits.append(_call("GET", f"{path}/commits/{quote(head, safe='')}", bearer=token))
    return read


def _unique(authors: list[dict[str, str]]) -> list[dict[str, str]]:
    seen: set[tuple[str, str, str]] = set()
    unique = []
    for author in authors:
        key = (author["email"].lower(), author["login"].lower(), author["role"])
        if key not in seen:
            seen.add(key)
            unique.append(author)
    return unique


def commit_authors_attempt(*, revision_id: Any, now: datetime | None = None) -> str:
    """One attempt to read a revision's commit authors, recorded; returns the status."""
    now = now or timezone.now()
    revision = ChangelogRevision.objects.select_related("changelog", "changelog__service").get(pk=revision_id)
    repository = github_repository(revision.changelog.service)
    if repository is None:
        commit_authors_record(
            revision=revision,
            status=CommitAuthorsStatus.FAILED,
            error=f"the service's repository URL is not a repository on {github_web_host()}",
            now=now,
        )
        return CommitAuthorsStatus.FAILED
    owner, repo = repository
    try:
        read = _read_commits(revision, owner, repo, now=now)
    except GitHubCallError as error:
        attempts = (getattr(getattr(revision, "commit_authors_read", None), "attempts", 0) or 0) + 1
        final = isinstance(error, GitHubNotFound) or attempts >= MAX_ATTEMPTS
        logger.log(
            logging.ERROR if final else logging.WARNING,
            "commit authors of %s (%s/%s@%s), attempt %d: %s",
            revision.pk,
            owner,
            repo,
            revision.source_revision,
            attempts,
            error,
        )
        status = CommitAuthorsStatus.FAILED if final else CommitAuthorsStatus.RETRY
        commit_authors_record(
            revision=revision,
            status=status,
            repository=f"{owner}/{repo}",
            head=revision.source_revision,
            error=str(error),
            next_attempt_at=None if final else now + timedelta(seconds=retry_delay(attempts, base=RETRY_BASE_SECONDS)),
            now=now,
        )
        return status
    status = CommitAuthorsStatus.READ if read.complete else CommitAuthorsStatus.INCOMPLETE
    commit_authors_record(
        revision=revision,
        status=status,
        source=read.source,
        repository=read.repository,
        base=read.base,
        head=read.head,
        pull_request=read.pull_request,
        commits=[str(commit.get("sha") or "") for commit in read.commits],
        authors=_unique([author for commit in read.commits for author in commit_authors(commit)]),
        now=now,
    )
    return status


def commit_authors_due(*, now: datetime | None = None, limit: int = SWEEP_LIMIT) -> list[str]:
    """Claim the revisions whose commit authors are to be read now: submitted in the last week
    and not read yet, or due for another attempt. Each claim is a lease (``LEASE``)."""
    if not settings.GITHUB_APP_ID:
        return []
    now = now or timezone.now()
    with transaction.atomic():
        due = list(
            ChangelogRevision.objects.select_for_update(skip_locked=True, of=("self",))
            .filter(
                Q(commit_authors_read__isnull=True, submitted_at__gte=now - LOOKBACK)
                | Q(
                    commit_authors_read__status=CommitAuthorsStatus.RETRY, commit_authors_read__next_attempt_at__lte=now
                ),
                status=RevisionStatus.SUBMITTED,
                changelog__current_revision=F("pk"),
            )
            .order_by("submitted_at")[:limit]
        )
        for revision in due:
            commit_authors_claim(revision=revision, now=now, until=now + LEASE)
    return [str(revision.pk) for revision in due]
