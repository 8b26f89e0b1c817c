"""Parsing markdown content files and planning a content sync: pure, no database."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest

from workers.core.content_files import ContentFileError, parse_content_file, scan_content, split_front_matter
from workers.core.publish_content import StoredContent, plan_sync

SEED_STYLE = """---
title: "Add Background Job"
description: "Add scheduled background tasks to your extension."
author: "SystemPrompt"
slug: "build-02-library-extensions-add-background-job"
keywords: "jobs, background, scheduler, cron"
image: ""
kind: "playbook"
public: true
tags: []
published_at: "2026-02-02"
updated_at: "2026-02-02"
---

# Add Background Job

Add scheduled tasks to your extension.
"""


def write(root: Path, relative: str, text: str) -> Path:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_a_seed_style_file_parses_into_every_stored_field(tmp_path: Path) -> None:
    item = parse_content_file(tmp_path, write(tmp_path, "guides/background.md", SEED_STYLE))
    assert item.slug == "build-02-library-extensions-add-background-job"
    assert (item.kind, item.title, item.published, item.tags) == ("playbook", "Add Background Job", True, ())
    assert item.description == "Add scheduled background tasks to your extension."
    assert item.published_at == datetime(2026, 2, 2, tzinfo=UTC)
    assert item.body.startswith("# Add Background Job\n") and item.source_path == "guides/background.md"
    assert item.front_matter["author"] == "SystemPrompt" and item.front_matter["tags"] == []
    assert len(item.content_hash) == 64


def test_defaults_come_from_the_path_and_the_first_heading(tmp_path: Path) -> None:
    item = parse_content_file(tmp_path, write(tmp_path, "blog/My First Post.md", "# Hello there\n\ntext\n"))
    assert (item.slug, item.kind, item.title, item.published, item.published_at) == (
        "my-first-post",
        "blog",
        "Hello there",
        True,
        None,
    )
    top = parse_content_file(tmp_path, write(tmp_path, "faq.md", "---\ndraft: true\ntags: a, b\n---\nno heading\n"))
    assert (top.slug, top.kind, top.title, top.published, top.tags) == ("faq", "page", "Faq", False, ("a", "b"))


def test_the_hash_changes_with_content_and_path_but_not_with_line_endings(tmp_path: Path) -> None:
    one = parse_content_file(tmp_path, write(tmp_path, "a.md", "---\ntitle: A\n---\nbody\n"))
    same = parse_content_file(tmp_path, write(tmp_path, "a.md", "---\r\ntitle: A\r\n---\r\nbody\r\n"))
    edited = parse_content_file(tmp_path, write(tmp_path, "a.md", "---\ntitle: A\n---\nbody!\n"))
    moved = parse_content_file(tmp_path, write(tmp_path, "b/a.md", "---\ntitle: A\n---\nbody\n"))
    assert one.content_hash == same.content_hash
    assert len({one.content_hash, edited.content_hash, moved.content_hash}) == 3


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("---\ntitle: x\nno end\n", "front matter is not closed"),
        ("---\ntitle: [x\n---\n", "front matter is not valid YAML"),
        ("---\n- a\n- b\n---\n", "front matter must be a mapping"),
        ("---\nslug: Not Valid\n---\n", "slug 'Not Valid' must be lowercase"),
        ("---\npublic: maybe\n---\n", "'public' must be true or false"),
        ("---\npublished_at: soon\n---\n", "'published_at' 'soon' is not an ISO-8601 date"),
        ("---\ntags: {a: 1}\n---\n", "'tags' must be a list"),
        ("---\ntitle: {a: 1}\n---\n", "'title' must be text"),
    ],
)
def test_bad_files_are_rejected_with_a_reason(tmp_path: Path, text: str, reason: str) -> None:
    with pytest.raises(ContentFileError, match=reason):
        parse_content_file(tmp_path, write(tmp_path, "bad.md", text))


def test_front_matter_only_and_empty_front_matter() -> None:
    assert split_front_matter("---\ntitle: T\n---") == ({"title": "T"}, "")
    assert split_front_matter("---\n---\nbody") == ({}, "body")
    assert split_front_matter("no front matter\n---\n") == ({}, "no front matter\n---\n")


def test_scan_skips_hidden_and_underscore_files_and_reports_slug_clashes(tmp_path: Path) -> None:
    write(tmp_path, "a.md", "---\nslug: same\n---\n")
    write(tmp_path, "b.md", "---\nslug: same\n---\n")
    write(tmp_path, "_partial.md", "x")
    write(tmp_path, ".hidden/c.md", "x")
    write(tmp_path, "notes.txt", "x")
    files, problems = scan_content(tmp_path)
    assert [f.source_path for f in files] == ["a.md"]
    assert problems == {"b.md": "slug 'same' is already used by a.md"}


def stored(item_slug: str, path: str | None, digest: str, published: bool = True) -> StoredContent:
    return StoredContent(uuid.uuid4(), item_slug, path, digest, published)


def test_plan_sync_inserts_updates_unpublishes_and_leaves_the_rest(tmp_path: Path) -> None:
    new = parse_content_file(tmp_path, write(tmp_path, "new.md", "new"))
    same = parse_content_file(tmp_path, write(tmp_path, "same.md", "same"))
    changed = parse_content_file(tmp_path, write(tmp_path, "changed.md", "changed"))
    back = parse_content_file(tmp_path, write(tmp_path, "back.md", "back"))
    clash = parse_content_file(tmp_path, write(tmp_path, "app.md", "app"))
    rows = [
        stored("same", "same.md", same.content_hash),
        stored("changed", "changed.md", "old-hash"),
        stored("back", "back.md", back.content_hash, published=False),
        stored("gone", "gone.md", "x"),
        stored("gone-already", "gone2.md", "x", published=False),
        stored("broken", "broken.md", "x"),
        stored("app", None, "x"),
        stored("app-only", None, "x"),
    ]
    plan = plan_sync([new, same, changed, back, clash], {"broken.md": "bad YAML"}, rows)
    assert [item.slug for item in plan.inserts] == ["new"]
    assert sorted(item.slug for _, item in plan.updates) == ["back", "changed"]
    assert [row.slug for row in plan.unpublish] == ["gone"]
    assert plan.unchanged == 1
    assert plan.failures == {"broken.md": "bad YAML", "app.md": "slug 'app' belongs to content the application manages"}
