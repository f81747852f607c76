"""`generate_company`: the whole sample company as the seven CSV files a user would import,
plus `DemoTruth`, what was planted in it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from crmbot.demo import catalog
from crmbot.demo.lifecycle import make_lifecycles
from crmbot.demo.orders import Catalog, Sales, make_sales
from crmbot.demo.people import make_people
from crmbot.demo.referrals import Referrals, make_referrals
from crmbot.demo.support import make_feedback, make_tickets
from crmbot.demo.touches import (
    TOUCH_FILE,
    continue_saved,
    plan_touches,
    touches_frame,
    with_orders,
)

PERIOD_DAYS = 730  # two years before as_of
CHURN_HORIZON_DAYS = 90
TRUTH_FILE = "truth.json"
# The touches draw from a random stream of their own, so the rest of the company is the
# same with or without them.
TOUCH_STREAM = 18
# Import kinds in dependency order, with their file names.
FILES: dict[str, str] = {
    "customers": "customers.csv",
    "products": "products.csv",
    "orders": "orders.csv",
    "order-lines": "order-lines.csv",
    "tickets": "tickets.csv",
    "feedback": "feedback.csv",
    "referrals": "referrals.csv",
}
TIMESTAMP_FORMAT = "%Y-%m-%d %H:%M:%S"


@dataclass
class DemoTruth:
    """What the generator planted, so tests (and curious users) can check the models."""

    as_of: date
    seed: int
    customers: int
    hub_customer_ids: list[str]
    hub_referral_counts: dict[str, int]
    # [{"antecedents": [product_id...], "consequent": product_id, "confidence": planted}]
    affinity_rules: list[dict[str, Any]]
    # Customers who bought and then stopped, on or before as_of, and the day they stopped.
    churned_customer_ids: list[str]
    churned_on: dict[str, str]
    # Customers still buying at as_of whose planned stop falls within 90 days after it.
    churning_customer_ids: list[str]
    referral_cycles: list[list[str]]
    row_counts: dict[str, int] = field(default_factory=dict)
    # Touches planted (touches.csv), and the customers a touch kept buying.
    touches: int = 0
    saved_customer_ids: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["as_of"] = self.as_of.isoformat()
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DemoTruth:
        values = dict(data)
        values["as_of"] = date.fromisoformat(values["as_of"])
        return cls(**values)

    @classmethod
    def read(cls, out_dir: Path | str) -> DemoTruth:
        return cls.from_dict(json.loads((Path(out_dir) / TRUTH_FILE).read_text("utf-8")))


def generate_company(
    out_dir: Path | str,
    *,
    customers: int = 3000,
    seed: int = 7,
    as_of: date = date(2026, 6, 30),
) -> DemoTruth:
    """Write the sample company's seven CSV files (and truth.json) into `out_dir`.

    The same arguments always give byte-identical files. Nothing is dated after `as_of`;
    the data covers the two years before it.
    """
    if customers < 10:
        raise ValueError("the sample company needs at least 10 customers")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    start_day = as_of - timedelta(days=PERIOD_DAYS)
    start = np.datetime64(start_day.isoformat(), "s")
    # Times are float days since the start; everything happens before the end of as_of.
    period = float(PERIOD_DAYS + 1)

    people = make_people(rng, customers, period)
    life = make_lifecycles(rng, people.signup_t)
    products = Catalog.standard()
    sales = make_sales(rng, life, products, start=np.datetime64(start_day), period_days=period)
    owner = people.frame["owner"].to_numpy(dtype=str)
    touch_rng = np.random.default_rng([seed, TOUCH_STREAM])
    plan = plan_touches(touch_rng, life, sales, owner, period)
    extra, stops = continue_saved(
        touch_rng, life, plan, products, start=np.datetime64(start_day), period_days=period
    )
    sales = with_orders(sales, extra)
    tickets = make_tickets(rng, life, people.signup_t, period)
    feedback = make_feedback(rng, life, period)
    referrals = make_referrals(rng, life, people.signup_t, people.region, period)

    ids = people.customer_id
    # Each file is built and written on its own, so only one frame is in memory at a time.
    builders: dict[str, Callable[[], pd.DataFrame]] = {
        "customers": lambda: _customers_frame(people.frame, people.signup_t, start),
        "products": products.frame,
        "orders": lambda: _orders_frame(sales, ids, start),
        "order-lines": lambda: _lines_frame(sales, products),
        "tickets": lambda: _tickets_frame(tickets, ids, start),
        "feedback": lambda: _feedback_frame(feedback, ids, start),
        "referrals": lambda: _referrals_frame(referrals, ids, start),
    }
    row_counts: dict[str, int] = {}
    for kind, build in builders.items():
        frame = build()
        frame.to_csv(out / FILES[kind], index=False)
        row_counts[kind] = len(frame)
        del frame

    touches = touches_frame(plan, ids, owner, _timestamps(start, plan.t))
    touches.to_csv(out / TOUCH_FILE, index=False)

    # Saved customers stop later than their story first said.
    lived = replace(life, churn_t=stops)
    truth = _truth(as_of, seed, customers, lived, sales, referrals, ids, start_day, period)
    truth.row_counts = row_counts
    truth.touches = len(touches)
    truth.saved_customer_ids = [str(ids[c]) for c in np.unique(plan.saved)]
    (out / TRUTH_FILE).write_text(json.dumps(truth.to_dict(), indent=2) + "\n", "utf-8")
    return truth


def _timestamps(start: np.datetime64, t: np.ndarray) -> pd.Series:
    """ "YYYY-MM-DD HH:MM:SS" for days-since-start `t`; "" where t is NaN (e.g. still open)."""
    seconds = np.floor(np.asarray(t, dtype=float) * 86400.0)
    valid = np.isfinite(seconds)
    stamps = start + np.where(valid, seconds, 0).astype("int64").astype("timedelta64[s]")
    # Formatting up front is several times faster than to_csv's per-value date_format.
    text = pd.Series(pd.to_datetime(stamps)).dt.strftime(TIMESTAMP_FORMAT)
    return text.where(valid, "")


def _padded_ids(prefix: str, count: int, width: int = 6) -> np.ndarray:
    width = max(width, len(str(count)))
    return np.char.add(prefix, np.char.zfill(np.arange(1, count + 1).astype(str), width))


def _customers_frame(
    frame: pd.DataFrame, signup_t: np.ndarray, start: np.datetime64
) -> pd.DataFrame:
    out = frame.copy()
    signup_day = start.astype("datetime64[D]") + np.floor(signup_t).astype("timedelta64[D]")
    out["signed_up_at"] = np.datetime_as_string(signup_day, unit="D")
    return out


def _order_ids(count: int) -> np.ndarray:
    return _padded_ids("O", count, 7)


def _orders_frame(sales: Sales, ids: np.ndarray, start: np.datetime64) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "order_id": _order_ids(len(sales.order_t)),
            "customer_id": ids[sales.order_customer],
            "ordered_at": _timestamps(start, sales.order_t),
            "amount": np.round(sales.order_amount, 2),
            "currency": "USD",
        }
    )


def _lines_frame(sales: Sales, products: Catalog) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "order_id": _order_ids(len(sales.order_t))[sales.line_order],
            "product_id": products.product_id[sales.line_product],
            "quantity": sales.line_quantity,
            "unit_price": sales.line_unit_price,
        }
    )


def _tickets_frame(tickets: pd.DataFrame, ids: np.ndarray, start: np.datetime64) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "ticket_id": _padded_ids("T", len(tickets)),
            "customer_id": ids[tickets["customer"].to_numpy()],
            "opened_at": _timestamps(start, tickets["opened_t"].to_numpy()),
            "closed_at": _timestamps(start, tickets["closed_t"].to_numpy()),
            "channel": tickets["channel"],
            "subject": tickets["subject"],
            "body": tickets["body"],
            "csat": tickets["csat"].astype("Int64"),
        }
    )


def _feedback_frame(feedback: pd.DataFrame, ids: np.ndarray, start: np.datetime64) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "feedback_id": _padded_ids("F", len(feedback)),
            "customer_id": ids[feedback["customer"].to_numpy()],
            "submitted_at": _timestamps(start, feedback["submitted_t"].to_numpy()),
            "nps": feedback["nps"].astype("Int64"),
            "csat": feedback["csat"].astype("Int64"),
            "comment": feedback["comment"],
        }
    )


def _referrals_frame(referrals: Referrals, ids: np.ndarray, start: np.datetime64) -> pd.DataFrame:
    frame = pd.DataFrame(
        {
            "referrer_id": ids[referrals.referrer],
            "referred_id": ids[referrals.referred],
            "referred_at": _timestamps(start, referrals.referred_t),
            "_t": referrals.referred_t,
        }
    )
    return frame.sort_values(["_t", "referred_id"], kind="stable").drop(columns="_t")


def _truth(
    as_of: date,
    seed: int,
    customers: int,
    life: Any,
    sales: Sales,
    referrals: Referrals,
    ids: np.ndarray,
    start_day: date,
    period: float,
) -> DemoTruth:
    bought = np.bincount(sales.order_customer[~sales.is_refund], minlength=customers) > 0
    churned = np.flatnonzero(bought & (life.churn_t < period))
    churning = np.flatnonzero(
        bought & (life.churn_t >= period) & (life.churn_t < period + CHURN_HORIZON_DAYS)
    )
    hub_counts = np.bincount(referrals.referrer, minlength=customers)
    return DemoTruth(
        as_of=as_of,
        seed=seed,
        customers=customers,
        hub_customer_ids=[str(ids[h]) for h in referrals.hubs],
        hub_referral_counts={str(ids[h]): int(hub_counts[h]) for h in referrals.hubs},
        affinity_rules=[
            {
                "antecedents": list(rule.antecedents),
                "consequent": rule.consequent,
                "confidence": rule.confidence,
            }
            for rule in catalog.AFFINITY_RULES
        ],
        churned_customer_ids=[str(ids[c]) for c in churned],
        churned_on={
            str(ids[c]): (start_day + timedelta(days=int(life.churn_t[c]))).isoformat()
            for c in churned
        },
        churning_customer_ids=[str(ids[c]) for c in churning],
        referral_cycles=[[str(ids[c]) for c in referrals.cycle]] if referrals.cycle else [],
    )
