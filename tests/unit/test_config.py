"""Config loading, profile merging and validation that reports every problem at once."""

from __future__ import annotations

from pathlib import Path

import pytest

from sp_scheduler.catalog import check_catalog, load_catalog
from sp_scheduler.config import load_config, read_config
from sp_scheduler.errors import ConfigError, UsageError
from sp_scheduler.settings import Settings

SHIPPED = Path(__file__).resolve().parents[2] / "services" / "scheduler" / "config.yaml"


def write(tmp_path: Path, text: str, name: str = "config.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def job_yaml(name: str, schedule: str = "0 0 * * * *", extension: str = "core", job: str | None = None) -> str:
    return (
        f"    - name: {name}\n      extension: {extension}\n      job: {job or name}\n"
        f'      schedule: "{schedule}"\n      enabled: true\n'
    )


def test_shipped_config_has_the_seed_jobs() -> None:
    config = load_config(SHIPPED)
    assert config.enabled is True
    assert {job.name: job.schedule for job in config.jobs} == {
        "cleanup_anonymous_users": "0 0 3 * * *",
        "cleanup_empty_contexts": "0 0 * * * *",
        "cleanup_inactive_sessions": "0 0 * * * *",
        "database_cleanup": "0 0 4 * * *",
        "ledger_retention": "0 30 4 * * *",
        "publish_content": "0 */30 * * * *",
        "publish_pipeline": "0 */15 * * * *",
        "content_analytics_aggregation": "0 */15 * * * *",
        "daily_traffic_report": "0 0 7,19 * * *",
        "daily_activity_summary": "0 0 18 * * *",
    }
    first = config.jobs[0]
    assert (first.timezone, first.overlap, first.queue, first.timeout) == ("UTC", "skip", "sp_scheduler", None)


def test_optional_keys_are_typed(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "scheduler:\n  enabled: true\n  jobs:\n"
        + job_yaml("a")
        + "      timezone: Europe/Berlin\n      params: {days: 7}\n      timeout: 30\n"
        "      overlap: allow\n      misfire_grace: 0\n      queue: heavy\n",
    )
    job = load_config(path).jobs[0]
    assert (job.timezone, dict(job.params), job.timeout, job.overlap, job.misfire_grace, job.queue) == (
        "Europe/Berlin",
        {"days": 7},
        30.0,
        "allow",
        0.0,
        "heavy",
    )


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "scheduler:\n  enabled: true\n  jobs:\n"
        + job_yaml("five_fields", "0 * * * *")
        + job_yaml("dup")
        + job_yaml("dup")
        + job_yaml("never", "0 0 0 31 2 *")
        + job_yaml("never_both", "0 0 3 */16 * FRIL")
        + job_yaml("bad_tz")
        + "      timezone: Mars/Olympus\n"
        + "    - name: missing\n      extension: core\n"
        + job_yaml("typo")
        + "      overlapp: skip\n",
    )
    report = read_config(path)
    reasons = {(p.job, p.reason) for p in report.problems}
    text = "\n".join(str(p) for p in report.problems)
    assert (
        "five_fields",
        "schedule: 5 fields given; sp-scheduler uses six fields with seconds first: did you mean '0 0 * * * *'?",
    ) in reasons
    assert any(job == "dup" and "duplicate job name" in reason for job, reason in reasons)
    assert any(job == "never" and "never fires" in reason for job, reason in reasons)
    # Days 1 and 17, and the last Friday (day 22 or later): the parser accepts it, the search finds no date.
    assert ("never_both", "schedule '0 0 3 */16 * FRIL' never fires: no date matches all of its fields") in reasons
    assert any(job == "bad_tz" and "unknown time zone 'Mars/Olympus'" in reason for job, reason in reasons)
    assert ("missing", "missing required field(s): job, schedule, enabled") in reasons
    assert any(job == "typo" and "unknown key 'overlapp' (did you mean 'overlap'?)" in r for job, r in reasons)
    assert f"{path}:" in text  # every problem names the file (and line)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert len(caught.value.problems) == len(report.problems) == 7


def test_problems_carry_line_numbers(tmp_path: Path) -> None:
    path = write(tmp_path, "scheduler:\n  jobs:\n" + job_yaml("ok") + job_yaml("bad", "61 * * * * *"))
    (problem,) = read_config(path).problems
    assert problem.file == f"{path}:8"  # the line where the entry starts
    assert "second field" in problem.reason or "seconds field" in problem.reason


def test_malformed_yaml_names_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, "scheduler:\n  jobs:\n    - name: x\n   bad: [\n")
    (problem,) = read_config(path).problems
    assert problem.file.startswith(f"{path}:") and "invalid YAML" in problem.reason


def test_missing_file_and_missing_section(tmp_path: Path) -> None:
    assert "file not found" in read_config(tmp_path / "nope.yaml").problems[0].reason
    assert "expected a top-level 'scheduler:'" in read_config(write(tmp_path, "jobs: []\n")).problems[0].reason
    assert "file is empty" in read_config(write(tmp_path, "")).problems[0].reason


def test_wrong_types(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "scheduler:\n  enabled: yes-please\n  jobs:\n"
        "    - {name: a, extension: core, job: a, schedule: 5, enabled: maybe, timeout: -1, misfire_grace: x}\n",
    )
    reasons = " | ".join(p.reason for p in read_config(path).problems)
    for expected in (
        "'scheduler.enabled' must be true or false",
        "'schedule' must be a string",
        "'enabled' must be true or false",
        "'timeout' must be a positive number",
        "'misfire_grace' must be a number",
    ):
        assert expected in reasons


def test_params_must_be_json_values(tmp_path: Path) -> None:
    # Unquoted, YAML reads a date; a run of that job would fail to enqueue or claim with a traceback.
    path = write(
        tmp_path,
        "scheduler:\n  jobs:\n"
        "    - {name: a, extension: core, job: a, schedule: '', enabled: true,\n"
        "       params: {since: 2024-01-01, tags: [x, {at: 2024-01-01 10:00:00}], days: 30}}\n"
        "    - {name: b, extension: core, job: b, schedule: '', enabled: true,\n"
        "       params: {since: '2024-01-01', ratio: 0.5, flag: true, none: null, list: [1, 'x']}}\n",
    )
    problems = read_config(path).problems
    assert [(p.file.rsplit(":", 1)[-1], p.job, p.reason) for p in problems] == [
        (
            "3",
            "a",
            "'params.since' is a date (datetime.date(2024, 1, 1)); params must be JSON values: quote it to pass text",
        )
    ]


def test_params_the_ledger_cannot_store_are_refused_nested_too(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "scheduler:\n  jobs:\n"
        '    - {name: a, extension: core, job: a, schedule: "", enabled: true, params: {note: "a\\0b"}}\n'
        '    - {name: b, extension: core, job: b, schedule: "", enabled: true, params: {x: [1, {y: "\\0"}]}}\n'
        '    - {name: c, extension: core, job: c, schedule: "", enabled: true, params: {"k\\0": 1}}\n'
        "    - {name: d, extension: core, job: d, schedule: '', enabled: true, params: {ratio: .nan}}\n",
    )
    assert [(p.job, p.reason) for p in read_config(path).problems] == [
        ("a", "'params.note' contains a NUL character, which the ledger cannot store"),
        ("b", "'params.x[1].y' contains a NUL character, which the ledger cannot store"),
        ("c", "'params' has a key with a NUL character, which the ledger cannot store"),
        ("d", "'params.ratio' is nan, which is not a JSON number"),
    ]


def test_yaml_params_are_checked_against_the_job_declaration(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "scheduler:\n  extensions: ['tests.support.jobs:extension']\n  jobs:\n"
        + job_yaml("cleanup_empty_contexts")[:-1]
        + "\n      params: {dryrun: true}\n"
        + job_yaml("cleanup_anonymous_users")[:-1]
        + "\n      params: {days: soon}\n"
        + job_yaml("publish_pipeline", extension="web")[:-1]
        + "\n      params: {output_dir: /etc}\n"
        + job_yaml("legacy", extension="testing", job="echo_params")[:-1]
        + "\n      params: {a: 1, b: 2}\n",
    )
    _, problems, warnings = check_catalog(Settings(config_path=path, output_dir=tmp_path / "web" / "dist"))
    assert len(problems) == 3
    found = [(p.file, p.job, p.reason.split(";")[0]) for p in problems]
    assert [(f"{path}:{line}", *rest) for (_, *rest), line in zip(found, (4, 10, 16), strict=True)] == found
    assert [(job, reason) for _, job, reason in found] == [
        ("cleanup_empty_contexts", "unknown parameter 'dryrun' (did you mean 'dry_run'?)"),
        ("cleanup_anonymous_users", "parameter 'days': 'soon' is not a whole number"),
        (
            "publish_pipeline",
            f"parameter 'output_dir': '/etc' resolves to /etc, outside the output root {tmp_path / 'web'}",
        ),
    ]
    assert [(w.job, w.reason) for w in warnings] == [
        ("legacy", "job 'echo_params' declares no parameters: params a, b are passed to it unchecked")
    ]


def test_dom_and_dow_both_restricted_is_a_warning(tmp_path: Path) -> None:
    report = read_config(write(tmp_path, "scheduler:\n  jobs:\n" + job_yaml("either", "0 0 0 1 * 1")))
    assert not report.problems
    assert "EITHER" in report.warnings[0].reason


def test_profile_overrides_schedule_and_enabled_by_extension_and_job(tmp_path: Path) -> None:
    profile = write(
        tmp_path,
        "scheduler:\n  jobs:\n"
        '    - {extension: core, job: cleanup_empty_contexts, schedule: "0 */30 * * * *", enabled: false}\n'
        '    - {extension: testing, job: noop, schedule: "*/5 * * * * *", enabled: true}\n',
        "profile.yaml",
    )
    config = load_config(SHIPPED, profile)
    cleanup = config.job("cleanup_empty_contexts")
    assert cleanup is not None and (cleanup.schedule, cleanup.enabled) == ("0 */30 * * * *", False)
    added = config.job("noop")
    assert added is not None and added.extension == "testing" and added.schedule == "*/5 * * * * *"
    untouched = config.job("database_cleanup")
    assert untouched is not None and untouched.schedule == "0 0 4 * * *"


def test_a_job_the_profile_adds_keeps_its_own_fields_over_the_defaults(tmp_path: Path) -> None:
    base = write(tmp_path, "scheduler:\n  timezone: Europe/Berlin\n  jobs: []\n")
    profile = write(
        tmp_path,
        "scheduler:\n  jobs:\n"
        '    - {extension: testing, job: noop, schedule: "0 * * * * *", enabled: false, timezone: UTC,'
        " queue: slow, overlap: allow, timeout: 5, misfire_grace: 0, params: {a: 1}}\n"
        '    - {extension: testing, job: other, name: renamed, schedule: "0 * * * * *"}\n',
        "profile.yaml",
    )
    config = load_config(base, profile)
    added = config.job("noop")
    assert added is not None
    assert (added.enabled, added.timezone, added.queue, added.overlap) == (False, "UTC", "slow", "allow")
    assert (added.timeout, added.misfire_grace, dict(added.params)) == (5.0, 0.0, {"a": 1})
    assert added.source.endswith("profile.yaml:3")
    defaults = config.job("renamed")
    assert defaults is not None and (defaults.job, defaults.enabled, defaults.timezone) == (
        "other",
        True,
        "Europe/Berlin",
    )
    assert (defaults.queue, defaults.overlap, defaults.timeout, defaults.misfire_grace) == (
        "sp_scheduler",
        "skip",
        None,
        None,
    )


def test_profile_problems_are_reported(tmp_path: Path) -> None:
    profile = write(tmp_path, "scheduler:\n  jobs:\n    - {job: x, schedule: '0 * * * *'}\n", "profile.yaml")
    reasons = [p.reason for p in read_config(SHIPPED, profile).problems]
    assert any("keyed by extension and job; missing: extension" in r for r in reasons)
    assert any("5 fields given" in r for r in reasons)


def test_unknown_extension_and_job_come_from_the_catalog(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "scheduler:\n  jobs:\n" + job_yaml("a", extension="nope") + job_yaml("b", job="no_such_job"),
    )
    _, problems, _ = check_catalog(Settings(config_path=path))
    reasons = [p.reason for p in problems]
    assert any("unknown extension 'nope'" in r for r in reasons)
    assert any("extension 'core' has no job 'no_such_job'" in r for r in reasons)


def test_catalog_lists_configured_and_registered_jobs(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "scheduler:\n  extensions: ['tests.support.jobs:extension']\n  jobs:\n"
        + job_yaml("nightly_noop", "0 0 1 * * *", extension="testing", job="noop"),
    )
    catalog = load_catalog(Settings(config_path=path))
    configured = catalog.get("nightly_noop")
    assert configured.configured and configured.cron is not None and configured.yaml_enabled
    unconfigured = catalog.get("explode")
    assert not unconfigured.configured and unconfigured.cron is None and not unconfigured.yaml_enabled
    assert catalog.find("noop") is None  # configured under another name: listed once
    assert catalog.get("cleanup_anonymous_users").schedule == ""  # registered by core, not in this YAML


def test_startup_needs_both_code_and_yaml(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "scheduler:\n  jobs:\n"
        + job_yaml("publish_pipeline", "0 */15 * * * *", extension="web")
        + job_yaml("database_cleanup")
        + "    - {name: quiet, extension: web, job: content_analytics_aggregation, schedule: '', enabled: false}\n",
    )
    catalog = load_catalog(Settings(config_path=path))
    assert catalog.get("publish_pipeline").run_on_startup is True
    assert catalog.get("database_cleanup").run_on_startup is False
    assert catalog.get("daily_traffic_report").run_on_startup is False


def test_misfire_grace_is_optional_and_null_means_follow_the_period(tmp_path: Path) -> None:
    body = "scheduler:\n  enabled: true\n  jobs:\n" + job_yaml("a", job="database_cleanup")
    body += job_yaml("b", job="database_cleanup") + "      misfire_grace: null\n"
    body += job_yaml("c", job="database_cleanup") + "      misfire_grace: 60\n"
    config = load_config(write(tmp_path, body))
    assert [job.misfire_grace for job in config.jobs] == [None, None, 60.0]


def test_a_yaml_alias_that_contains_itself_is_a_problem_not_a_recursion_error(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(
        "scheduler:\n  enabled: true\n  jobs:\n    - name: x\n      extension: core\n      job: heartbeat\n"
        '      schedule: "* * * * * *"\n      enabled: true\n      params: &p\n        self: *p\n'
    )
    problems = [str(problem) for problem in read_config(path).problems]
    assert problems == [f"{path}:9: invalid YAML: an alias refers to a node that contains it (a cycle)"]


def test_an_alias_shared_without_a_cycle_still_loads(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    entry = '      extension: core\n      job: cleanup_inactive_sessions\n      schedule: "0 0 * * * *"\n'
    path.write_text(
        "scheduler:\n  enabled: true\n  jobs:\n"
        f"    - name: a\n{entry}      enabled: true\n      params: &shared {{hours: 2}}\n"
        f"    - name: b\n{entry}      enabled: true\n      params: *shared\n"
    )
    config = load_config(path)
    assert [job.params for job in config.jobs] == [{"hours": 2}, {"hours": 2}]


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"SP_DB_POOL_SIZE": "0.5"}, "SP_DB_POOL_SIZE='0.5' is not a whole number"),
        ({"SP_DB_POOL_SIZE": "0"}, "SP_DB_POOL_SIZE='0' must be between 1 and 1000"),
        ({"SP_METRICS_PORT": "9100.5"}, "SP_METRICS_PORT='9100.5' is not a whole number"),
        ({"SP_REDIS_URL": "notaurl"}, "invalid Redis URL '<not a URL>'"),
        ({"SP_REDIS_URL": "redis://:pw@cache:port/0"}, "invalid Redis URL 'redis://:***@cache:port/0'"),
        ({"SP_REDIS_URL": "http://cache:6379"}, "invalid Redis URL 'http://cache:6379'"),
    ],
)
def test_bad_settings_are_refused_in_one_line(env: dict[str, str], message: str) -> None:
    with pytest.raises(UsageError, match=None) as raised:
        Settings.from_env(env)
    assert message in str(raised.value)
    assert "\n" not in str(raised.value)


def test_good_settings_are_accepted() -> None:
    settings = Settings.from_env({"SP_DB_POOL_SIZE": "8", "SP_REDIS_URL": "rediss://u:pw@cache:6380/2"})
    assert settings.db_pool_size == 8
    assert Settings.from_env({"SP_REDIS_URL": "unix:///run/redis.sock"}).redis_url == "unix:///run/redis.sock"
