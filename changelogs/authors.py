"""Who wrote a change: the commit authors the pipeline declares and those read from the source
host. Pure: no Django.

Nobody who wrote a commit of a change may approve it (PR-04). The pipeline's declaration
(``content["commit_authors"]``) is a list it may leave short; the authors and co-authors read
from the source host (``changelogs.models.CommitAuthors``, read by releasegate/github_commits.py)
are not. Both count, matched on username or e-mail address without regard to case, and a GitHub
no-reply address (``12345+alice@users.noreply.github.com``) also names its login (``alice``).
"""

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

# A "Co-authored-by: Name <address>" trailer, as GitHub reads them (any case, one per line).
_CO_AUTHOR = re.compile(
    r"^[ \t]*co-authored-by:[ \t]*(?P<name>[^<\n]*?)[ \t]*<(?P<email>[^<>\s]+)>[ \t]*$", re.I | re.M
)
_NOREPLY = re.compile(r"^(?:\d+\+)?(?P<login>[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)@users\.noreply\.github\.com$")

# The statuses of a read whose authors count (all that were found), and the one that verifies.
READ = "read"
INCOMPLETE = "incomplete"
EXCLUDING = frozenset({READ, INCOMPLETE})


def co_authors(message: str) -> list[tuple[str, str]]:
    """The (name, e-mail) of each ``Co-authored-by`` trailer of a commit message."""
    return [(match["name"].strip(), match["email"].strip()) for match in _CO_AUTHOR.finditer(message)]


def identities(*, name_or_login: str = "", email: str = "") -> frozenset[str]:
    """The lower-case names a person is matched by: the login or username and the e-mail
    address, plus the login a GitHub no-reply address stands for."""
    found = {name_or_login.strip().lower(), email.strip().lower()}
    noreply = _NOREPLY.match(email.strip().lower())
    if noreply:
        found.add(noreply["login"])
    return frozenset(found - {""})


def author_identities(authors: Iterable[Mapping[str, Any]]) -> frozenset[str]:
    """Everyone in a stored list of authors (``CommitAuthors.authors``), by login and e-mail."""
    found: set[str] = set()
    for author in authors:
        found |= identities(name_or_login=str(author.get("login") or ""), email=str(author.get("email") or ""))
    return frozenset(found)


def declared_identities(content: Mapping[str, Any]) -> frozenset[str]:
    """The pipeline's declaration: usernames or e-mail addresses, lower-case."""
    found: set[str] = set()
    for author in content.get("commit_authors", []):
        found |= identities(name_or_login=author) if "@" not in author else identities(email=author)
    return frozenset(found)


@dataclass(frozen=True)
class RevisionAuthors:
    """The commit authors of one revision, from both sources."""

    declared: tuple[str, ...]  # as the pipeline wrote them
    read: tuple[Mapping[str, Any], ...]  # as the source host says (empty until read)
    status: str  # "" (not read yet), or a CommitAuthorsStatus
    source: str  # "" or a CommitAuthorsSource: which commits were read

    @property
    def verified(self) -> bool:
        """Read from the source host, completely: the declaration no longer matters."""
        return self.status == READ

    @property
    def verified_identities(self) -> frozenset[str]:
        return author_identities(self.read) if self.status in EXCLUDING else frozenset()

    @property
    def identities(self) -> frozenset[str]:
        """Everyone who may not approve as a commit author: declared or read."""
        return declared_identities({"commit_authors": list(self.declared)}) | self.verified_identities

    def excludes(self, *, username: str, email: str) -> bool:
        return bool(identities(name_or_login=username, email=email) & self.identities)


def revision_authors(
    *, content: Mapping[str, Any], status: str = "", source: str = "", read: Sequence[Mapping[str, Any]] = ()
) -> RevisionAuthors:
    return RevisionAuthors(
        declared=tuple(content.get("commit_authors", [])), read=tuple(read), status=status, source=source
    )
