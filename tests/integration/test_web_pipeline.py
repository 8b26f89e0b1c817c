"""publish_pipeline turns the shipped example content into a browsable site, atomically and idempotently."""

from __future__ import annotations

import functools
import http.server
import json
import os
import shutil
import threading
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from selenium.webdriver.common.by import By

from tests.integration.conftest import System
from tests.support.browser import headless_chromium

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
BASE_URL = "https://example.test"
ATOM = "{http://www.w3.org/2005/Atom}"
SITEMAP = "{http://www.sitemaps.org/schemas/sitemap/0.9}"
STEPS = 9


@pytest.fixture(autouse=True)
def _configured(system: System) -> None:
    system.configure(
        [{"name": "publish_pipeline", "extension": "web", "job": "publish_pipeline", "schedule": "", "enabled": True}]
    )


@pytest.fixture
def services(tmp_path: Path) -> Path:
    """A copy of the shipped services/ tree, so a test may edit content without touching the repository."""
    target = tmp_path / "services"
    for part in ("content", "web"):
        shutil.copytree(ROOT / "services" / part, target / part)
    return target


def publish(system: System, services: Path, output: Path, *params: str) -> tuple[int, dict[str, Any]]:
    """Run the pipeline in-process; (exit code, its run record)."""
    args = ["-p", f"output_dir={output}", "-p", f"base_url={BASE_URL}"]
    for param in params:
        args += ["-p", param]
    # Output directories live next to services/ in each test's tmp_path: that is the output root.
    env = {"SP_SERVICES_DIR": str(services), "SP_OUTPUT_ROOT": str(services.parent)}
    result = system.cli("jobs", "run", "publish_pipeline", "--local", "--json", *args, **env)
    assert result.stdout.startswith("["), result.output
    (record,) = json.loads(result.stdout)
    return result.exit_code, record


def snapshot(site: Path) -> dict[str, int]:
    """Every file of the live site and its mtime, in nanoseconds."""
    return {str(p.relative_to(site)): p.stat().st_mtime_ns for p in sorted(site.rglob("*")) if p.is_file()}


def test_the_example_content_becomes_a_complete_site(system: System, services: Path, tmp_path: Path) -> None:
    output = tmp_path / "web" / "dist"
    code, record = publish(system, services, output)
    assert code == 0, record
    assert record["status"] == "succeeded"
    assert (record["items_processed"], record["items_failed"]) == (STEPS, 0)
    assert output.is_symlink(), "the live site is a symlink swapped atomically"

    pages = [
        "index.html",
        "about/index.html",
        "blog/hello-world/index.html",
        "blog/inside-the-publish-pipeline/index.html",
    ]
    for page in pages:
        html = (output / page).read_text()
        assert html.startswith("<!doctype html>") and '<link rel="stylesheet" href="/static/css/site.css">' in html
    about = (output / "about/index.html").read_text()
    assert "<h1>About</h1>" in about and about.count("<h1>") == 1, "the markdown H1 becomes the page title once"
    assert "<table>" in about, "CommonMark plus tables"
    home = (output / "index.html").read_text()
    assert home.index("Inside the publish pipeline") < home.index("Hello, world"), "newest post first"
    for asset in ("static/css/site.css", "static/js/site.js", "static/images/logo.svg"):
        assert (output / asset).is_file(), asset
    assert not (output / "_assets").exists(), "asset organization moved everything to its final path"
    assert "<h1>" not in (output / "fragments/blog/hello-world.html").read_text()

    urls = [loc.text for loc in ET.parse(output / "sitemap.xml").getroot().iter(f"{SITEMAP}loc")]
    assert urls == [
        f"{BASE_URL}/",
        f"{BASE_URL}/about/",
        f"{BASE_URL}/blog/hello-world/",
        f"{BASE_URL}/blog/inside-the-publish-pipeline/",
    ]
    assert (output / "robots.txt").read_text() == f"User-agent: *\nAllow: /\n\nSitemap: {BASE_URL}/sitemap.xml\n"
    llms = (output / "llms.txt").read_text()
    assert llms.startswith("# Example site\n\n> ") and f"- [About]({BASE_URL}/about/)" in llms
    assert f"- [Hello, world]({BASE_URL}/blog/hello-world/): The first post" in llms

    feed = ET.parse(output / "feed.xml").getroot()
    assert feed.tag == f"{ATOM}feed"
    for required in ("id", "title", "updated", "author"):
        assert feed.find(f"{ATOM}{required}") is not None, required
    entries = feed.findall(f"{ATOM}entry")
    assert [e.findtext(f"{ATOM}title") for e in entries] == ["Inside the publish pipeline", "Hello, world"]
    for entry in entries:
        assert entry.findtext(f"{ATOM}id", "").startswith(f"{BASE_URL}/blog/")
        datetime.fromisoformat(entry.findtext(f"{ATOM}updated", ""))
        content = entry.find(f"{ATOM}content")
        assert content is not None and content.get("type") == "html" and "<p>" in (content.text or "")
        assert entry.find(f"{ATOM}link") is not None


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """An http.server on 127.0.0.1 serving the (future) output directory."""
    output = tmp_path / "dist"
    handler = functools.partial(_QuietHandler, directory=str(output))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield output, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    with headless_chromium(tmp_path / "chromium-profile") as driver:
        yield driver


def test_a_real_browser_opens_the_site_and_follows_a_link(
    system: System, services: Path, served: tuple[Path, str], browser: Any
) -> None:
    output, origin = served
    code, record = publish(system, services, output)
    assert code == 0, record

    browser.get(origin + "/")
    assert browser.title == "Welcome"
    assert browser.find_element(By.TAG_NAME, "h1").text == "Welcome"
    color = browser.execute_script("return getComputedStyle(document.body).backgroundColor")
    assert color == "rgb(253, 253, 252)", "the stylesheet from static/css/ applies"

    browser.find_element(By.LINK_TEXT, "About").click()
    assert browser.current_url == origin + "/about/"
    assert browser.find_element(By.TAG_NAME, "h1").text == "About"
    current = browser.find_element(By.CSS_SELECTOR, 'nav a[aria-current="page"]')
    assert current.text == "About", "site.js ran and marked the current page"

    browser.find_element(By.LINK_TEXT, "Home").click()
    browser.find_element(By.LINK_TEXT, "Hello, world").click()
    assert browser.current_url == origin + "/blog/hello-world/"
    assert "six-field cron expression" in browser.find_element(By.TAG_NAME, "article").text


def test_an_unchanged_site_is_not_rewritten_and_a_change_is_swapped_in(
    system: System, services: Path, tmp_path: Path
) -> None:
    output = tmp_path / "dist"
    assert publish(system, services, output)[0] == 0
    build, before = output.readlink(), snapshot(output)

    code, record = publish(system, services, output)
    assert code == 0 and "site unchanged" in record["message"], record
    assert output.readlink() == build and snapshot(output) == before, "not one file was rewritten"

    about = services / "content" / "about.md"
    about.write_text(about.read_text().replace("The example site shows", "This example site shows"))
    code, record = publish(system, services, output)
    assert code == 0 and "published" in record["message"], record
    assert output.readlink() != build, "the new build went live through the symlink"
    assert "This example site shows" in (output / "about/index.html").read_text()
    assert len(list(output.parent.glob(".dist.build-*"))) == 2, "the previous build is kept, older ones pruned"
    assert not list(output.parent.glob(".dist.staging-*")), "no staging directory is left behind"


def test_a_broken_template_fails_only_page_prerender(system: System, services: Path, tmp_path: Path) -> None:
    broken = services / "broken-templates"  # template paths must be inside the services directory
    shutil.copytree(services / "web" / "templates", broken)
    (broken / "page.html").write_text("{% extends 'base.html' %}{% block main %}{{ entry.title }{% endblock %}")

    fresh = tmp_path / "fresh"
    code, record = publish(system, services, fresh, f"templates_dir={broken}")
    assert code != 0 and record["status"] == "failed"
    assert (record["items_processed"], record["items_failed"]) == (STEPS - 1, 1)
    assert "page_prerender" in record["message"] and "8 of 9 steps succeeded" in record["message"]
    assert not (fresh / "index.html").exists() and not (fresh / "about").exists()
    for made in ("sitemap.xml", "robots.txt", "llms.txt", "feed.xml", "static/css/site.css", "fragments/about.html"):
        assert (fresh / made).is_file(), made

    # Against a live site, the failed step's pages stay online (carried over from the previous build).
    live = tmp_path / "live"
    assert publish(system, services, live)[0] == 0
    about = services / "content" / "about.md"
    about.write_text(about.read_text() + "\nOne more line.\n")
    code, record = publish(system, services, live, f"templates_dir={broken}")
    assert (code != 0, record["items_processed"], record["items_failed"]) == (True, STEPS - 1, 1)
    assert "kept from failed steps" in record["message"]
    assert "One more line." not in (live / "about/index.html").read_text(), "the last good page is served"
    assert "One more line." in (live / "fragments/about.html").read_text(), "the other steps moved on"


def pipeline_at(system: System, services: Path, root: Path, output: Path) -> Any:
    """Run the pipeline against `output` with `root` as the deployment's output root."""
    env = {"SP_SERVICES_DIR": str(services), "SP_OUTPUT_ROOT": str(root)}
    return system.cli("jobs", "run", "publish_pipeline", "--local", "--json", "-p", f"output_dir={output}", **env)


def tree(directory: Path) -> dict[str, bytes]:
    return {str(p.relative_to(directory)): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


def test_an_output_dir_outside_the_root_is_refused_and_left_intact(
    system: System, services: Path, tmp_path: Path
) -> None:
    root = tmp_path / "web"
    root.mkdir()
    precious = tmp_path / "precious"
    (precious / "sub").mkdir(parents=True)
    (precious / "notes.txt").write_text("keep me")
    (precious / "sub" / "data.bin").write_bytes(b"\x00\x01")
    os.symlink(precious, root / "escape")  # a link inside the root that leads out of it
    before, siblings = tree(precious), sorted(tmp_path.iterdir())
    for target in (precious, root / "escape", root / ".." / "precious") * 3:
        result = pipeline_at(system, services, root, target)
        assert result.exit_code == 2, result.output
        assert "parameter 'output_dir'" in result.stderr and "outside the output root" in result.stderr
    assert tree(precious) == before and not precious.is_symlink()
    assert sorted(tmp_path.iterdir()) == siblings, "nothing was staged or moved next to it"
    assert system.history("publish_pipeline") == [], "no run was recorded"


def test_a_directory_the_pipeline_did_not_create_is_never_moved_or_deleted(
    system: System, services: Path, tmp_path: Path
) -> None:
    root = tmp_path / "web"
    theirs = root / "theirs"
    theirs.mkdir(parents=True)
    (theirs / "index.html").write_text("someone else's site")
    for _ in range(3):
        result = pipeline_at(system, services, root, theirs)
        assert result.exit_code == 1, result.output
        (record,) = json.loads(result.stdout)
        assert record["status"] == "failed" and "holds files sp-scheduler did not publish" in record["message"]
    assert tree(theirs) == {"index.html": b"someone else's site"} and not theirs.is_symlink()
    assert sorted(p.name for p in root.iterdir()) == ["theirs"], "no staging, build or lock file beside it"
    empty = root / "empty"
    empty.mkdir()
    assert pipeline_at(system, services, root, empty).exit_code == 0, "an empty directory is taken over"
    assert empty.is_symlink() and (empty / "index.html").is_file()
