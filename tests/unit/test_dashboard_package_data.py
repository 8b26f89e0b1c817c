"""The dashboard's templates and static files are package data, so a wheel (CI installs one) carries them."""

from __future__ import annotations

import tomllib
from fnmatch import fnmatch
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "sp_scheduler"


def test_every_template_and_static_file_matches_a_package_data_pattern() -> None:
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    patterns = setuptools["package-data"]["sp_scheduler"]
    files = [
        path.relative_to(PACKAGE).as_posix()
        for folder in ("dashboard/templates", "dashboard/static")
        for path in (PACKAGE / folder).iterdir()
    ]
    assert files, "the dashboard ships no templates or static files"
    assert [name for name in files if not any(fnmatch(name, pattern) for pattern in patterns)] == []
