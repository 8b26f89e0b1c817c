"""When a temporary override ends: `--for 2h` (a duration) or `--until TIME` (an instant), checked here.

Bad input is a one-line usage error (exit 2) naming the option and the text; an instant in the past,
or a duration that ends now, is refused, since such an override would be over before it began.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, tzinfo

from sp_scheduler.errors import UsageError

_PART = re.compile(r"(\d+)\s*([smhdw])", re.IGNORECASE)
_WHOLE = re.compile(r"^\s*(?:\d+\s*[smhdw]\s*)+$", re.IGNORECASE)
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
MAX_DURATION = timedelta(days=3660)  # ten years: longer is a typo, and beyond it datetimes overflow


def parse_duration(text: str) -> timedelta:
    """`90s`, `30m`, `2h`, `1d`, `1w`, or parts together (`1h30m`); at least one second, at most ten years."""
    if not _WHOLE.match(text):
        raise UsageError(f"--for {text!r}: expected a duration such as 30m, 2h, 1d or 1h30m")
    try:
        duration = sum(
            (timedelta(**{_UNITS[unit.lower()]: int(amount)}) for amount, unit in _PART.findall(text)), timedelta()
        )
    except OverflowError:
        raise UsageError(f"--for {text!r}: longer than ten years") from None
    if duration < timedelta(seconds=1):
        raise UsageError(f"--for {text!r}: must be at least one second")
    if duration > MAX_DURATION:
        raise UsageError(f"--for {text!r}: longer than ten years")
    return duration


def parse_instant(option: str, text: str, naive_zone: tzinfo = UTC) -> datetime:
    """An ISO-8601 time (`2026-12-05T09:00`, `...+01:00`, `...Z`) in UTC; a naive one is read in
    `naive_zone`. Anything else is a one-line usage error naming `option` and the text."""
    try:
        instant = datetime.fromisoformat(text.strip().replace("Z", "+00:00").replace("z", "+00:00"))
        instant = instant if instant.tzinfo else instant.replace(tzinfo=naive_zone)
        return instant.astimezone(UTC)
    except (ValueError, OverflowError):  # not ISO-8601, or an instant UTC cannot hold (year 1 or 9999 edges)
        zone = "UTC" if naive_zone is UTC else str(naive_zone)
        raise UsageError(
            f"{option} {text!r}: expected an ISO-8601 time such as 2026-12-05T09:00 ({zone}) or ...+01:00"
        ) from None


def parse_until(text: str, now: datetime) -> datetime:
    """An ISO-8601 time (`2026-12-05T09:00`, `...+01:00`, `...Z`; naive means UTC) after `now`."""
    instant = parse_instant("--until", text)
    if instant <= now:
        raise UsageError(f"--until {text!r}: that time is in the past (now {now.isoformat(timespec='seconds')})")
    return instant


def expiry(for_text: str | None, until_text: str | None, now: datetime | None = None) -> datetime | None:
    """The instant an override set now ends (None: it lasts until reset); both options at once is an error."""
    if for_text is not None and until_text is not None:
        raise UsageError("--for and --until: give one or the other, not both")
    now = now or datetime.now(UTC).replace(microsecond=0)  # whole seconds: the times are shown to people
    if for_text is not None:
        return now + parse_duration(for_text)
    if until_text is not None:
        return parse_until(until_text, now)
    return None
