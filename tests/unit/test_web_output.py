"""SiteBuild: staged builds go live whole, identical builds touch nothing, failed steps keep their files."""

from __future__ import annotations

from pathlib import Path

import pytest

from workers.web.output import MANIFEST, ForeignDirectory, SiteBuild, read_manifest


def build(output: Path, files: dict[str, str], failed: set[str] | None = None) -> tuple[bool, int]:
    site = SiteBuild(output)
    for path, text in files.items():
        step, _, _ = path.partition("/") if "/" in path else ("root", "", "")
        site.write(step, path, text)
    outcome = site.publish(failed or set())
    return outcome.changed, outcome.carried_over


def mtimes(site: Path) -> dict[str, int]:
    return {str(p.relative_to(site)): p.stat().st_mtime_ns for p in site.rglob("*") if p.is_file()}


def test_a_build_goes_live_through_a_symlink_and_an_identical_one_changes_nothing(tmp_path: Path) -> None:
    output = tmp_path / "dist"
    assert build(output, {"index.html": "home", "pages/a.html": "a"}) == (True, 0)
    assert output.is_symlink() and (output / "pages/a.html").read_text() == "a"
    target, before = output.readlink(), mtimes(output)

    assert build(output, {"index.html": "home", "pages/a.html": "a"}) == (False, 0)
    assert output.readlink() == target and mtimes(output) == before
    assert [p.name for p in tmp_path.iterdir() if ".staging-" in p.name] == []


def test_a_failed_step_keeps_its_files_from_the_live_site(tmp_path: Path) -> None:
    output = tmp_path / "dist"
    build(output, {"index.html": "v1", "pages/a.html": "a1", "pages/b.html": "b1"})
    changed, carried = build(output, {"index.html": "v2"}, failed={"pages"})
    assert (changed, carried) == (True, 2)
    assert (output / "index.html").read_text() == "v2" and (output / "pages/b.html").read_text() == "b1"
    manifest = read_manifest(output)
    assert manifest is not None and manifest["pages/a.html"][0] == "pages"


def test_an_empty_directory_is_converted_to_a_symlink_on_first_publish(tmp_path: Path) -> None:
    output = tmp_path / "dist"
    output.mkdir()
    build(output, {"index.html": "home"})
    assert output.is_symlink() and (output / "index.html").read_text() == "home"


def test_a_directory_with_files_it_did_not_publish_is_refused_and_left_alone(tmp_path: Path) -> None:
    output = tmp_path / "dist"
    output.mkdir()
    (output / "stale.html").write_text("someone else's")
    for _ in range(3):
        with pytest.raises(ForeignDirectory, match="holds files sp-scheduler did not publish"):
            SiteBuild(output)
    assert not output.is_symlink() and (output / "stale.html").read_text() == "someone else's"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dist"], "nothing staged, moved or locked beside it"


def test_a_directory_this_code_published_in_place_is_moved_aside_then_pruned(tmp_path: Path) -> None:
    output = tmp_path / "dist"
    output.mkdir()
    (output / "index.html").write_text("old")
    (output / MANIFEST).write_text('{"version": 1, "files": {"index.html": {"step": "s", "sha256": "x"}}}')
    build(output, {"index.html": "new"})
    assert output.is_symlink() and (output / "index.html").read_text() == "new"


def test_a_mount_point_is_updated_file_by_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    output = tmp_path / "volume"
    output.mkdir()
    (output / "operator-notes.txt").write_text("not ours")
    monkeypatch.setattr(Path, "is_mount", lambda self: self == output)
    build(output, {"index.html": "v1", "pages/a.html": "a", "pages/gone.html": "x"})
    assert not output.is_symlink() and (output / MANIFEST).is_file()
    kept = (output / "pages/a.html").stat().st_mtime_ns

    build(output, {"index.html": "v2", "pages/a.html": "a"})
    assert (output / "index.html").read_text() == "v2"
    assert (output / "pages/a.html").stat().st_mtime_ns == kept, "unchanged files are not rewritten"
    assert not (output / "pages/gone.html").exists() and (output / "operator-notes.txt").exists()
    assert [p.name for p in output.iterdir() if ".staging-" in p.name] == []


@pytest.mark.parametrize("path", ["../escape.html", "/abs.html", "a/./b.html", MANIFEST, ""])
def test_paths_outside_the_site_are_refused(tmp_path: Path, path: str) -> None:
    site = SiteBuild(tmp_path / "dist")
    with pytest.raises(ValueError, match="not a site path"):
        site.write("step", path, "x")
    site.discard()


def test_a_path_is_written_once(tmp_path: Path) -> None:
    site = SiteBuild(tmp_path / "dist")
    site.write("one", "index.html", "a")
    with pytest.raises(FileExistsError, match="written twice"):
        site.write("two", "index.html", "b")
    site.discard()
