"""What the sample company's account managers did about their at-risk accounts, and what
came of it: touches (calls, emails, meetings, notes) with outcomes, planted so that
`/crm model` has touched and untouched accounts to compare.

The story: on the day of an earlier model run (`past_run_day`, far enough back that its
whole churn horizon is in the data) each account manager works the accounts that look at
risk — a visible decline, or an order long overdue for how often they buy — over the next
`CAMPAIGN_DAYS` days, and a few others. Some touches save a customer who was about to
stop: they keep buying after the call (`continue_saved` writes those orders, so the
effect is in the data the models read). Others reach someone who was never at risk (a
false alarm), reach nobody, or come too late. A last round of touches in the month
before the company's last day gives the customer card a recent "Last touch".

Who gets a touch depends on what an account manager can see, as in real books: the
comparison `/crm model` makes is observational, and its caveat holds here too.

Touches are written to `touches.csv` beside the seven import files (there is no import
of touches: they are what people do in crmbot), and `plant_touches` stores them once the
customers are imported.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import cast

import numpy as np
import pandas as pd
from sqlalchemy import Table, func, insert, select
from sqlalchemy.engine import Engine

from crmbot.core.db import bulk_write_connection
from crmbot.core.models import Customer, Touch
from crmbot.demo.lifecycle import Lifecycles
from crmbot.demo.orders import Catalog, Sales, make_sales

TOUCH_FILE = "touches.csv"
CHURN_HORIZON_DAYS = 90
# The earlier run is as of this many days before the company's last day: its horizon
# (the days after it) ends on or before the last day, so what happened is known.
PAST_RUN_DAYS = CHURN_HORIZON_DAYS + 1
CAMPAIGN_DAYS = 30
RECENT_DAYS = 30
# Chance of a touch in the campaign: accounts that look at risk, and the rest.
TOUCH_AT_RISK = 0.5
TOUCH_OTHERS = 0.03
RECENT_TOUCH_AT_RISK = 0.25
# An order this many times the customer's usual gap overdue looks at risk too.
OVERDUE_GAPS = 1.5
# Of the customers about to stop who were touched, the share the touch keeps buying; of
# those who stopped in the `LAPSED_DAYS` before it, the share it wins back.
SAVE_SHARE = 0.5
WIN_BACK_SHARE = 0.35
LAPSED_DAYS = 90
# A saved customer's first order after the touch, and how long they keep buying.
SAVED_FIRST_ORDER_DAYS = (3.0, 25.0)
SAVED_LIFETIME_MEAN_DAYS = 300.0
KINDS = np.array(["call", "email", "meeting"])
KIND_WEIGHTS = np.array([0.55, 0.3, 0.15])
NO_OUTCOME_SHARE = 0.15
NOTES = {
    "saved": [
        "offered a loyalty discount on the next order; they'll stay",
        "fixed the delivery problem they complained about; ordering again",
        "walked them through the new range; placed an order",
    ],
    "reached": [
        "talked about their plans for the quarter",
        "checked in after the support ticket",
        "went through the last invoice together",
    ],
    "no_answer": ["left a voicemail", "no reply to two emails", "out of office until next month"],
    "lost": [
        "moving to a competitor on price",
        "closing the office; no more orders",
        "budget cut, stopping for now",
    ],
    "false_alarm": [
        "all fine, just a quiet season for them",
        "orders through a colleague's account now",
        "happy; stocked up last time",
    ],
    "": ["sent the new catalogue", "quick call, nothing to note"],
}


def past_run_day(as_of: date) -> date:
    """The day of the earlier model run whose at-risk list the account managers worked."""
    return as_of - timedelta(days=PAST_RUN_DAYS)


@dataclass
class TouchPlan:
    """The planted touches (by customer position, time in days since the period start) and
    the customers they saved, with the day each was touched."""

    customer: np.ndarray
    t: np.ndarray
    kind: np.ndarray
    outcome: np.ndarray  # "" for none
    note: np.ndarray
    saved: np.ndarray  # customer positions
    saved_t: np.ndarray  # their touch times


def plan_touches(
    rng: np.random.Generator,
    life: Lifecycles,
    sales: Sales,
    owner: np.ndarray,
    period_days: float,
) -> TouchPlan:
    """Who is touched, when, how, and how it went (see the module docstring)."""
    campaign_t = float(np.floor(period_days)) - PAST_RUN_DAYS  # the end of the past run's day
    recent_t = float(np.floor(period_days)) - RECENT_DAYS
    has_owner = owner != ""
    parts = [
        _touches(
            rng,
            life,
            sales,
            has_owner,
            at=campaign_t,
            days=CAMPAIGN_DAYS,
            p_risky=TOUCH_AT_RISK,
            p_other=TOUCH_OTHERS,
        ),
        _touches(
            rng,
            life,
            sales,
            has_owner,
            at=recent_t,
            days=RECENT_DAYS - 1,
            p_risky=RECENT_TOUCH_AT_RISK,
            p_other=0.0,
        ),
    ]
    customer = np.concatenate([p[0] for p in parts])
    t = np.concatenate([p[1] for p in parts])
    risky = np.concatenate([p[2] for p in parts])
    horizon_end = campaign_t + CHURN_HORIZON_DAYS
    # About to stop: still buying at the touch, stopping before the past run's horizon ends
    # (the recent touches' horizon is after the data: nobody is saved by them); or stopped
    # not long before it, and won back.
    in_campaign = t < campaign_t + CAMPAIGN_DAYS
    stops = life.churn_t[customer]
    stopping = in_campaign & (stops > t) & (stops <= horizon_end)
    lapsed = in_campaign & (stops <= t) & (stops > t - LAPSED_DAYS)
    luck = rng.random(len(customer))
    saved = (stopping & (luck < SAVE_SHARE)) | (lapsed & (luck < WIN_BACK_SHARE))
    draw = rng.random(len(customer))
    outcome = np.where(
        saved,
        np.where(draw < 0.7, "saved", "reached"),
        np.where(
            stopping | (stops <= t),
            np.select([draw < 0.35, draw < 0.75], ["lost", "no_answer"], "reached"),
            np.where(
                risky & ~life.shows_signals[customer],
                np.select([draw < 0.6, draw < 0.8], ["false_alarm", "reached"], "no_answer"),
                np.select([draw < 0.6, draw < 0.85], ["reached", "no_answer"], "false_alarm"),
            ),
        ),
    )
    # What happened after the recent touches is not known yet: no saves, no losses.
    outcome = np.where(~in_campaign & np.isin(outcome, ["lost"]), "no_answer", outcome)
    outcome = np.where(rng.random(len(customer)) < NO_OUTCOME_SHARE, "", outcome).astype(object)
    kind = rng.choice(KINDS, size=len(customer), p=KIND_WEIGHTS).astype(object)
    note = np.array(
        [
            NOTES[o][i % len(NOTES[o])]
            for o, i in zip(outcome, rng.integers(0, 3, len(outcome)), strict=True)
        ],
        dtype=object,
    )
    order = np.lexsort((customer, t))
    return TouchPlan(
        customer=customer[order],
        t=t[order],
        kind=kind[order],
        outcome=outcome[order],
        note=note[order],
        saved=customer[saved],
        saved_t=t[saved],
    )


def _touches(
    rng: np.random.Generator,
    life: Lifecycles,
    sales: Sales,
    has_owner: np.ndarray,
    *,
    at: float,
    days: int,
    p_risky: float,
    p_other: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Touches in the `days` after time `at` on owned customers who had bought by then:
    their positions, times, and whether they looked at risk. Only what an account manager
    sees decides (a decline in orders, an order overdue), not whether the customer has in
    fact already stopped."""
    count = len(life.first_t)
    bought = ~sales.is_refund & (sales.order_t < at)
    last = np.full(count, -np.inf)
    np.maximum.at(last, sales.order_customer[bought], sales.order_t[bought])
    known = has_owner & np.isfinite(last)
    declining = life.shows_signals & (life.decline_t <= at)
    overdue = (at - last) * life.rate > OVERDUE_GAPS
    risky = known & (declining | overdue)
    chance = np.where(risky, p_risky, np.where(known, p_other, 0.0))
    touched = np.flatnonzero(rng.random(count) < chance)
    # Working hours on a day after `at`.
    t = at + rng.integers(0, days, size=len(touched)) + rng.uniform(9.0, 18.0, len(touched)) / 24
    return touched, t, risky[touched]


def continue_saved(
    rng: np.random.Generator,
    life: Lifecycles,
    plan: TouchPlan,
    products: Catalog,
    *,
    start: np.datetime64,
    period_days: float,
) -> tuple[Sales, np.ndarray]:
    """The orders saved customers place after the touch that kept them, and every
    customer's stop time as it now is (a saved customer's is the continuation's)."""
    count = len(life.first_t)
    first_t = np.full(count, np.inf)
    churn_t = np.full(count, np.inf)
    saved = plan.saved
    first_t[saved] = plan.saved_t + rng.uniform(*SAVED_FIRST_ORDER_DAYS, size=len(saved))
    churn_t[saved] = first_t[saved] + rng.exponential(SAVED_LIFETIME_MEAN_DAYS, size=len(saved))
    continuation = replace(
        life,
        first_t=first_t,
        churn_t=churn_t,
        decline_t=churn_t.copy(),
        shows_signals=np.zeros(count, dtype=bool),
    )
    extra = make_sales(rng, continuation, products, start=start, period_days=period_days)
    stops = life.churn_t.copy()
    stops[saved] = churn_t[saved]
    return extra, stops


def with_orders(sales: Sales, extra: Sales) -> Sales:
    """`sales` followed by `extra`'s orders (numbered after them) and lines."""
    offset = len(sales.order_t)
    return Sales(
        order_customer=np.concatenate([sales.order_customer, extra.order_customer]),
        order_t=np.concatenate([sales.order_t, extra.order_t]),
        order_amount=np.concatenate([sales.order_amount, extra.order_amount]),
        line_order=np.concatenate([sales.line_order, extra.line_order + offset]),
        line_product=np.concatenate([sales.line_product, extra.line_product]),
        line_quantity=np.concatenate([sales.line_quantity, extra.line_quantity]),
        line_unit_price=np.concatenate([sales.line_unit_price, extra.line_unit_price]),
    )


def touches_frame(
    plan: TouchPlan, ids: np.ndarray, owner: np.ndarray, created_at: pd.Series
) -> pd.DataFrame:
    """The rows of touches.csv; `created_at` is the touches' times as text."""
    return pd.DataFrame(
        {
            "customer_id": ids[plan.customer],
            "created_at": created_at,
            "kind": plan.kind,
            "outcome": plan.outcome,
            "note": plan.note,
            "author": owner[plan.customer],
        }
    )


def plant_touches(engine: Engine, out_dir: Path | str, *, run_id: int | None) -> int:
    """Store the sample company's touches (touches.csv), tied to model run `run_id` (the
    run live when they were logged); the rows written. Once: a database that holds touches
    already is left as it is."""
    path = Path(out_dir) / TOUCH_FILE
    if not path.exists():
        return 0
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    if frame.empty:
        return 0
    with bulk_write_connection(engine) as connection:
        if connection.execute(select(func.count()).select_from(Touch)).scalar_one():
            return 0
        customers = cast(Table, Customer.__table__).c  # type: ignore[attr-defined]
        pks: dict[str, int] = {
            str(cid): int(pk)
            for cid, pk in connection.execute(select(customers.customer_id, customers.id))
        }
        rows = [
            {
                "customer_pk": pks[str(row["customer_id"])],
                "kind": str(row["kind"]),
                "note": str(row["note"]),
                "outcome": str(row["outcome"]) or None,
                "author": str(row["author"]),
                "created_at": datetime.fromisoformat(str(row["created_at"])),
                "run_id": run_id,
            }
            for row in frame.to_dict("records")
            if str(row["customer_id"]) in pks
        ]
        if rows:
            connection.execute(insert(Touch.__table__), rows)  # type: ignore[attr-defined]
    return len(rows)
