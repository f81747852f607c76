"""Model runs: the one place that starts, locks, activates, rolls back and lists them.

Commands, the scheduler and the CLI call these functions; the training pipeline itself
(`crmbot.training`) knows nothing of runs, locks or which run is live.
"""

from crmbot.runs.lifecycle import (
    SCORES_SLOT,
    RunAlreadyStarted,
    RunNotActivatable,
    RunResult,
    RunUnreadable,
    activate,
    active_run,
    active_run_id,
    age_days,
    close_abandoned_runs,
    close_dead_runs_at_startup,
    get_run,
    list_runs,
    run_json,
    run_score_count,
    train,
    train_exclusively,
    unreadable_fields,
)
from crmbot.runs.lock import TrainingInProgress, current_holder, default_holder

__all__ = [
    "SCORES_SLOT",
    "RunAlreadyStarted",
    "RunNotActivatable",
    "RunResult",
    "RunUnreadable",
    "TrainingInProgress",
    "activate",
    "active_run",
    "active_run_id",
    "age_days",
    "close_abandoned_runs",
    "close_dead_runs_at_startup",
    "current_holder",
    "default_holder",
    "get_run",
    "list_runs",
    "run_json",
    "run_score_count",
    "train",
    "train_exclusively",
    "unreadable_fields",
]
