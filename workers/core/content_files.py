"""Markdown content files: YAML front matter between `---` lines, then the markdown body.

Parsing is pure (no database) so publish_content can plan a sync, and tests can check it, without
Postgres. A file that cannot be read or parsed is reported by path and never stops the others.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import yaml

FENCE = "---"
MAX_FILE_BYTES = 5 * 1024 * 1024
SLUG = re.compile(r"^[a-z0-9][a-z0-9_/-]*$")
HEADING = re.compile(r"^#\s+(.+?)\s*#*\s*$", re.MULTILINE)


class ContentFileError(ValueError):
    """A content file that cannot be published; the message says why."""


@dataclass(frozen=True, slots=True)
class ContentFile:
    """One markdown file as it will be stored in the `content` table."""

    source_path: str  # relative to the content directory, with forward slashes
    slug: str
    kind: str
    title: str
    description: str
    body: str
    front_matter: dict[str, Any]
    tags: tuple[str, ...]
    published: bool
    published_at: datetime | None

    @property
    def content_hash(self) -> str:
        """sha256 of everything stored from the file: any change to the file or its path changes it."""
        canonical = {
            "source_path": self.source_path,
            "slug": self.slug,
            "kind": self.kind,
            "title": self.title,
            "description": self.description,
            "body": self.body,
            "front_matter": self.front_matter,
            "tags": list(self.tags),
            "published": self.published,
            "published_at": self.published_at.isoformat() if self.published_at else None,
        }
        encoded = json.dumps(canonical, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
        return hashlib.sha256(encoded.encode("utf-8")).hexdigest()


def split_front_matter(text: str) -> tuple[dict[str, Any], str]:
    """(front matter, body); a file that does not start with `---` has no front matter."""
    text = text.lstrip("\ufeff").replace("\r\n", "\n")
    if not text.startswith(FENCE + "\n"):
        return {}, text
    end = text.find("\n" + FENCE + "\n", len(FENCE))
    if end == -1:
        if text.rstrip("\n").endswith("\n" + FENCE):  # front matter only, no body
            end = text.rstrip("\n").rfind("\n" + FENCE)
        else:
            raise ContentFileError("front matter is not closed by a '---' line")
    raw = text[len(FENCE) + 1 : end + 1]
    body = text[end + len(FENCE) + 2 :]
    try:
        data = yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        raise ContentFileError(f"front matter is not valid YAML: {_first_line(exc)}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ContentFileError("front matter must be a mapping of keys to values")
    return {str(key): _jsonable(value) for key, value in data.items()}, body.lstrip("\n")


def parse_content_file(root: Path, path: Path) -> ContentFile:
    """Read and parse one file under `root`; ContentFileError when it cannot be published."""
    relative = path.relative_to(root).as_posix()
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            raise ContentFileError(f"larger than {MAX_FILE_BYTES // (1024 * 1024)} MiB")
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ContentFileError(f"cannot read: {exc}") from None
    meta, body = split_front_matter(text)
    slug = _text(meta, "slug") or re.sub(r"[^a-z0-9_-]+", "-", path.stem.lower()).strip("-")
    if not SLUG.match(slug):
        raise ContentFileError(f"slug {slug!r} must be lowercase letters, digits, '-', '_' or '/'")
    parts = Path(relative).parts
    heading = HEADING.search(body)
    return ContentFile(
        source_path=relative,
        slug=slug,
        kind=_text(meta, "kind") or (parts[0] if len(parts) > 1 else "page"),
        title=_text(meta, "title") or (heading.group(1) if heading else path.stem.replace("-", " ").title()),
        description=_text(meta, "description"),
        body=body,
        front_matter=meta,
        tags=_tags(meta.get("tags")),
        published=_flag(meta, "public", True) and not _flag(meta, "draft", False),
        published_at=_timestamp(meta.get("published_at")),
    )


def scan_content(root: Path) -> tuple[list[ContentFile], dict[str, str]]:
    """Every publishable `*.md` under `root` (names starting with '.' or '_' are skipped) and the errors.

    Errors map a relative path to the reason. Two files claiming one slug: the first by path wins.
    """
    files: list[ContentFile] = []
    problems: dict[str, str] = {}
    owners: dict[str, str] = {}
    for path in sorted(root.rglob("*.md")):
        relative = path.relative_to(root)
        if any(part.startswith((".", "_")) for part in relative.parts) or not path.is_file():
            continue
        try:
            parsed = parse_content_file(root, path)
        except ContentFileError as exc:
            problems[relative.as_posix()] = str(exc)
            continue
        if parsed.slug in owners:
            problems[parsed.source_path] = f"slug {parsed.slug!r} is already used by {owners[parsed.slug]}"
            continue
        owners[parsed.slug] = parsed.source_path
        files.append(parsed)
    return files, problems


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return " ".join(text.split()) if text else type(exc).__name__


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(key): _jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple | set):
        return [_jsonable(item) for item in value]
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


def _text(meta: dict[str, Any], key: str) -> str:
    value = meta.get(key)
    if value is None:
        return ""
    if isinstance(value, dict | list):
        raise ContentFileError(f"front matter {key!r} must be text")
    return str(value).strip()


def _flag(meta: dict[str, Any], key: str, default: bool) -> bool:
    value = meta.get(key, default)
    if not isinstance(value, bool):
        raise ContentFileError(f"front matter {key!r} must be true or false, not {value!r}")
    return value


def _tags(value: Any) -> tuple[str, ...]:
    if value is None or value == "":
        return ()
    if isinstance(value, str):
        return tuple(tag.strip() for tag in value.split(",") if tag.strip())
    if isinstance(value, list) and all(not isinstance(tag, dict | list) for tag in value):
        return tuple(str(tag).strip() for tag in value if str(tag).strip())
    raise ContentFileError("front matter 'tags' must be a list or a comma-separated string")


def _timestamp(value: Any) -> datetime | None:
    """published_at as an aware datetime: dates are midnight UTC, naive times are UTC."""
    if value is None or value == "":
        return None
    try:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        raise ContentFileError(f"front matter 'published_at' {value!r} is not an ISO-8601 date") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
