"""Checking the name a client gave an uploaded file. Pure: no Django."""

import re
import unicodedata

_UNSAFE = re.compile(r"[^A-Za-z0-9._+-]+")
MAX_NAME_LENGTH = 200


def file_name_problem(name: str) -> str | None:
    """Why the name is refused, or None. Names that try to leave their folder are refused
    outright rather than quietly cleaned: they are an attack or a broken client."""
    if not name or not name.strip():
        return "The file has no name."
    if "/" in name or "\\" in name or name.strip() in {".", ".."}:
        return "File names may not contain path separators or '..'."
    if any(unicodedata.category(char).startswith("C") for char in name):
        return "File names may not contain control characters."
    return None


def file_name_clean(name: str) -> str:
    """A safe, readable name to show and to offer on download (the bytes are stored under
    their hash, never under this name)."""
    normal = unicodedata.normalize("NFKD", name.strip()).encode("ascii", "ignore").decode("ascii")
    cleaned = _UNSAFE.sub("_", normal).strip("._") or "evidence"
    if len(cleaned) > MAX_NAME_LENGTH:
        stem, dot, extension = cleaned.rpartition(".")
        cleaned = (stem[: MAX_NAME_LENGTH - len(extension) - 1] + dot + extension) if dot else cleaned[:MAX_NAME_LENGTH]
    return cleaned
