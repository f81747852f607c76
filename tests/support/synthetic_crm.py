"""A small seeded company built straight into a `TrainingData`, for the churn and
satisfaction tests (no database, so each test stays well under a second or two).

What is planted: every customer buys as a Poisson process from a first purchase day and
may drop out silently (the pattern BG/NBD describes). On top of that about a third of the
customers become frustrated at some day: they open support tickets (some left unresolved),
answer surveys with low scores and angry comments, spend less, and stop buying two to six
weeks later. A churn model that reads tickets and satisfaction can see that coming while
the customer's recency still looks fine — which is what lets it beat recency alone and
BG/NBD alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

import numpy as np
import pandas as pd

from crmbot.analytics.base import TrainingData

HAPPY_COMMENTS = [
    "great service and fast delivery",
    "love the product, works perfectly",
    "support was very helpful, thank you",
    "excellent quality, will order again",
    "smooth checkout and friendly team",
    "really happy with the new version",
]
ANGRY_COMMENTS = [
    "terrible support, nobody answers",
    "still waiting for my refund, very disappointed",
    "product broke after a week",
    "too expensive for what it does",
    "delivery late again, considering another supplier",
    "awful experience, want to cancel",
]
ROUTINE_TICKETS = [
    ("Invoice question", "please send a copy of the last invoice"),
    ("Address change", "how do I change the delivery address"),
    ("Billing email", "please update our billing email"),
]
ANGRY_TICKETS = [
    ("Damaged order", "order arrived damaged and nobody answers my emails"),
    ("Refund", "still waiting for my refund, this is unacceptable"),
    ("Cancel", "we want to cancel, the product keeps failing"),
    ("Outage", "the service was down again, very disappointed"),
]


@dataclass
class SyntheticCompany:
    data: TrainingData
    frustrated: set[int]  # customer_pk of the planted frustrated customers


def make_company(
    customers: int = 600,
    *,
    seed: int = 3,
    as_of: date = date(2026, 6, 30),
    history_days: int = 720,
    with_tickets: bool = True,
    with_feedback: bool = True,
    prospects: int = 10,
) -> SyntheticCompany:
    """`customers` buyers plus `prospects` customers who signed up and never bought."""
    rng = np.random.default_rng(seed)
    start = datetime.combine(as_of - timedelta(days=history_days), datetime.min.time())
    horizon_end = history_days  # day numbers relative to start; as_of is `history_days`

    orders: list[tuple[int, datetime, float]] = []
    tickets: list[tuple[int, datetime, datetime | None, str, str, str, float | None]] = []
    feedback: list[tuple[int, datetime, float | None, float | None, str | None]] = []
    frustrated: set[int] = set()
    signed_up: list[datetime] = []

    def at(day: float) -> datetime:
        return start + timedelta(days=float(day), hours=float(rng.uniform(8, 18)))

    for pk in range(1, customers + 1):
        first = rng.uniform(0, history_days - 60)
        signed_up.append(start + timedelta(days=float(max(first - rng.uniform(0, 20), 0))))
        rate = rng.gamma(2.0, 1 / 70.0)  # purchases per day, mean 1 in ~35 days
        silent_dropout = first + rng.exponential(600.0)
        onset = np.inf
        if rng.random() < 0.35:
            onset = rng.uniform(first + 20, history_days + 120)
        stop = min(silent_dropout, onset + rng.uniform(15, 45), horizon_end)
        if onset <= horizon_end:
            frustrated.add(pk)

        day = first
        while day < stop:
            spend = float(np.round(rng.lognormal(4.0, 0.6), 2))
            if day > onset:
                spend *= 0.4
            orders.append((pk, at(day), spend))
            day += rng.exponential(1.0 / rate)
        if rng.random() < 0.03:  # a refund now and then
            orders.append((pk, at(min(first + 5, horizon_end - 1)), -20.0))

        if with_tickets:
            t = first + rng.exponential(200.0)
            while t < min(stop, horizon_end):
                subject, body = ROUTINE_TICKETS[rng.integers(len(ROUTINE_TICKETS))]
                closed = t + rng.uniform(0.1, 2)
                tickets.append(
                    (pk, at(t), at(closed), "email", subject, body, float(rng.integers(4, 6)))
                )
                t += rng.exponential(200.0)
            if onset <= horizon_end:
                for _ in range(int(rng.integers(1, 4))):
                    t = onset + rng.uniform(0, 20)
                    if t >= horizon_end:
                        continue
                    subject, body = ANGRY_TICKETS[rng.integers(len(ANGRY_TICKETS))]
                    resolved = rng.random() < 0.5
                    closed_day = t + rng.uniform(3, 25)
                    closed_at = at(closed_day) if resolved and closed_day < horizon_end else None
                    csat = float(rng.integers(1, 3)) if closed_at is not None else None
                    tickets.append((pk, at(t), closed_at, "email", subject, body, csat))

        if with_feedback:
            if rng.random() < 0.45:
                t = rng.uniform(first, min(stop, onset, horizon_end))
                comment = HAPPY_COMMENTS[rng.integers(len(HAPPY_COMMENTS))]
                if rng.random() < 0.2:  # a comment without a score
                    feedback.append((pk, at(t), None, None, comment))
                else:
                    feedback.append(
                        (pk, at(t), float(rng.integers(8, 11)), float(rng.integers(4, 6)), comment)
                    )
            if onset <= horizon_end and rng.random() < 0.7:
                t = onset + rng.uniform(0, 25)
                if t < horizon_end:
                    comment = ANGRY_COMMENTS[rng.integers(len(ANGRY_COMMENTS))]
                    if rng.random() < 0.2:
                        feedback.append((pk, at(t), None, None, comment))
                    else:
                        feedback.append(
                            (
                                pk,
                                at(t),
                                float(rng.integers(0, 6)),
                                float(rng.integers(1, 3)),
                                comment,
                            )
                        )

    for _ in range(prospects):
        signed_up.append(start + timedelta(days=float(rng.uniform(0, history_days))))
    everyone = customers + prospects
    cutoff = datetime.combine(as_of + timedelta(days=1), datetime.min.time())
    customers_frame = pd.DataFrame(
        {
            "customer_id": [f"C{pk:05d}" for pk in range(1, everyone + 1)],
            "name": [f"Customer {pk}" for pk in range(1, everyone + 1)],
            "company": [f"Company {pk % 97}" for pk in range(1, everyone + 1)],
            "region": [["EMEA", "AMER", "APAC"][pk % 3] for pk in range(1, everyone + 1)],
            "owner": [f"U{pk % 5}" for pk in range(1, everyone + 1)],
            "signed_up_at": pd.to_datetime(signed_up),
        },
        index=pd.Index(range(1, everyone + 1), name="customer_pk"),
    )
    order_frame = pd.DataFrame(orders, columns=["customer_pk", "ordered_at", "amount"])
    order_frame = order_frame[order_frame["ordered_at"] < cutoff]
    order_frame = order_frame.sort_values("ordered_at", kind="stable").reset_index(drop=True)
    order_frame.insert(0, "order_pk", np.arange(1, len(order_frame) + 1))
    order_frame["ordered_at"] = pd.to_datetime(order_frame["ordered_at"])
    ticket_frame = pd.DataFrame(
        tickets,
        columns=["customer_pk", "opened_at", "closed_at", "channel", "subject", "body", "csat"],
    )
    ticket_frame["opened_at"] = pd.to_datetime(ticket_frame["opened_at"])
    ticket_frame["closed_at"] = pd.to_datetime(ticket_frame["closed_at"])
    ticket_frame = ticket_frame[ticket_frame["opened_at"] < cutoff].reset_index(drop=True)
    ticket_frame.loc[ticket_frame["closed_at"] >= cutoff, "closed_at"] = pd.NaT
    feedback_frame = pd.DataFrame(
        feedback, columns=["customer_pk", "submitted_at", "nps", "csat", "comment"]
    )
    feedback_frame["submitted_at"] = pd.to_datetime(feedback_frame["submitted_at"])
    feedback_frame = feedback_frame[feedback_frame["submitted_at"] < cutoff].reset_index(drop=True)
    data = TrainingData(
        as_of=as_of,
        customers=customers_frame,
        orders=order_frame,
        lines=pd.DataFrame(columns=["order_pk", "product_pk", "quantity", "unit_price"]),
        products=pd.DataFrame(columns=["product_id", "name", "category", "price", "margin"]),
        tickets=ticket_frame,
        feedback=feedback_frame,
        referrals=pd.DataFrame(
            {
                "referrer_pk": pd.Series(dtype=int),
                "referred_pk": pd.Series(dtype=int),
                "referred_at": pd.Series(dtype="datetime64[ns]"),
            }
        ),
    )
    return SyntheticCompany(data=data, frustrated=frustrated)
