"""The batching helper's SQL and summaries (the behaviour is covered against Postgres in test_core_jobs)."""

from __future__ import annotations

import logging

import pytest
from psycopg import sql

from sp_scheduler import JobContext
from sp_scheduler.params import ParamError, check_params, resolve_params
from workers.core.batching import BATCH_PARAMS, BatchOptions, Rule, RuleOutcome, summarize

RULE = Rule(label="old things", table="things", where="t.created_at < %(cutoff)s")
EXPIRE = Rule(
    label="stale things",
    table="things",
    where="t.seen < %(cutoff)s",
    update="done = true",
    verb="expire",
    past="expired",
)


def text(query: sql.Composable) -> str:
    return query.as_string(None)


def test_picks_walk_the_keyset_and_skip_locked_rows() -> None:
    assert text(RULE.pick_query(False)) == (
        'SELECT "t"."created_at", t.id FROM "things" AS t WHERE (t.created_at < %(cutoff)s)'
        ' ORDER BY "t"."created_at", t.id LIMIT %(batch_limit)s FOR UPDATE OF t SKIP LOCKED'
    )
    assert ' AND ("t"."created_at", t.id) > (%(after_key)s, %(after_id)s::uuid) ORDER BY' in text(RULE.pick_query(True))


def test_actions_recheck_the_rule_under_the_lock() -> None:
    assert text(RULE.apply_query()) == (
        'DELETE FROM "things" AS t WHERE t.id = ANY(%(batch_ids)s::uuid[]) AND (t.created_at < %(cutoff)s)'
    )
    assert text(EXPIRE.apply_query()) == (
        'UPDATE "things" AS t SET done = true WHERE t.id = ANY(%(batch_ids)s::uuid[]) AND (t.seen < %(cutoff)s)'
    )


def test_summaries_count_rows_and_flag_dry_runs_and_interruptions() -> None:
    result = summarize([RuleOutcome(RULE, 3, "older than 1 day"), RuleOutcome(EXPIRE, 2, deferred=1)])
    assert result.ok and (result.items_processed, result.items_failed) == (5, 1)
    assert (
        result.message
        == "deleted 3 old things older than 1 day; expired 2 stale things (1 locked, left for the next run)"
    )
    dry = summarize([RuleOutcome(RULE, 4, dry_run=True)], extra=["would vacuum things"])
    assert dry.message == "dry run: would delete 4 old things; would vacuum things"
    stopped = summarize([RuleOutcome(RULE, 0, interrupted="things was locked")])
    assert not stopped.ok and "stopped: things was locked" in (stopped.message or "")


def context(**parameters: object) -> JobContext:
    checked = check_params("job", BATCH_PARAMS, parameters)
    return JobContext(
        "job", "run", "manual", logging.getLogger("test"), parameters=resolve_params(BATCH_PARAMS, checked)
    )


def test_options_come_from_checked_parameters() -> None:
    assert BatchOptions.from_context(context()) == BatchOptions(5000, False, 1000, 200)
    assert BatchOptions.from_context(context(batch_size="50", dry_run="yes")) == BatchOptions(50, True, 1000, 200)
    with pytest.raises(ParamError, match="parameter 'batch_size': 0 is below the minimum 1"):
        context(batch_size=0)
    with pytest.raises(ParamError, match="parameter 'dry_run': 2 is not true or false"):
        context(dry_run=2)
