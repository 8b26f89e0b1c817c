"""The dashboard's access rules that need no server: actions need a token, and `web --actions` says so."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from sp_scheduler.cli import cli
from sp_scheduler.dashboard.access import Access
from sp_scheduler.errors import ExitCode, UsageError


def test_actions_without_a_token_are_refused() -> None:
    with pytest.raises(UsageError, match="SP_WEB_TOKEN"):
        Access(actions=True, token=None)
    assert "secret" not in repr(Access(actions=True, token="secret"))


def test_web_with_actions_but_no_token_exits_with_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SP_WEB_TOKEN", raising=False)
    result = CliRunner().invoke(cli, ["web", "--actions"], env={"SP_WEB_ACTIONS": None})
    assert result.exit_code == ExitCode.INVALID
    assert result.stderr.strip().splitlines() == [
        "error: actions (--actions or SP_WEB_ACTIONS=1) need a token: set SP_WEB_TOKEN"
    ]
