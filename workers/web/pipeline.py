"""publish_pipeline: the seeds' nine publishing steps, each isolated, then one atomic publish.

Every step writes into a private staging build (workers/web/output.py); a failing step is logged
and the others still run. After the ninth step the build is published as a whole: files of failed
steps are carried over from the live site, and a build identical to the live one is dropped.
"""

from __future__ import annotations

import asyncio
import dataclasses
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

from psycopg.rows import dict_row

from sp_scheduler import Job, JobContext, JobResult, Param, PipelineStats
from sp_scheduler.params import resolve_params
from workers.core.publish_content import PublishContent
from workers.web.feeds import atom_feed, llms_txt, robots_txt, sitemap_xml
from workers.web.output import ForeignDirectory, PublishOutcome, SiteBuild
from workers.web.render import Entry, Site, load_site_config, render_pages, template_environment

STAGED_ASSETS = "_assets/"
ASSET_FOLDERS = {
    ".css": "static/css/",
    ".js": "static/js/",
    ".mjs": "static/js/",
    **dict.fromkeys((".png", ".jpg", ".jpeg", ".gif", ".svg", ".webp", ".ico", ".avif"), "static/images/"),
}

_ENTRIES = (
    "SELECT slug, kind, title, description, body, tags, published_at, updated_at"
    " FROM content WHERE published ORDER BY slug"
)


class StepFailed(RuntimeError):
    """A step could not do its part; the message says why."""


@dataclass(frozen=True, slots=True)
class PipelineOptions:
    """Where the pipeline reads from and writes to, from the context and the job's parameters."""

    output_dir: Path
    templates_dir: Path
    site_file: Path
    site_assets_dir: Path
    base_url: str | None

    @classmethod
    def from_context(cls, ctx: JobContext) -> PipelineOptions:
        web = ctx.services_dir / "web"
        return cls(
            output_dir=ctx.param("output_dir") or ctx.output_dir,
            templates_dir=ctx.param("templates_dir") or web / "templates",
            site_file=web / "site.yaml",
            site_assets_dir=web / "assets",
            base_url=ctx.param("base_url"),
        )


class PublishRun:
    """One run's steps, sharing the staging build and the site (loaded from the database once)."""

    def __init__(self, ctx: JobContext, options: PipelineOptions, build: SiteBuild) -> None:
        self.ctx = ctx
        self.options = options
        self.build = build
        self._site: Site | None = None

    async def site(self) -> Site:
        if self._site is None:
            config = load_site_config(self.options.site_file, self.options.base_url)
            async with self.ctx.db_pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
                rows = await (await cur.execute(_ENTRIES)).fetchall()
            self._site = Site(config, [_entry(row) for row in rows])
        return self._site

    async def content_ingestion(self) -> None:
        """The publish_content job's sync, as is: files under services/content/ become `content` rows."""
        defaults = resolve_params(PublishContent.parameters, {})
        result = await PublishContent().execute(dataclasses.replace(self.ctx, parameters=defaults))
        self.ctx.logger.info("content ingested", extra={"summary": result.message})
        if not result.ok:
            raise StepFailed(result.message or "content sync failed")

    async def asset_copy(self) -> None:
        await asyncio.to_thread(self._copy_assets)

    async def content_prerender(self) -> None:
        site = await self.site()
        fragments = [(entry.fragment_path, site.fragment(entry)) for entry in site.entries]
        await asyncio.to_thread(self._write, "content_prerender", fragments)

    async def page_prerender(self) -> None:
        site = await self.site()
        # Every page is rendered before the first is written: a template error leaves no half set behind.
        pages = list(render_pages(template_environment(self.options.templates_dir), site))
        await asyncio.to_thread(self._write, "page_prerender", pages)

    async def sitemap_generation(self) -> None:
        site = await self.site()
        await asyncio.to_thread(self.build.write, "sitemap_generation", "sitemap.xml", sitemap_xml(site))

    async def llms_txt_generation(self) -> None:
        site = await self.site()
        await asyncio.to_thread(self.build.write, "llms_txt_generation", "llms.txt", llms_txt(site))

    async def robots_txt_generation(self) -> None:
        site = await self.site()
        await asyncio.to_thread(self.build.write, "robots_txt_generation", "robots.txt", robots_txt(site))

    async def rss_feed_generation(self) -> None:
        site = await self.site()
        await asyncio.to_thread(self.build.write, "rss_feed_generation", "feed.xml", atom_feed(site))

    async def asset_organization(self) -> None:
        await asyncio.to_thread(self._organize_assets)

    def _write(self, step: str, files: list[tuple[str, str]]) -> None:
        for path, text in files:
            self.build.write(step, path, text)

    def _copy_assets(self) -> None:
        """The extension's assets, then the site's own (services/web/assets/), which win on a name clash."""
        found = dict(_walk(resources.files("workers.web") / "assets"))
        if self.options.site_assets_dir.is_dir():
            found.update(_walk(self.options.site_assets_dir))
        if not found:
            raise StepFailed("no assets found in the extension or in services/web/assets/")
        for relative, data in sorted(found.items()):
            self.build.write("asset_copy", STAGED_ASSETS + relative, data)

    def _organize_assets(self) -> None:
        staged = self.build.paths(STAGED_ASSETS)
        if not staged:
            raise StepFailed("asset copy staged nothing to organize")
        for path in staged:
            relative = path.removeprefix(STAGED_ASSETS)
            folder = ASSET_FOLDERS.get(Path(relative).suffix.lower())
            final = folder + Path(relative).name if folder else "static/" + relative
            self.build.move("asset_organization", path, final)


STEPS = (
    "content_ingestion",
    "asset_copy",
    "content_prerender",
    "page_prerender",
    "sitemap_generation",
    "llms_txt_generation",
    "robots_txt_generation",
    "rss_feed_generation",
    "asset_organization",
)


class PublishPipeline(Job):
    name = "publish_pipeline"
    description = "Orchestrates the whole publishing workflow: ingest, prerender, sitemap, feeds, assets"
    schedule = "0 */15 * * * *"
    run_on_startup = True
    parameters = (
        Param("output_dir", "path", None, "publish here instead of SP_OUTPUT_DIR", root="output"),
        Param("templates_dir", "path", None, "Jinja templates (default services/web/templates)", root="services"),
        Param("base_url", "str", None, "absolute URL of the site, overriding site.yaml's base_url"),
    )

    async def execute(self, ctx: JobContext) -> JobResult:
        options = PipelineOptions.from_context(ctx)
        try:
            build = await asyncio.to_thread(SiteBuild, options.output_dir)
        except ForeignDirectory as exc:
            return JobResult.failure(str(exc))
        run = PublishRun(ctx, options, build)
        stats = PipelineStats(ctx.logger)
        try:
            await stats.step("content_ingestion", run.content_ingestion)
            await stats.step("asset_copy", run.asset_copy)
            await stats.step("content_prerender", run.content_prerender)
            await stats.step("page_prerender", run.page_prerender)
            await stats.step("sitemap_generation", run.sitemap_generation)
            await stats.step("llms_txt_generation", run.llms_txt_generation)
            await stats.step("robots_txt_generation", run.robots_txt_generation)
            await stats.step("rss_feed_generation", run.rss_feed_generation)
            await stats.step("asset_organization", run.asset_organization)
            failed = {name for name, _ in stats.failures}
            outcome = await asyncio.to_thread(build.publish, failed)
        finally:
            await asyncio.to_thread(build.discard)
        ctx.logger.info(
            "site published" if outcome.changed else "site unchanged",
            extra={
                "output_dir": str(options.output_dir),
                "files": outcome.files,
                "carried_over": outcome.carried_over,
                "mode": outcome.mode,
            },
        )
        result = stats.result()
        return result.with_message(f"{result.message}; {_describe(outcome, options.output_dir)}")


def _describe(outcome: PublishOutcome, output_dir: Path) -> str:
    kept = f", {outcome.carried_over} kept from failed steps" if outcome.carried_over else ""
    if not outcome.changed:
        return f"site unchanged ({outcome.files} files in {output_dir})"
    return f"published {outcome.files} files to {output_dir}{kept}"


def _entry(row: dict[str, Any]) -> Entry:
    return Entry(
        slug=row["slug"],
        kind=row["kind"],
        title=row["title"],
        description=row["description"],
        body=row["body"],
        tags=tuple(row["tags"] or ()),
        published_at=row["published_at"],
        updated_at=row["updated_at"],
    )


def _walk(root: Traversable | Path, prefix: str = "") -> list[tuple[str, bytes]]:
    """(relative path, bytes) of every file under `root`; names starting with '.' are skipped."""
    if not root.is_dir():
        return []
    found: list[tuple[str, bytes]] = []
    for child in sorted(root.iterdir(), key=lambda c: c.name):
        if child.name.startswith("."):
            continue
        if child.is_dir():
            found += _walk(child, f"{prefix}{child.name}/")
        else:
            found.append((prefix + child.name, child.read_bytes()))
    return found
