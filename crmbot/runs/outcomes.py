"""What came of acting on a past run's at-risk list: its scores, the touches logged in the
days after its day and the orders of its horizon, read grouped by the database and
compared by `crmbot.analytics.outcomes`.

Only a run whose whole churn horizon is in the data is measured (the outcome of every
account is known), and only runs with at least one touch in their window: the newest such
run is the one `/crm model` reports.
"""

from __future__ import annotations

import json
from datetime import date, timedelta
from typing import Any, cast

import pandas as pd
from sqlalchemy import Table, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from crmbot.analytics.outcomes import AT_RISK_FROM, WINDOW_DAYS, compare_touched
from crmbot.analytics.source.frames import day_end
from crmbot.analytics.source.loading import read_frame
from crmbot.core.models import CustomerScore, ModelRun, Order, Touch, Unreadable
from crmbot.runs.backtest import (
    RUNS_LOOKED_AT,
    SCORED_STATUSES,
    has_future,
    horizon_days,
    latest_order_day,
)
from crmbot.runs.lifecycle import list_runs

ORDERS = cast(Table, Order.__table__).c  # type: ignore[attr-defined]
SCORES = cast(Table, CustomerScore.__table__).c  # type: ignore[attr-defined]
TOUCHES = cast(Table, Touch.__table__).c  # type: ignore[attr-defined]


class NotMeasurable(ValueError):
    """The run's list cannot be measured yet; the message says why."""


def measurable_run(
    *, session: Session, latest_order: date | None, default_horizon: int
) -> ModelRun | None:
    """The newest scored run whose horizon is in the data and whose window has touches."""
    if latest_order is None:
        return None
    for run in sorted(
        list_runs(session=session, limit=RUNS_LOOKED_AT),
        key=lambda run: (str(run.as_of), run.id or 0),
        reverse=True,
    ):
        if run.status not in SCORED_STATUSES or isinstance(run.as_of, Unreadable):
            continue
        if not has_future(run, latest_order, default_horizon):
            continue
        start, end = day_end(run.as_of), day_end(run.as_of + timedelta(days=WINDOW_DAYS))
        touched = session.execute(
            select(TOUCHES.id).where(TOUCHES.created_at >= start, TOUCHES.created_at < end).limit(1)
        ).first()
        if touched is not None:
            return run
    return None


def touch_outcomes(engine: Engine, run: ModelRun, *, default_horizon: int) -> dict[str, Any]:
    """The run's at-risk list, touched against comparable untouched accounts
    (`crmbot.analytics.outcomes.compare_touched`), with the run, its day, the window and
    the horizon; raises `NotMeasurable`."""
    if run.id is None or isinstance(run.as_of, Unreadable):
        raise NotMeasurable(f"model run {run.id}'s day is unreadable")
    horizon = horizon_days(run, default_horizon)
    latest = latest_order_day(engine)
    if latest is None or run.as_of + timedelta(days=horizon) > latest:
        raise NotMeasurable(
            f"model run {run.id}'s horizon ({horizon} days after {run.as_of:%Y-%m-%d}) is not "
            "in the data yet"
        )
    at_risk = read_frame(
        engine,
        select(SCORES.customer_pk, SCORES.churn_risk, SCORES.churn_reasons).where(
            SCORES.run_id == run.id, SCORES.churn_risk >= AT_RISK_FROM
        ),
        ["customer_pk", "churn_risk", "churn_reasons"],
    )
    if at_risk.empty:
        raise NotMeasurable(f"model run {run.id} put no account at risk (or has no scores left)")
    start = day_end(run.as_of)
    window_end = day_end(run.as_of + timedelta(days=WINDOW_DAYS))
    horizon_end = day_end(run.as_of + timedelta(days=horizon))
    touches = read_frame(
        engine,
        select(TOUCHES.customer_pk, TOUCHES.created_at, TOUCHES.id, TOUCHES.outcome).where(
            TOUCHES.created_at >= start, TOUCHES.created_at < window_end
        ),
        ["customer_pk", "created_at", "id", "outcome"],
    )
    bought = read_frame(
        engine,
        select(ORDERS.customer_pk)
        .where(
            ORDERS.ordered_at >= start,
            ORDERS.ordered_at < horizon_end,
            ORDERS.amount >= 0,
        )
        .group_by(ORDERS.customer_pk),
        ["customer_pk"],
    )
    accounts = at_risk.set_index("customer_pk")
    accounts["touched"] = accounts.index.isin(touches["customer_pk"])
    accounts["churned"] = ~accounts.index.isin(bought["customer_pk"])
    accounts["top_reason"] = accounts["churn_reasons"].map(_top_reason)
    logged = touches[touches["outcome"].notna()].sort_values(["created_at", "id"])
    latest_outcome = logged.groupby("customer_pk")["outcome"].last()
    accounts["outcome"] = pd.Series(latest_outcome).reindex(accounts.index)
    measured = compare_touched(accounts.reset_index())
    return {
        "run": run.id,
        "as_of": run.as_of.isoformat(),
        "window_days": WINDOW_DAYS,
        "horizon_days": horizon,
    } | measured


def _top_reason(reasons: Any) -> str | None:
    if isinstance(reasons, str):  # JSON read as text by a driver
        try:
            reasons = json.loads(reasons)
        except ValueError:
            return None
    if isinstance(reasons, list) and reasons and isinstance(reasons[0], str):
        return reasons[0]
    return None
