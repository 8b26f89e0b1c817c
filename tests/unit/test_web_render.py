"""Templates render in a sandbox: a template cannot reach Python internals through the objects it is given."""

from __future__ import annotations

from pathlib import Path

import pytest
from jinja2.exceptions import SecurityError

from workers.web.render import SiteConfig, template_environment


def test_templates_cannot_reach_python_internals(tmp_path: Path) -> None:
    (tmp_path / "ok.html").write_text("{{ site.title }}")
    (tmp_path / "escape.html").write_text("{{ site.__class__.__init__.__globals__ }}")
    (tmp_path / "call.html").write_text("{{ site.absolute.__func__.__code__ }}")
    env = template_environment(tmp_path)
    assert env.get_template("ok.html").render(site=SiteConfig(title="T")) == "T"
    for name in ("escape.html", "call.html"):
        with pytest.raises(SecurityError):
            env.get_template(name).render(site=SiteConfig())
