"""The `alerts:` section and a job entry's `alerts:` override: targets, rules, per-job policy, and
every problem refused with file:line (and never a webhook URL echoed)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from sp_scheduler.cli import cli
from sp_scheduler.config import read_config
from sp_scheduler.config_alerts import MAX_PER_HOUR, AlertRule, AlertTarget, parse_interval

SECTION = """scheduler:
  alerts:
    targets:
      ops-slack: {type: slack, url_env: SP_ALERT_SLACK_URL}
      ops-discord: {type: discord, url_env: SP_ALERT_DISCORD_URL}
      hook: {type: webhook, url_env: SP_ALERT_HOOK_URL, timeout: 5}
      pager: {type: command, command: "/usr/local/bin/page --team ops"}
    rules:
      - events: [failed, timeout, lost, recovered, paused]
        targets: [ops-slack, hook]
      - events: [missed, late]
        targets: hook
    renotify: 4h
    max_per_hour: 6
    pause_after_failures: 5
  jobs:
    - name: plain
      extension: core
      job: heartbeat
      schedule: "0 * * * * *"
      enabled: true
    - name: loud
      extension: core
      job: heartbeat
      schedule: "0 * * * * *"
      enabled: true
      alerts:
        rules: [{events: all, targets: [pager, ops-discord]}]
        renotify: off
        pause_after_failures: 0
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return path


def test_targets_rules_and_the_scheduler_wide_values(tmp_path: Path) -> None:
    config = read_config(write(tmp_path, SECTION)).raise_for_problems()
    alerts = config.alerts
    assert alerts.targets["ops-slack"] == AlertTarget("ops-slack", "slack", url_env="SP_ALERT_SLACK_URL", timeout=10.0)
    assert alerts.targets["hook"].timeout == 5.0
    assert alerts.targets["pager"].command == ("/usr/local/bin/page", "--team", "ops")
    assert alerts.targets["pager"].timeout == 30.0
    assert alerts.rules[1] == AlertRule(frozenset({"missed", "late"}), ("hook",))
    assert (alerts.renotify, alerts.max_per_hour, alerts.pause_after_failures) == (timedelta(hours=4), 6, 5)


def test_a_job_inherits_the_section_or_overrides_it(tmp_path: Path) -> None:
    config = read_config(write(tmp_path, SECTION)).raise_for_problems()
    plain, loud = (config.alerts.policy(job.alerts) for job in config.jobs)
    assert plain.targets_for("failed") == ("ops-slack", "hook")
    assert plain.targets_for("late") == ("hook",)
    assert plain.targets_for("missed") == ("hook",)
    assert (plain.renotify, plain.pause_after_failures) == (timedelta(hours=4), 5)
    assert loud.targets_for("late") == ("pager", "ops-discord")
    assert (loud.renotify, loud.pause_after_failures) == (None, None)


def test_without_a_section_nothing_is_sent_and_nothing_paused(tmp_path: Path) -> None:
    config = read_config(write(tmp_path, "scheduler:\n  jobs: []\n")).raise_for_problems()
    assert config.alerts.targets == {} and config.alerts.rules == ()
    assert config.alerts.max_per_hour == MAX_PER_HOUR and config.alerts.pause_after_failures is None


@pytest.mark.parametrize(
    ("text", "interval"),
    [("90s", timedelta(seconds=90)), ("30m", timedelta(minutes=30)), ("1h30m", timedelta(minutes=90)), ("x", None)],
)
def test_intervals(text: str, interval: timedelta | None) -> None:
    assert parse_interval(text) == interval


@pytest.mark.parametrize(
    ("snippet", "line", "reason"),
    [
        ("    targets:\n      a: {type: sms, url_env: X}\n", 5, "'alerts.targets.a.type' must be one of"),
        ("    targets:\n      a: {type: slack}\n", 5, "'alerts.targets.a.url_env' must name the environment variable"),
        ("    targets:\n      a: {type: command, command: []}\n", 5, "'alerts.targets.a.command' must be"),
        ("    targets:\n      a: {type: webhook, url_env: X, timeout: 0}\n", 5, "'alerts.targets.a.timeout'"),
        ("    rules:\n      - {events: [exploded], targets: [a]}\n", 5, "'alerts.rules[0].events' must list"),
        ("    rules:\n      - {events: [failed], targets: [nowhere]}\n", 4, "names target 'nowhere'"),
        ("    renotify: 10s\n", 4, "'alerts.renotify' must be an interval of at least 1m"),
        ("    pause_after_failures: -1\n", 4, "'alerts.pause_after_failures' must be a whole number >= 0"),
        ("    max_per_hour: 0\n", 4, "'alerts.max_per_hour' must be a whole number >= 1"),
        ("    targts: {}\n", 4, "unknown key 'targts' (did you mean 'targets'?)"),
    ],
)
def test_each_problem_names_file_and_line(tmp_path: Path, snippet: str, line: int, reason: str) -> None:
    path = write(tmp_path, f"scheduler:\n  jobs: []\n  alerts:\n{snippet}")
    problems = read_config(path).problems
    assert [str(p) for p in problems if reason in p.reason] == [
        next(f"{path}:{line}: {p.reason}" for p in problems if reason in p.reason)
    ]


def test_a_url_in_the_yaml_is_refused_without_repeating_it(tmp_path: Path) -> None:
    secret = "https://hooks.slack.com/services/T000/B000/SECRETTOKEN"
    path = write(
        tmp_path, f"scheduler:\n  jobs: []\n  alerts:\n    targets:\n      a: {{type: slack, url: '{secret}'}}\n"
    )
    problems = read_config(path).problems
    assert any("webhook URLs are secrets; name an environment variable with url_env" in p.reason for p in problems)
    assert all("SECRETTOKEN" not in str(p) for p in problems)


def test_a_job_rule_naming_an_undefined_target_is_refused_at_the_job(tmp_path: Path) -> None:
    text = SECTION.replace("targets: [pager, ops-discord]", "targets: [pagr]")
    problems = read_config(write(tmp_path, text)).problems
    assert [p.job for p in problems] == ["loud"]
    line = text.splitlines().index("    - name: loud") + 1
    assert "names target 'pagr'" in problems[0].reason and problems[0].file.endswith(f"config.yaml:{line}")


def test_a_broken_job_alerts_entry_is_reported_at_the_job(tmp_path: Path) -> None:
    text = SECTION.replace("pause_after_failures: 0", "pause_after_failures: many")
    problems = read_config(write(tmp_path, text)).problems
    assert [(p.job, p.reason) for p in problems] == [
        ("loud", "'alerts.pause_after_failures' must be a whole number >= 0, not 'many'")
    ]


def test_a_profile_section_replaces_the_base_files(tmp_path: Path) -> None:
    base = write(tmp_path, SECTION)
    profile = tmp_path / "profile.yaml"
    profile.write_text(
        "scheduler:\n  alerts:\n    targets:\n      pager: {type: command, command: page}\n"
        "      ops-discord: {type: discord, url_env: D}\n    pause_after_failures: 2\n"
    )
    config = read_config(base, profile).raise_for_problems()
    assert config.alerts.pause_after_failures == 2 and config.alerts.rules == ()
    assert sorted(config.alerts.targets) == ["ops-discord", "pager"]
    # ...and the job rules are checked against the profile's targets
    profile.write_text("scheduler:\n  alerts:\n    pause_after_failures: 2\n")
    assert [p.job for p in read_config(base, profile).problems] == ["loud", "loud"]


def test_config_validate_warns_of_an_unset_url_variable_and_never_shows_a_set_one(tmp_path: Path) -> None:
    path = write(tmp_path, SECTION)
    env = {"SP_ALERT_SLACK_URL": "https://hooks.slack.com/services/T/B/SECRETTOKEN", "SP_ALERT_HOOK_URL": "x"}
    result = CliRunner().invoke(cli, ["--config", str(path), "config", "validate"], env=env)
    assert result.exit_code == 0, result.output
    warnings = [line for line in result.stderr.splitlines() if "alerts target" in line]
    assert warnings == [
        f"warning: {path}: alerts target 'ops-discord': SP_ALERT_DISCORD_URL is not set here;"
        " the notifier needs it to send"
    ]
    assert "SECRETTOKEN" not in result.output
