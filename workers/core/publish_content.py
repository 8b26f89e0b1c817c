"""`publish_content`: markdown files under services/content/ become rows of the `content` table.

A sync, keyed by slug: new files are inserted, changed ones (by content hash) updated, and rows whose
file disappeared are unpublished, never deleted (the URL's history stays). Running it twice in a row
changes nothing. Rows without a source_path belong to the application and are never touched.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from sp_scheduler import Job, JobContext, JobResult, Param
from workers.core.content_files import ContentFile, scan_content

LOCK_NAME = "sp-scheduler:publish_content"  # two syncs at once would race on the same slugs

_EXISTING = "SELECT id, slug, source_path, content_hash, published FROM content"
_INSERT = (
    "INSERT INTO content (slug, kind, title, description, body, front_matter, tags, content_hash, source_path,"
    " published, published_at)"
    " VALUES (%(slug)s, %(kind)s, %(title)s, %(description)s, %(body)s, %(front_matter)s, %(tags)s,"
    " %(content_hash)s, %(source_path)s, %(published)s,"
    " coalesce(%(published_at)s, CASE WHEN %(published)s THEN now() END))"
)
_UPDATE = (
    "UPDATE content SET kind = %(kind)s, title = %(title)s, description = %(description)s, body = %(body)s,"
    " front_matter = %(front_matter)s, tags = %(tags)s, content_hash = %(content_hash)s,"
    " source_path = %(source_path)s, published = %(published)s,"
    " published_at = coalesce(%(published_at)s, published_at, CASE WHEN %(published)s THEN now() END),"
    " updated_at = now()"
    " WHERE id = %(id)s AND source_path IS NOT NULL"
)
_UNPUBLISH = (
    "UPDATE content SET published = false, updated_at = now()"
    " WHERE id = ANY(%(ids)s::uuid[]) AND source_path IS NOT NULL AND published"
)


@dataclass(frozen=True, slots=True)
class StoredContent:
    """What the sync needs to know about a row already in the table."""

    id: uuid.UUID
    slug: str
    source_path: str | None
    content_hash: str
    published: bool


@dataclass(slots=True)
class SyncPlan:
    """What a sync does: computed from the files and the table, applied (or only counted) afterwards."""

    inserts: list[ContentFile] = field(default_factory=list)
    updates: list[tuple[uuid.UUID, ContentFile]] = field(default_factory=list)
    unpublish: list[StoredContent] = field(default_factory=list)
    unchanged: int = 0
    failures: dict[str, str] = field(default_factory=dict)  # source path -> reason


def plan_sync(files: Sequence[ContentFile], problems: Mapping[str, str], stored: Sequence[StoredContent]) -> SyncPlan:
    """Compare files with rows by slug. Rows of files that failed to parse are left as they are."""
    plan = SyncPlan(failures=dict(problems))
    by_slug = {row.slug: row for row in stored}
    for item in files:
        row = by_slug.get(item.slug)
        if row is None:
            plan.inserts.append(item)
        elif row.source_path is None:
            plan.failures[item.source_path] = f"slug {item.slug!r} belongs to content the application manages"
        elif row.content_hash != item.content_hash or row.published != item.published:
            plan.updates.append((row.id, item))
        else:
            plan.unchanged += 1
    slugs = {item.slug for item in files}
    plan.unpublish = [
        row
        for row in stored
        if row.source_path is not None
        and row.published
        and row.slug not in slugs
        and row.source_path not in plan.failures
    ]
    return plan


class PublishContent(Job):
    name = "publish_content"
    description = "Syncs content files under services/content/ into the database"
    schedule = "0 */30 * * * *"
    parameters = (
        Param("dry_run", "bool", False, "report what would change, change nothing"),
        Param("allow_empty", "bool", False, "allow unpublishing everything when no content files are found"),
    )

    async def execute(self, ctx: JobContext) -> JobResult:
        dry_run: bool = ctx.param("dry_run")
        allow_empty: bool = ctx.param("allow_empty")
        root = ctx.services_dir / "content"
        if not root.is_dir():
            return JobResult.failure(f"content directory {root} not found (set SP_SERVICES_DIR?)")
        files, problems = await asyncio.to_thread(scan_content, root)
        async with ctx.db_pool.connection() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (LOCK_NAME,))
            async with conn.cursor(row_factory=dict_row) as cur:
                stored = [StoredContent(**row) for row in await (await cur.execute(_EXISTING)).fetchall()]
            plan = plan_sync(files, problems, stored)
            if not files and not problems and plan.unpublish and not allow_empty:
                return JobResult.failure(
                    f"no content files under {root}: refusing to unpublish {len(plan.unpublish)} items"
                    " (run with allow_empty=true if that is what you want)"
                )
            counts = (len(plan.inserts), len(plan.updates), len(plan.unpublish))
            if not dry_run:
                counts = await _apply(conn, plan)
        for path, reason in sorted(plan.failures.items()):
            ctx.logger.error("content file not published", extra={"path": path, "reason": reason})
        return _result(plan, counts, dry_run)


async def _apply(conn: psycopg.AsyncConnection[Any], plan: SyncPlan) -> tuple[int, int, int]:
    inserted = updated = 0
    async with conn.cursor() as cur:
        for item in plan.inserts:
            await cur.execute(_INSERT, _row(item))
            inserted += cur.rowcount
        for row_id, item in plan.updates:
            await cur.execute(_UPDATE, {**_row(item), "id": row_id})
            updated += cur.rowcount
        await cur.execute(_UNPUBLISH, {"ids": [row.id for row in plan.unpublish]})
        unpublished = cur.rowcount
    return inserted, updated, unpublished


def _row(item: ContentFile) -> dict[str, Any]:
    return {
        "slug": item.slug,
        "kind": item.kind,
        "title": item.title,
        "description": item.description,
        "body": item.body,
        "front_matter": Jsonb(item.front_matter),
        "tags": list(item.tags),
        "content_hash": item.content_hash,
        "source_path": item.source_path,
        "published": item.published,
        "published_at": item.published_at,
    }


def _result(plan: SyncPlan, counts: tuple[int, int, int], dry_run: bool) -> JobResult:
    inserted, updated, unpublished = counts
    verb = "would publish" if dry_run else "published"
    message = f"{verb} {inserted} new, {updated} updated, {unpublished} unpublished, {plan.unchanged} unchanged"
    if dry_run:
        message = "dry run: " + message
    failed = len(plan.failures)
    if failed:
        listed = "; ".join(f"{path}: {reason}" for path, reason in sorted(plan.failures.items())[:3])
        more = f" and {failed - 3} more" if failed > 3 else ""
        message += f"; {failed} file(s) failed: {listed}{more}"
    result = JobResult.failure(message) if failed else JobResult.success()
    return result.with_stats(inserted + updated + unpublished, failed).with_message(message)
