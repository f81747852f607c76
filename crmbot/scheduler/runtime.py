"""What a job works with (engine, settings, poster, clock), bound to the scheduler's
worker threads, and the schedulers alive in this process."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from apscheduler.schedulers.background import BackgroundScheduler
from sqlalchemy.engine import Engine

from crmbot import digests
from crmbot.core.clock import utc_now
from crmbot.core.config import Settings
from crmbot.runs import default_holder

Clock = Callable[[], datetime]


@dataclass
class SchedulerRuntime:
    engine: Engine
    settings: Settings
    poster: digests.Poster | None  # posts digests and admin notices (with retries)
    clock: Clock = utc_now
    holder: str = field(default_factory=lambda: default_holder("scheduler"))
    scheduler: BackgroundScheduler | None = None


_bound = threading.local()
_live_lock = threading.Lock()
_live: list[tuple[BackgroundScheduler, SchedulerRuntime]] = []


def bind_runtime(runtime: SchedulerRuntime) -> None:
    # The executor's thread initializer: every job run by this scheduler sees its runtime.
    _bound.runtime = runtime


def current_runtime() -> SchedulerRuntime:
    runtime = getattr(_bound, "runtime", None)
    if runtime is None:
        with _live_lock:
            if _live:
                return _live[-1][1]
        raise RuntimeError("a scheduled job ran outside a crmbot scheduler")
    return runtime  # type: ignore[no-any-return]


def live_scheduler() -> BackgroundScheduler | None:
    """The scheduler running in this process (`crmbot run`, `crmbot scheduler`), if any."""
    with _live_lock:
        for scheduler, _runtime in reversed(_live):
            if scheduler.running:
                return scheduler
    return None


def runtime_of(scheduler: BackgroundScheduler) -> SchedulerRuntime | None:
    with _live_lock:
        return next((rt for s, rt in _live if s is scheduler), None)


def register_live(scheduler: BackgroundScheduler, runtime: SchedulerRuntime) -> None:
    with _live_lock:
        _live.append((scheduler, runtime))


def forget_live(scheduler: BackgroundScheduler) -> None:
    with _live_lock:
        _live[:] = [(s, rt) for s, rt in _live if s is not scheduler]
