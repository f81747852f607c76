"""Cron expressions as crontab writes them, turned into APScheduler triggers.

Five fields — minute hour day-of-month month weekday — in a given time zone. Weekday
numbers follow crontab (0 or 7 = Sunday); APScheduler 3 counts from Monday, so numbers
are translated to names, which mean the same to both.
"""

from __future__ import annotations

from zoneinfo import ZoneInfo

from apscheduler.triggers.cron import CronTrigger


class CronError(ValueError):
    """A schedule that is not a valid cron expression; the message says how to write one."""


_WEEKDAY_NAMES = ["sun", "mon", "tue", "wed", "thu", "fri", "sat", "sun"]


def _crontab_weekdays(field: str) -> str:
    """crontab's day-of-week numbers (0 or 7 = Sunday) as names.

    APScheduler 3 numbers weekdays from Monday = 0, so "1-5" would silently mean
    Tuesday-Saturday; names mean the same thing everywhere.
    """
    if not any(ch.isdigit() for ch in field):
        return field
    days: list[str] = []
    for part in field.split(","):
        base, _, step_text = part.partition("/")
        try:
            if base == "*":
                values = list(range(0, 7))
            elif "-" in base:
                first, last = (int(v) for v in base.split("-", 1))
                values = list(range(first, last + 1))
            else:
                start = int(base)
                values = list(range(start, 7)) if step_text else [start]
            step = int(step_text) if step_text else 1
        except ValueError:
            raise CronError(
                f"the weekday field '{field}' mixes numbers and names; use one or the other "
                "(0-6 with 0 = Sunday, or mon-sun)"
            ) from None
        if step < 1 or not values or any(not 0 <= v <= 7 for v in values):
            raise CronError(f"the weekday field '{field}' is out of range (0-7, 0 = Sunday)")
        for value in values[::step]:
            name = _WEEKDAY_NAMES[value]
            if name not in days:
                days.append(name)
    return ",".join(days)


def parse_cron(expression: str, timezone: str) -> CronTrigger:
    """A CronTrigger in `timezone` for a standard five-field crontab expression."""
    fields = expression.split()
    example = 'e.g. "0 8 * * mon-fri" (08:00 on weekdays)'
    if len(fields) != 5:
        raise CronError(
            f"'{expression}' has {len(fields)} fields; a schedule has five: "
            f"minute hour day-of-month month weekday, {example}"
        )
    try:
        fields[4] = _crontab_weekdays(fields[4])
        return CronTrigger(
            minute=fields[0],
            hour=fields[1],
            day=fields[2],
            month=fields[3],
            day_of_week=fields[4],
            timezone=ZoneInfo(timezone),
        )
    except CronError as exc:
        raise CronError(f"'{expression}': {exc}") from None
    except ValueError as exc:
        raise CronError(f"'{expression}' is not a valid schedule ({exc}); {example}") from None
