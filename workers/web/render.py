"""Markdown to HTML fragments (CommonMark, markdown-it-py) and fragments to pages (Jinja2 templates).

Rendering is pure: entries in, (path, text) pairs out, so the output is a function of the content
and the templates alone. Nothing here reads the clock, which is what lets an unchanged site hash
the same on every run.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

if TYPE_CHECKING:  # imported when a site is built, not whenever the extension is loaded (every CLI command)
    from jinja2 import Environment
    from markdown_it import MarkdownIt

BLOG_KINDS = frozenset({"blog", "post", "posts"})
HOME_SLUG = "index"
STYLESHEET = "/static/css/site.css"
SCRIPT = "/static/js/site.js"
_UNSAFE = re.compile(r"[^a-z0-9_/-]+")


@dataclass(frozen=True, slots=True)
class SiteConfig:
    """The site as a whole: from services/web/site.yaml, with the job's `base_url` parameter on top."""

    title: str = "sp-scheduler example site"
    description: str = ""
    author: str = "sp-scheduler"
    language: str = "en"
    base_url: str = "http://localhost:8000"

    def absolute(self, url_path: str) -> str:
        return self.base_url.rstrip("/") + url_path


def load_site_config(path: Path, base_url: str | None) -> SiteConfig:
    """Read the optional site.yaml (title, description, author, language, base_url)."""
    data: Mapping[str, Any] = {}
    if path.is_file():
        loaded = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        if not isinstance(loaded, dict):
            raise ValueError(f"{path}: expected a mapping of settings")
        data = loaded
    known = {"title", "description", "author", "language", "base_url"}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"{path}: unknown settings {', '.join(unknown)}")
    values = {key: str(value) for key, value in data.items()}
    if base_url:
        values["base_url"] = base_url
    return SiteConfig(**values)


def url_path(slug: str, kind: str) -> str:
    """`/` for the home page, `/<slug>/` for pages, `/blog/<slug>/` for posts, `/<kind>/<slug>/` otherwise."""
    if kind in BLOG_KINDS:
        kind = "blog"
    elif slug == HOME_SLUG:
        return "/"
    slug = _UNSAFE.sub("-", slug.lower()).strip("/-")
    kind = _UNSAFE.sub("-", kind.lower()).strip("/-")
    return f"/{slug}/" if kind in {"", "page"} else f"/{kind}/{slug}/"


@dataclass(frozen=True, slots=True)
class Entry:
    """One published row of the `content` table, with where it lives on the site."""

    slug: str
    kind: str
    title: str
    description: str
    body: str
    tags: tuple[str, ...] = ()
    published_at: datetime | None = None
    updated_at: datetime | None = None

    @property
    def is_blog(self) -> bool:
        return self.kind in BLOG_KINDS

    @property
    def is_home(self) -> bool:
        return self.slug == HOME_SLUG and not self.is_blog

    @property
    def url_path(self) -> str:
        return url_path(self.slug, self.kind)

    @property
    def page_path(self) -> str:
        """The file that serves `url_path`."""
        return self.url_path.lstrip("/") + "index.html"

    @property
    def fragment_path(self) -> str:
        return "fragments" + self.url_path.rstrip("/") + ".html" if not self.is_home else "fragments/index.html"

    @property
    def date(self) -> datetime | None:
        return self.published_at or self.updated_at


@dataclass
class Site:
    """The entries to publish and the renderer that turns their markdown into HTML once per run."""

    config: SiteConfig
    entries: Sequence[Entry]
    _fragments: dict[str, str] = field(default_factory=dict)

    @cached_property
    def markdown(self) -> MarkdownIt:
        # `config validate` imports job modules; renderers only to render.
        from markdown_it import MarkdownIt  # noqa: PLC0415

        # Raw HTML in markdown is escaped: content may come from the application's users, not only the repo.
        return MarkdownIt("commonmark", {"html": False}).enable(["table", "strikethrough"])

    def fragment(self, entry: Entry) -> str:
        """The entry's body as HTML; a leading `# heading` equal to the title is left to the template."""
        if entry.slug not in self._fragments:
            tokens = self.markdown.parse(entry.body)
            if (
                len(tokens) >= 3
                and tokens[0].type == "heading_open"
                and tokens[0].tag == "h1"
                and tokens[1].content.strip() == entry.title.strip()
            ):
                tokens = tokens[3:]
            self._fragments[entry.slug] = self.markdown.renderer.render(tokens, self.markdown.options, {})
        return self._fragments[entry.slug]

    @property
    def home(self) -> Entry | None:
        return next((entry for entry in self.entries if entry.is_home), None)

    @property
    def pages(self) -> list[Entry]:
        return sorted((e for e in self.entries if not e.is_blog and not e.is_home), key=lambda e: e.url_path)

    @property
    def posts(self) -> list[Entry]:
        """Blog posts, newest first (slug breaks ties so the order never depends on the database)."""
        return sorted(
            (e for e in self.entries if e.is_blog),
            key=lambda e: (-(e.date.timestamp() if e.date else 0.0), e.slug),
        )


def template_environment(templates_dir: Path) -> Environment:
    """Sandboxed Jinja2 with HTML autoescaping and undefined variables as errors (a typo fails the step, loudly).

    Sandboxed because templates are data an operator points a parameter at, not code: a template
    cannot reach Python internals (`__class__`, `__globals__`) through the objects it is given.
    """
    from jinja2 import FileSystemLoader, StrictUndefined, select_autoescape  # noqa: PLC0415 -- only to render
    from jinja2.sandbox import SandboxedEnvironment  # noqa: PLC0415 -- only to render

    if not templates_dir.is_dir():
        raise FileNotFoundError(f"templates directory {templates_dir} not found")
    env = SandboxedEnvironment(
        loader=FileSystemLoader(templates_dir),
        autoescape=select_autoescape(["html", "xml"], default_for_string=True),
        undefined=StrictUndefined,
        keep_trailing_newline=True,
    )
    env.filters["isodate"] = lambda value: value.date().isoformat() if value else ""
    return env


def render_pages(env: Environment, site: Site) -> Iterator[tuple[str, str]]:
    """(path, html) for the home page and every entry; every template is loaded before the first page."""
    from markupsafe import Markup  # noqa: PLC0415 -- only to render

    index, page, post = (env.get_template(name) for name in ("index.html", "page.html", "blog_post.html"))
    common = {
        "site": site.config,
        "nav": site.pages,
        "stylesheet": STYLESHEET,
        "script": SCRIPT,
        "feed_url": "/feed.xml",
    }
    home = site.home
    yield (
        "index.html",
        index.render(
            common,
            entry=home,
            content=Markup(site.fragment(home)) if home else Markup(""),  # markdown-it output
            posts=site.posts,
            pages=site.pages,
            canonical=site.config.absolute("/"),
        ),
    )
    for entry in site.entries:
        if entry.is_home:
            continue
        template = post if entry.is_blog else page
        html = template.render(
            common,
            entry=entry,
            content=Markup(site.fragment(entry)),
            canonical=site.config.absolute(entry.url_path),
        )
        yield entry.page_path, html
