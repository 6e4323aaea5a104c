"""Crontab expressions as APScheduler 3.x triggers, with crontab's meaning kept.

Two 3.x traps are handled here: its `from_crontab` numbers weekdays from Monday (issue 286), so
crontab's day-of-week field is translated to day names; and it ANDs day-of-month with day-of-week
where crontab ORs them, so that combination is refused.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from apscheduler.triggers.cron import CronTrigger

_DOW_NAMES = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
_MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}


def _dow(token: str) -> int:
    if token.isdigit() and 0 <= int(token) <= 7:
        return int(token)
    if token in _DOW_NAMES:
        return _DOW_NAMES.index(token)
    raise ValueError(f"day of week {token!r}: use 0-7 (0 and 7 are Sunday) or sun..sat")


def _dow_span(item: str) -> range:
    """One comma-separated item of the day-of-week field (`3`, `1-5`, `*/2`, `mon-fri/2`) as day numbers."""
    span, slash, step_text = item.partition("/")
    step = int(step_text) if step_text.isdigit() else 0
    if slash and step < 1:
        raise ValueError(f"day of week {item!r}: the step must be a positive integer")
    if span == "*":
        lo, hi = 0, 6
    elif "-" in span:
        a, b = span.split("-", 1)
        lo, hi = _dow(a), _dow(b)
    else:
        lo = _dow(span)
        hi = 6 if slash else lo
    if lo > hi:
        raise ValueError(f"day of week {item!r}: the range runs backwards")
    return range(lo, hi + 1, step or 1)


def crontab_day_of_week(expr: str) -> str:
    """Crontab's day-of-week field (0 or 7 = Sunday) as APScheduler 3.x day names.

    APScheduler 3.x reads weekday numbers from Monday = 0, crontab from Sunday = 0; names mean the
    same day in both, so the field is expanded to its set of days and written back as names.
    """
    if expr == "*":
        return "*"
    days = {d % 7 for item in expr.lower().split(",") for d in _dow_span(item)}
    return "*" if len(days) == 7 else ",".join(_DOW_NAMES[d] for d in sorted(days))


def parse_cron(expr: str, tz: Any = "UTC") -> CronTrigger:
    """A standard 5-field crontab expression (or @daily, @hourly, ..) as an APScheduler trigger.

    Same fields as `CronTrigger.from_crontab`, with crontab's weekday numbering. A crontab that
    restricts both day-of-month and day-of-week fires when EITHER matches; APScheduler would
    require both, so that combination is refused rather than silently meaning something else.
    """
    from apscheduler.triggers.cron import CronTrigger

    text = _MACROS.get(expr.strip().lower(), expr.strip())
    fields = text.split()
    if len(fields) != 5:
        raise ValueError(
            f"cron {expr!r}: expected 5 fields (minute hour day-of-month month day-of-week), got {len(fields)}"
        )
    minute, hour, day, month, dow = fields
    if day != "*" and dow != "*":
        raise ValueError(
            f"cron {expr!r}: restrict day-of-month or day-of-week, not both (crontab ORs them, "
            "the scheduler would AND them); use two jobs"
        )
    try:
        return CronTrigger(
            minute=minute, hour=hour, day=day, month=month, day_of_week=crontab_day_of_week(dow), timezone=tz
        )
    except ValueError as e:
        raise ValueError(f"cron {expr!r}: {e}") from e
