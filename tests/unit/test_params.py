"""Declared job parameters: checked, normalised and typed in one place, for every bundled job."""

from __future__ import annotations

import logging
import os
from datetime import UTC, datetime
from pathlib import Path

import pytest

from sp_scheduler import Job, JobContext, Param, ParamError
from sp_scheduler.params import check_params, resolve_params
from sp_scheduler.registry import discover

DECLARED = (
    Param("hours", "int", 24, "age cutoff", min=1),
    Param("dry_run", "bool", False, "change nothing"),
    Param("ratio", "float", 0.5, "a factor", min=0, max=1),
    Param("mode", "str", "fast", "how", choices=("fast", "slow")),
    Param("now", "instant", None, "reference instant"),
    Param("out", "path", None, "where to write", root="output"),
)


def test_an_unknown_name_is_refused_with_a_hint_and_the_accepted_names() -> None:
    with pytest.raises(ParamError) as raised:
        check_params("cleanup", DECLARED, {"dryrun": "true"})
    assert str(raised.value) == (
        "job 'cleanup': unknown parameter 'dryrun' (did you mean 'dry_run'?); "
        "accepted: hours, dry_run, ratio, mode, now, out"
    )
    assert raised.value.exit_code == 2


@pytest.mark.parametrize(
    ("values", "reason"),
    [
        ({"hours": "abc"}, "parameter 'hours': 'abc' is not a whole number; accepted: hours (int >= 1, default 24)"),
        ({"hours": 0}, "parameter 'hours': 0 is below the minimum 1"),
        ({"hours": True}, "parameter 'hours': True is not a whole number"),
        ({"hours": 1.5}, "parameter 'hours': 1.5 is not a whole number"),
        ({"dry_run": "maybe"}, "parameter 'dry_run': 'maybe' is not true or false"),
        ({"dry_run": 1}, "parameter 'dry_run': 1 is not true or false"),
        ({"ratio": "2"}, "parameter 'ratio': 2.0 is above the maximum 1"),
        ({"ratio": "nan"}, "parameter 'ratio': 'nan' is not a number"),
        ({"mode": "medium"}, "parameter 'mode': 'medium' is not one of fast, slow"),
        ({"mode": " "}, "parameter 'mode': ' ' is not a non-empty text"),
        ({"now": "yesterday"}, "parameter 'now': 'yesterday' is not an ISO-8601 instant"),
        ({"mode": "fa\x00st"}, "parameter 'mode': contains a NUL character"),
    ],
)
def test_badly_typed_values_are_refused_naming_job_and_parameter(values: dict[str, object], reason: str) -> None:
    with pytest.raises(ParamError, match=r"^job 'j': ") as raised:
        check_params("j", DECLARED, values)
    assert reason in str(raised.value)


def test_cli_text_is_normalised_to_json_values_and_normalising_twice_changes_nothing() -> None:
    text = {"hours": "7", "dry_run": "yes", "ratio": "0.25", "mode": " slow ", "now": "2026-01-02T03:04:05"}
    checked = check_params("j", DECLARED, text)
    assert checked == {
        "hours": 7,
        "dry_run": True,
        "ratio": 0.25,
        "mode": "slow",
        "now": "2026-01-02T03:04:05+00:00",
    }
    assert check_params("j", DECLARED, checked) == checked


def test_resolved_values_are_typed_and_defaults_fill_the_rest() -> None:
    values = resolve_params(DECLARED, check_params("j", DECLARED, {"now": "2026-01-02T03:04:05Z", "out": "x/y"}))
    assert values == {
        "hours": 24,
        "dry_run": False,
        "ratio": 0.5,
        "mode": "fast",
        "now": datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
        "out": Path("x/y"),
    }
    ctx = JobContext("j", "run", "manual", logging.getLogger("test"), parameters=values)
    assert ctx.param("hours") == 24 and ctx.param("out") == Path("x/y")
    with pytest.raises(KeyError, match="has no parameter 'days'"):
        ctx.param("days")


def test_a_job_that_declares_nothing_gets_its_values_unchecked() -> None:
    values = {"anything": "goes", "days": "abc"}
    assert check_params("legacy", None, values) == values
    assert resolve_params(None, values) == values
    ctx = JobContext("legacy", "run", "manual", logging.getLogger("test"), parameters={"days": "7"})
    assert ctx.get_parameter("days", 30) == 7


def test_a_job_that_declares_an_empty_tuple_takes_no_parameters() -> None:
    with pytest.raises(ParamError, match="unknown parameter 'x'; accepted: none"):
        check_params("heartbeat", (), {"x": "1"})


def test_paths_must_resolve_inside_their_root(tmp_path: Path) -> None:
    root = tmp_path / "web"
    (root / "site").mkdir(parents=True)
    roots = {"output": root}
    assert check_params("j", DECLARED, {"out": str(root / "site")}, roots) == {"out": str(root / "site")}
    for outside in (str(tmp_path / "elsewhere"), str(root / ".." / "elsewhere"), str(root), "/etc"):
        with pytest.raises(ParamError, match="outside the output root"):
            check_params("j", DECLARED, {"out": outside}, roots)
    os.symlink(tmp_path / "elsewhere", root / "escape")
    with pytest.raises(ParamError, match="outside the output root"):
        check_params("j", DECLARED, {"out": str(root / "escape")}, roots)


def test_a_declaration_is_checked_when_it_is_made() -> None:
    with pytest.raises(ValueError, match="type must be one of"):
        Param("x", "list")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="only path parameters have a root"):
        Param("x", "str", root="output")


def bundled_jobs() -> list[Job]:
    registry, problems = discover(["workers.core:extension", "workers.web:extension"], points=[])
    assert not problems
    return [entry.job for entry in registry]


@pytest.mark.parametrize("job", bundled_jobs(), ids=lambda job: job.name)
def test_every_bundled_job_declares_its_parameters_with_valid_defaults(job: Job) -> None:
    assert job.parameters is not None, f"{job.name} declares no parameters"
    names = [param.name for param in job.parameters]
    assert len(names) == len(set(names))
    for param in job.parameters:
        assert param.description, f"{job.name}.{param.name} has no description"
        if param.default is not None:
            assert param.normalise(param.default) == param.default


DOCS = Path(__file__).resolve().parents[2] / "docs"


@pytest.mark.parametrize("job", bundled_jobs(), ids=lambda job: job.name)
def test_the_operator_docs_list_every_bundled_parameter(job: Job) -> None:
    page = "maintenance.md" if type(job).__module__.startswith("workers.core") else "web.md"
    text = (DOCS / page).read_text()
    assert f"`{job.name}`" in text
    for param in job.parameters or ():
        assert f"| `{param.name}` |" in text, f"{page} does not list {job.name}.{param.name}"
