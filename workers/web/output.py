"""Atomic site output: a build is staged privately and goes live in one step, or not at all.

The output directory is a symlink to a build directory next to it (`web/dist -> .dist.build-…`);
publishing renames the staged build into place and swaps the link with one atomic rename, so a
reader sees the old site or the new one, never a mix. A content-hash manifest travels with every
build: when a new build hashes the same as the live one nothing is touched (mtimes stay as they
were). When the output directory is a mount point (a Docker volume), it cannot be replaced; the
files are then swapped one by one with atomic renames, each file whole but the site briefly mixed.

Files are attributed to the step that wrote them: when a step fails, its files from the live site
are carried into the new build, so one broken step never takes its part of the site offline.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import secrets
import shutil
import time
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from pathlib import Path

MANIFEST = ".sp-manifest.json"
KEEP_BUILDS = 2  # the live build and the one before it, which requests already under way may still read
STALE_STAGING_SECONDS = 3600  # staging left by a crashed run is removed after this long

Files = dict[str, tuple[str, str]]  # relative path -> (step, sha256)
IGNORED_ENTRIES = frozenset({"lost+found"})  # what a freshly formatted volume holds at its root


class ForeignDirectory(RuntimeError):
    """The output directory holds files sp-scheduler did not publish: it is never moved, changed or deleted."""


@dataclass(frozen=True, slots=True)
class PublishOutcome:
    """What publishing did: whether the live site changed, its size, and the files kept from failed steps."""

    changed: bool
    files: int
    carried_over: int
    mode: str  # "symlink" or "in-place"


class SiteBuild:
    """A site being built in a private staging directory, then published over `output_dir` (or discarded)."""

    def __init__(self, output_dir: Path) -> None:
        self.output_dir = output_dir.absolute()
        self.name = self.output_dir.name
        _refuse_foreign(self.output_dir)
        # A mount point cannot be renamed or replaced: stage inside it and swap file by file.
        self.in_place = self.output_dir.is_dir() and not self.output_dir.is_symlink() and self.output_dir.is_mount()
        self.base = self.output_dir if self.in_place else self.output_dir.parent
        self.base.mkdir(parents=True, exist_ok=True)
        self.root = self.base / f".{self.name}.staging-{_stamp()}"
        self.root.mkdir()
        self.files: Files = {}

    def write(self, step: str, path: str, data: bytes | str) -> None:
        """Write one file of the site; each path may be written once per build."""
        target = self._target(path)
        payload = data.encode("utf-8") if isinstance(data, str) else data
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(payload)
        self.files[path] = (step, hashlib.sha256(payload).hexdigest())

    def move(self, step: str, source: str, path: str) -> None:
        """Move a staged file to its final path; the file now belongs to `step`."""
        if source not in self.files:
            raise FileNotFoundError(f"{source} is not part of this build")
        target = self._target(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(self.root / source, target)
        self.files[path] = (step, self.files.pop(source)[1])

    def paths(self, prefix: str = "") -> list[str]:
        """The staged paths under `prefix`, sorted."""
        return sorted(path for path in self.files if path.startswith(prefix))

    def discard(self) -> None:
        """Remove the staging directory (after a publish it is already gone)."""
        shutil.rmtree(self.root, ignore_errors=True)

    def publish(self, failed_steps: Collection[str] = ()) -> PublishOutcome:
        """Make this build the live site, unless it is identical to it; the staging directory is consumed."""
        with self._lock():
            live = read_manifest(self.output_dir)
            carried = self._carry_over(live, failed_steps)
            mode = "in-place" if self.in_place else "symlink"
            if live is not None and _hashes(live) == _hashes(self.files):
                self.discard()
                return PublishOutcome(False, len(self.files), carried, mode)
            self._write_manifest()
            _remove_empty_dirs(self.root)
            _fsync_tree(self.root)
            if self.in_place:
                self._swap_files(live or {})
            else:
                self._swap_link()
        return PublishOutcome(True, len(self.files), carried, mode)

    def _target(self, path: str) -> Path:
        parts = path.split("/")
        if any(part in {"", ".", ".."} for part in parts) or "\\" in path or path == MANIFEST:
            raise ValueError(f"not a site path: {path!r}")
        if path in self.files:
            raise FileExistsError(f"{path} is written twice (by {self.files[path][0]})")
        return self.root.joinpath(*parts)

    def _carry_over(self, live: Files | None, failed_steps: Collection[str]) -> int:
        carried = 0
        for path, (step, digest) in sorted((live or {}).items()):
            if step not in failed_steps or path in self.files:
                continue
            target = self._target(path)
            target.parent.mkdir(parents=True, exist_ok=True)
            source = self.output_dir / path
            try:
                os.link(source, target)  # published files are never modified in place, so sharing is safe
            except OSError:
                shutil.copyfile(source, target)
            self.files[path] = (step, digest)
            carried += 1
        return carried

    def _write_manifest(self) -> None:
        document = {"version": 1, "files": {p: {"step": s, "sha256": d} for p, (s, d) in sorted(self.files.items())}}
        (self.root / MANIFEST).write_text(json.dumps(document, indent=1, sort_keys=True) + "\n", encoding="utf-8")

    def _swap_link(self) -> None:
        build = self.base / f".{self.name}.build-{_stamp()}"
        os.rename(self.root, build)
        link = self.base / f".{self.name}.link-{_stamp()}"
        os.symlink(build.name, link)
        if self.output_dir.is_dir() and not self.output_dir.is_symlink():
            if _is_empty(self.output_dir):  # made by an image build or by hand, never filled: nothing to keep
                self.output_dir.rmdir()
            else:  # a site this code published in place: moved aside once, then pruned like any build
                os.rename(self.output_dir, self.base / f".{self.name}.build-{_stamp()}-replaced")
        os.replace(link, self.output_dir)
        _fsync_dir(self.base)
        self._prune(build)

    def _swap_files(self, live: Files) -> None:
        # Assets first so new pages never reference a stylesheet that is not there yet.
        for path in sorted(self.files, key=lambda p: (not p.startswith("static/"), p)):
            if live.get(path, ("", ""))[1] == self.files[path][1]:
                continue
            target = self.output_dir / path
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(self.root / path, target)
        for path in sorted(set(live) - set(self.files)):
            with contextlib.suppress(FileNotFoundError):
                (self.output_dir / path).unlink()
        os.replace(self.root / MANIFEST, self.output_dir / MANIFEST)
        _fsync_dir(self.output_dir)
        self.discard()

    def _prune(self, current: Path) -> None:
        builds = sorted(self.base.glob(f".{self.name}.build-*"), key=_mtime, reverse=True)
        keep = {current, *[b for b in builds if b != current][: KEEP_BUILDS - 1]}
        stale = [b for b in builds if b not in keep]
        cutoff = time.time() - STALE_STAGING_SECONDS
        # Other runs' staging directories come and go without the lock: only old ones are touched.
        stale += [s for s in self.base.glob(f".{self.name}.staging-*") if _mtime(s) < cutoff]
        for path in stale:
            shutil.rmtree(path, ignore_errors=True)

    @contextlib.contextmanager
    def _lock(self) -> Iterator[None]:
        """Two pipelines publishing into one directory take turns (their builds stay separate)."""
        with open(self.base / f".{self.name}.lock", "a+b") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


def _is_empty(directory: Path) -> bool:
    return not any(entry.name not in IGNORED_ENTRIES for entry in directory.iterdir())


def _refuse_foreign(output_dir: Path) -> None:
    """A real, non-empty directory without this code's manifest belongs to someone else: refuse it.

    A mount point is exempt: it is never moved or replaced, and in place only the files this code's
    manifest lists are ever removed, so what the operator keeps there stays.
    """
    if output_dir.is_symlink() or not output_dir.is_dir() or output_dir.is_mount() or _is_empty(output_dir):
        return
    if not (output_dir / MANIFEST).is_file():
        raise ForeignDirectory(
            f"output directory {output_dir} holds files sp-scheduler did not publish (no {MANIFEST});"
            " it is left untouched: empty or remove it, or publish elsewhere"
        )


def read_manifest(site: Path) -> Files | None:
    """The manifest of the site at `site`, or None when there is none (or it cannot be read)."""
    try:
        document = json.loads((site / MANIFEST).read_text(encoding="utf-8"))
        return {path: (entry["step"], entry["sha256"]) for path, entry in document["files"].items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except FileNotFoundError:
        return time.time()  # gone already: counts as new, so nobody tries to remove it


def _hashes(files: Files) -> dict[str, str]:
    return {path: digest for path, (_, digest) in files.items()}


def _stamp() -> str:
    return time.strftime("%Y%m%dT%H%M%S", time.gmtime()) + "-" + secrets.token_hex(4)


def _remove_empty_dirs(root: Path) -> None:
    """Folders emptied by moves (the staged `_assets/`) are not part of the site."""
    for directory, _, _ in sorted(os.walk(root), key=lambda entry: len(entry[0]), reverse=True):
        if directory != str(root) and not os.listdir(directory):
            os.rmdir(directory)


def _fsync_tree(root: Path) -> None:
    """Flush the staged files before they go live: a crash must not leave the link pointing at empty files."""
    for directory, _, names in os.walk(root):
        for name in names:
            fd = os.open(os.path.join(directory, name), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        _fsync_dir(Path(directory))


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
