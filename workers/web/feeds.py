"""The site's machine-readable files: sitemap.xml, robots.txt, llms.txt and an Atom feed of the blog.

Each is a pure function of the site, with absolute URLs from the configured base URL and dates
from the content itself (never the clock), so an unchanged site produces byte-identical files.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence
from datetime import UTC, datetime

from workers.web.render import Entry, Site

SITEMAP_NS = "http://www.sitemaps.org/schemas/sitemap/0.9"
ATOM_NS = "http://www.w3.org/2005/Atom"
FEED_PATH = "/feed.xml"
FEED_LIMIT = 20
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def sitemap_xml(site: Site) -> bytes:
    """Every page of the site, the home page first, with the date its content last changed."""
    root = ET.Element("urlset", {"xmlns": SITEMAP_NS})
    pages: list[tuple[str, datetime | None]] = [("/", _latest(site.entries))]
    pages += [(e.url_path, e.updated_at or e.published_at) for e in site.entries if not e.is_home]
    for url_path, changed in sorted(pages, key=lambda page: (page[0] != "/", page[0])):
        url = ET.SubElement(root, "url")
        ET.SubElement(url, "loc").text = site.config.absolute(url_path)
        if changed is not None:
            ET.SubElement(url, "lastmod").text = changed.astimezone(UTC).date().isoformat()
    return _xml(root)


def robots_txt(site: Site) -> str:
    """Everything may be crawled; the sitemap says where the pages are."""
    return f"User-agent: *\nAllow: /\n\nSitemap: {site.config.absolute('/sitemap.xml')}\n"


def llms_txt(site: Site) -> str:
    """An llms.txt (llmstxt.org): the site's title, summary and a link list of its pages and posts."""
    config = site.config
    lines = [f"# {config.title}", ""]
    if config.description:
        lines += [f"> {config.description}", ""]
    home = site.home
    if home is not None and home.description:
        lines += [home.description, ""]
    for heading, entries in (("Pages", site.pages), ("Blog", site.posts)):
        if not entries:
            continue
        lines += [f"## {heading}", ""]
        lines += [_llms_link(site, entry) for entry in entries]
        lines.append("")
    return "\n".join(lines).rstrip("\n") + "\n"


def atom_feed(site: Site) -> bytes:
    """An Atom 1.0 feed (RFC 4287) of the newest blog posts, full HTML content included."""
    config = site.config
    posts = site.posts[:FEED_LIMIT]
    feed = ET.Element("feed", {"xmlns": ATOM_NS, "xml:lang": config.language})
    ET.SubElement(feed, "title").text = config.title
    if config.description:
        ET.SubElement(feed, "subtitle").text = config.description
    ET.SubElement(feed, "id").text = config.absolute("/")
    ET.SubElement(feed, "link", {"rel": "self", "type": "application/atom+xml", "href": config.absolute(FEED_PATH)})
    ET.SubElement(feed, "link", {"rel": "alternate", "type": "text/html", "href": config.absolute("/")})
    ET.SubElement(feed, "updated").text = _rfc3339(_latest(posts) or EPOCH)
    ET.SubElement(ET.SubElement(feed, "author"), "name").text = config.author
    ET.SubElement(feed, "generator").text = "sp-scheduler"
    for post in posts:
        entry = ET.SubElement(feed, "entry")
        url = config.absolute(post.url_path)
        ET.SubElement(entry, "title").text = post.title
        ET.SubElement(entry, "id").text = url
        ET.SubElement(entry, "link", {"rel": "alternate", "type": "text/html", "href": url})
        if post.published_at is not None:
            ET.SubElement(entry, "published").text = _rfc3339(post.published_at)
        ET.SubElement(entry, "updated").text = _rfc3339(post.updated_at or post.published_at or EPOCH)
        if post.description:
            ET.SubElement(entry, "summary").text = post.description
        ET.SubElement(entry, "content", {"type": "html"}).text = site.fragment(post)
        for tag in post.tags:
            ET.SubElement(entry, "category", {"term": tag})
    return _xml(feed)


def _llms_link(site: Site, entry: Entry) -> str:
    line = f"- [{entry.title}]({site.config.absolute(entry.url_path)})"
    return f"{line}: {entry.description}" if entry.description else line


def _latest(entries: Sequence[Entry]) -> datetime | None:
    dates = [d for entry in entries for d in (entry.updated_at, entry.published_at) if d is not None]
    return max(dates) if dates else None


def _rfc3339(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _xml(root: ET.Element) -> bytes:
    ET.indent(root)
    document: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return document + b"\n"
