"""The `retention:` section and a job entry's `retention:` override: parsed, defaulted, refused with file:line."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from sp_scheduler.config import read_config
from sp_scheduler.config_retention import JobRetention, Retention, parse_age
from workers.core.ledger_retention import rules_from_config

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "services" / "scheduler" / "config.yaml"
DEV = ROOT / "services" / "scheduler" / "profiles" / "dev.yaml"

JOB = "    - name: {name}\n      extension: core\n      job: heartbeat\n      schedule: ''\n      enabled: true\n"


def write(tmp_path: Path, text: str, name: str = "config.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_the_shipped_config_keeps_a_month_of_runs_and_runs_the_retention_job() -> None:
    config = read_config(SHIPPED).raise_for_problems()
    assert config.retention == Retention(timedelta(days=30), timedelta(days=14), 10)
    job = config.job("ledger_retention")
    assert job is not None and job.enabled and job.schedule == "0 30 4 * * *"
    dev = read_config(SHIPPED, DEV).raise_for_problems()
    assert dev.retention == Retention(timedelta(days=2), timedelta(days=2), 10)


def test_without_a_section_the_conservative_defaults_apply(tmp_path: Path) -> None:
    config = read_config(write(tmp_path, "scheduler:\n  jobs: []\n")).raise_for_problems()
    assert config.retention == Retention()
    assert Retention() == Retention(timedelta(days=30), timedelta(days=14), 10)


@pytest.mark.parametrize(
    ("text", "age"),
    [
        ("30d", timedelta(days=30)),
        ("36h", timedelta(hours=36)),
        ("2w", timedelta(weeks=2)),
        ("1w3d", timedelta(days=10)),
    ],
)
def test_ages(text: str, age: timedelta) -> None:
    assert parse_age(text) == age


def test_a_section_sets_each_rule_and_a_job_overrides_some(tmp_path: Path) -> None:
    body = (
        "scheduler:\n  retention:\n    runs: 90d\n    logs: 1w\n    min_runs_per_job: 3\n  jobs:\n"
        + JOB.format(name="a")
        + "      retention: {runs: 365d, min_runs: 100}\n"
        + JOB.format(name="b")
    )
    config = read_config(write(tmp_path, body)).raise_for_problems()
    assert config.retention == Retention(timedelta(days=90), timedelta(days=7), 3)
    a, b = config.job("a"), config.job("b")
    assert a is not None and b is not None
    assert a.retention == JobRetention(runs=timedelta(days=365), min_runs=100)
    assert b.retention == JobRetention()
    rules = rules_from_config(config)
    assert (rules.runs, rules.logs, rules.min_runs) == (timedelta(days=90), timedelta(days=7), 3)
    assert set(rules.jobs) == {"a"}
    assert rules.for_job("a") == rules.jobs["a"]
    assert (rules.jobs["a"].runs, rules.jobs["a"].logs, rules.jobs["a"].min_runs) == (
        timedelta(days=365),
        timedelta(days=7),
        100,
    )
    assert rules.for_job("b").min_runs == 3


@pytest.mark.parametrize(
    ("section", "reason"),
    [
        ("    runs: 30\n", "'retention.runs' must be an age such as 36h, 30d or 2w, not 30"),
        ("    logs: 30 days\n", "'retention.logs' must be an age such as 36h, 30d or 2w, not '30 days'"),
        ("    runs: 0d\n", "'retention.runs' must be between 1h and 36600d, not '0d'"),
        ("    min_runs_per_job: -1\n", "'retention.min_runs_per_job' must be a whole number from 0 to 1000000, not -1"),
        (
            "    min_runs_per_job: true\n",
            "'retention.min_runs_per_job' must be a whole number from 0 to 1000000, not True",
        ),
        ("    run: 30d\n", "scheduler.retention: unknown key 'run' (did you mean 'runs'?)"),
    ],
)
def test_a_bad_section_is_one_line_naming_file_and_line(tmp_path: Path, section: str, reason: str) -> None:
    path = write(tmp_path, "scheduler:\n  retention:\n" + section + "  jobs: []\n")
    (problem,) = read_config(path).problems
    assert (problem.file, problem.job, problem.reason) == (f"{path}:3", None, reason)


def test_a_section_that_is_no_mapping_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "scheduler:\n  retention: 30d\n  jobs: []\n")
    (problem,) = read_config(path).problems
    assert problem.file == f"{path}:2"
    assert problem.reason == "'scheduler.retention' must be a mapping with runs, logs and min_runs_per_job"


@pytest.mark.parametrize(
    ("override", "reason"),
    [
        ("      retention: {runs: forever}\n", "'retention.runs' must be an age such as 36h, 30d or 2w, not 'forever'"),
        (
            "      retention: {min_runs: 1.5}\n",
            "'retention.min_runs' must be a whole number from 0 to 1000000, not 1.5",
        ),
        (
            "      retention: {min_runs_per_job: 5}\n",
            "retention: unknown key 'min_runs_per_job' (did you mean 'min_runs'?)",
        ),
        ("      retention: 30d\n", "'retention' must be a mapping with runs, logs and/or min_runs"),
    ],
)
def test_a_bad_job_override_names_the_job_and_its_line(tmp_path: Path, override: str, reason: str) -> None:
    path = write(tmp_path, "scheduler:\n  jobs:\n" + JOB.format(name="a") + override)
    (problem,) = read_config(path).problems
    assert (problem.file, problem.job, problem.reason) == (f"{path}:3", "a", reason)


def test_a_profile_replaces_the_section_and_may_override_a_job(tmp_path: Path) -> None:
    base = write(tmp_path, "scheduler:\n  retention: {runs: 60d}\n  jobs:\n" + JOB.format(name="a"))
    profile = write(
        tmp_path,
        "scheduler:\n  retention: {runs: 1d, logs: 1d}\n  jobs:\n"
        "    - {extension: core, job: heartbeat, retention: {min_runs: 0}}\n",
        "profile.yaml",
    )
    config = read_config(base, profile).raise_for_problems()
    assert config.retention == Retention(timedelta(days=1), timedelta(days=1), 10)
    a = config.job("a")
    assert a is not None and a.retention == JobRetention(min_runs=0)
