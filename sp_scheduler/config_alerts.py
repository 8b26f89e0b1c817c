"""The `alerts:` section (scheduler-wide: targets, rules, renotify, rate limit, auto-pause) and a job
entry's `alerts:` override, checked here (docs/alerts.md).

Targets are named once and referred to by rules. A webhook's URL is a credential, so the YAML names
the environment variable holding it (`url_env`) and never the URL; a `url:` key is refused without
echoing its value. Each check appends `(node, reason)`, the node being the mapping whose line the
problem is reported at, so a broken file is reported in one pass as `file:line: reason`.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Literal

from sp_scheduler.config_yaml import unknown_keys

TargetKind = Literal["webhook", "slack", "discord", "command"]
TARGET_KINDS: tuple[TargetKind, ...] = ("webhook", "slack", "discord", "command")
EVENTS = ("failed", "timeout", "lost", "missed", "late", "recovered", "paused")
HTTP_TIMEOUT = 10.0
COMMAND_TIMEOUT = 30.0
MAX_PER_HOUR = 20  # events per job per hour that reach a target; beyond it a flapping job is suppressed

SECTION_KEYS = ("targets", "rules", "renotify", "max_per_hour", "pause_after_failures")
JOB_KEYS = ("rules", "renotify", "pause_after_failures")
_TARGET_KEYS = ("type", "url_env", "command", "timeout")
_RULE_KEYS = ("events", "targets")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_PART = re.compile(r"(\d+)\s*([smhdw])", re.IGNORECASE)
_WHOLE = re.compile(r"^\s*(?:\d+\s*[smhdw]\s*)+$", re.IGNORECASE)
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}

Report = list[tuple[Any, str]]  # (the mapping to report at, the reason)


@dataclass(frozen=True, slots=True)
class AlertTarget:
    """Where alerts can go: a JSON webhook, a Slack- or Discord-compatible webhook, or a command."""

    name: str
    kind: TargetKind
    url_env: str | None = None  # the environment variable holding the URL (webhook kinds)
    command: tuple[str, ...] = ()  # argv, no shell; its stdin gets the JSON payload
    timeout: float = HTTP_TIMEOUT


@dataclass(frozen=True, slots=True)
class AlertRule:
    """Send these events to these targets."""

    events: frozenset[str]
    targets: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class JobAlerts:
    """A job entry's overrides; None keeps the scheduler's value (rules given replace its rules)."""

    rules: tuple[AlertRule, ...] | None = None
    renotify: timedelta | None = None
    renotify_off: bool = False
    pause_after_failures: int | None = None


@dataclass(frozen=True, slots=True)
class AlertPolicy:
    """What applies to one job: its rules, renotify interval, rate limit and auto-pause threshold."""

    rules: tuple[AlertRule, ...]
    renotify: timedelta | None
    max_per_hour: int
    pause_after_failures: int | None  # None or 0: never

    def targets_for(self, event: str) -> tuple[str, ...]:
        """The targets of every rule naming `event`, each once, in the order the rules name them."""
        named = (target for rule in self.rules if event in rule.events for target in rule.targets)
        return tuple(dict.fromkeys(named))


@dataclass(frozen=True, slots=True)
class Alerts:
    """The scheduler-wide section; the default sends nothing and pauses nothing."""

    targets: Mapping[str, AlertTarget] = field(default_factory=dict)
    rules: tuple[AlertRule, ...] = ()
    renotify: timedelta | None = None
    max_per_hour: int = MAX_PER_HOUR
    pause_after_failures: int | None = None

    def policy(self, job: JobAlerts) -> AlertPolicy:
        """The job's overrides over the scheduler's values."""
        renotify = None if job.renotify_off else job.renotify or self.renotify
        pause = self.pause_after_failures if job.pause_after_failures is None else job.pause_after_failures
        return AlertPolicy(
            rules=self.rules if job.rules is None else job.rules,
            renotify=renotify,
            max_per_hour=self.max_per_hour,
            pause_after_failures=pause or None,
        )


def parse_interval(value: Any) -> timedelta | None:
    """`90s`, `30m`, `4h`, `1d`, `1w` or parts together (`1h30m`); None when the text is no such interval."""
    if not isinstance(value, str) or not _WHOLE.match(value):
        return None
    try:
        return sum((timedelta(**{_UNITS[u.lower()]: int(n)}) for n, u in _PART.findall(value)), timedelta())
    except OverflowError:
        return None


def _renotify(node: dict[str, Any], where: str, report: Report) -> tuple[timedelta | None, bool]:
    """(interval, off): `off` (or false) turns renotifying off, which a job may do under a global one."""
    value = node["renotify"]
    if value is False or value == "off":
        return None, True
    interval = parse_interval(value)
    if interval is None or interval < timedelta(minutes=1):
        report.append((node, f"'{where}.renotify' must be an interval of at least 1m such as 4h or 1d, or off"))
        return None, False
    return interval, False


def _count(node: dict[str, Any], key: str, where: str, report: Report, minimum: int) -> int | None:
    value = node[key]
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        report.append((node, f"'{where}.{key}' must be a whole number >= {minimum}, not {value!r}"))
        return None
    return value


def _check_target(name: Any, node: Any, parent: Any, report: Report) -> AlertTarget | None:
    where = f"alerts.targets.{name}"
    if not isinstance(name, str) or not name.strip():
        report.append((parent, f"alerts.targets: target names must be non-empty strings, not {name!r}"))
        return None
    if not isinstance(node, dict):
        report.append((parent, f"'{where}' must be a mapping with type and url_env (or command)"))
        return None
    before = len(report)
    if "url" in node:
        # The value is a credential: never repeated in a message.
        report.append((node, f"'{where}.url': webhook URLs are secrets; name an environment variable with url_env"))
    report.extend((node, f"{where}: {r}") for r in unknown_keys(node, (*_TARGET_KEYS, "url")) if "'url'" not in r)
    kind = node.get("type")
    if kind not in TARGET_KINDS:
        report.append((node, f"'{where}.type' must be one of {', '.join(TARGET_KINDS)}, not {kind!r}"))
        return None
    url_env: str | None = None
    command: tuple[str, ...] = ()
    if kind == "command":
        raw = node.get("command")
        if isinstance(raw, str):
            raw = shlex.split(raw)
        if not isinstance(raw, list) or not raw or not all(isinstance(a, str) and a for a in raw):
            report.append((node, f"'{where}.command' must be a command line or a list of its words"))
        else:
            command = tuple(raw)
        if "url_env" in node:
            report.append((node, f"'{where}.url_env' is for webhook targets, not commands"))
    else:
        env = node.get("url_env")
        if not isinstance(env, str) or not _ENV_NAME.match(env):
            report.append((node, f"'{where}.url_env' must name the environment variable holding the URL"))
        else:
            url_env = env
        if "command" in node:
            report.append((node, f"'{where}.command' is for command targets"))
    timeout = node.get("timeout", COMMAND_TIMEOUT if kind == "command" else HTTP_TIMEOUT)
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not 0 < timeout <= 300:
        report.append((node, f"'{where}.timeout' must be a number of seconds from 0 to 300, not {timeout!r}"))
    if len(report) > before:
        return None
    return AlertTarget(name=name, kind=kind, url_env=url_env, command=command, timeout=float(timeout))


def _check_rules(node: Any, parent: Any, where: str, report: Report) -> tuple[AlertRule, ...] | None:
    if not isinstance(node, list):
        report.append((parent, f"'{where}.rules' must be a list of {{events, targets}} rules"))
        return None
    before = len(report)
    rules = []
    for index, rule in enumerate(node):
        at = f"{where}.rules[{index}]"
        if not isinstance(rule, dict):
            report.append((parent, f"'{at}' must be a mapping with events and targets"))
            continue
        report.extend((rule, f"{at}: {r}") for r in unknown_keys(rule, _RULE_KEYS))
        events, targets = rule.get("events"), rule.get("targets")
        if events == "all":
            events = list(EVENTS)
        if isinstance(events, str):
            events = [events]
        if isinstance(targets, str):
            targets = [targets]
        if not isinstance(events, list) or not events or any(e not in EVENTS for e in events):
            report.append((rule, f"'{at}.events' must list events among {', '.join(EVENTS)} (or be all)"))
        if not isinstance(targets, list) or not targets or not all(isinstance(t, str) for t in targets):
            report.append((rule, f"'{at}.targets' must list one or more target names"))
        if len(report) == before:
            rules.append(AlertRule(frozenset(events), tuple(targets)))  # type: ignore[arg-type]
    return tuple(rules) if len(report) == before else None


def check_section(node: Any, parent: Any, report: Report) -> Alerts:
    """The scheduler-wide section; nothing sent (and the rest default) when it is absent or broken."""
    if node is None:
        return Alerts()
    if not isinstance(node, dict):
        report.append((parent, "'scheduler.alerts' must be a mapping with targets and rules"))
        return Alerts()
    report.extend((node, f"scheduler.alerts: {r}") for r in unknown_keys(node, SECTION_KEYS))
    targets: dict[str, AlertTarget] = {}
    raw_targets = node.get("targets") or {}
    if not isinstance(raw_targets, dict):
        report.append((node, "'alerts.targets' must map target names to {type, url_env | command}"))
    else:
        for name, target_node in raw_targets.items():
            if name == "__line__":
                continue
            target = _check_target(name, target_node, raw_targets, report)
            if target is not None:
                targets[name] = target
    rules = _check_rules(node.get("rules", []), node, "alerts", report) or ()
    check_rule_targets(rules, targets, node, report)
    renotify = _renotify(node, "alerts", report)[0] if "renotify" in node else None
    per_hour = _count(node, "max_per_hour", "alerts", report, 1) if "max_per_hour" in node else None
    pause = _count(node, "pause_after_failures", "alerts", report, 0) if "pause_after_failures" in node else None
    return Alerts(
        targets=targets,
        rules=rules,
        renotify=renotify,
        max_per_hour=per_hour or MAX_PER_HOUR,
        pause_after_failures=pause,
    )


def check_rule_targets(
    rules: tuple[AlertRule, ...], targets: Mapping[str, AlertTarget], node: Any, report: Report
) -> None:
    """Every target a rule names must be defined in `alerts.targets`."""
    for name in dict.fromkeys(t for rule in rules for t in rule.targets):
        if name not in targets:
            known = ", ".join(targets) or "none defined"
            report.append((node, f"alert rule names target {name!r}, which alerts.targets does not define ({known})"))


def unset_url_variables(alerts: Alerts, env: Mapping[str, str]) -> list[tuple[str, str]]:
    """(target, variable) for each webhook target whose URL variable `env` lacks: a warning for
    `config validate`, since the machine validating may not be the one sending."""
    return [(t.name, t.url_env) for t in alerts.targets.values() if t.url_env and not env.get(t.url_env)]


def check_job_alerts(node: Any, reasons: list[str]) -> JobAlerts | None:
    """A job entry's `alerts:`; None (and a reason) when it is unusable. Its target names are checked
    against the section's targets once both are read (config.py)."""
    if not isinstance(node, dict):
        reasons.append("'alerts' must be a mapping with rules, renotify and/or pause_after_failures")
        return None
    report: Report = []
    report.extend((node, f"alerts: {r}") for r in unknown_keys(node, JOB_KEYS))
    rules = _check_rules(node["rules"], node, "alerts", report) if "rules" in node else None
    renotify, off = _renotify(node, "alerts", report) if "renotify" in node else (None, False)
    pause = _count(node, "pause_after_failures", "alerts", report, 0) if "pause_after_failures" in node else None
    reasons.extend(reason for _, reason in report)
    if report:
        return None
    return JobAlerts(rules=rules, renotify=renotify, renotify_off=off, pause_after_failures=pause)
