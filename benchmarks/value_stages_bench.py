"""Time the value stages (features, segments, clusters, CLV) and the score write on a
synthetic book held in memory — no import step, so the figures are the stages' own.

    python -m benchmarks.value_stages_bench --customers 100000,1000000

Each customer has Poisson(9) + 1 orders spread uniformly over two years after a random
first day, half as many tickets and a third as many survey answers as customers. Such a
book is homogeneous (everyone buys alike), which sends BG/NBD to its limits and its
predictions through the quadrature fallback: a harder case than real books.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import date, datetime
from pathlib import Path

import numpy as np
import pandas as pd
from sqlalchemy import insert

from crmbot.analytics import clusters, clv, features, segments
from crmbot.analytics.base import RunContext, TrainingData
from crmbot.core.config import Settings
from crmbot.core.db import make_engine, upgrade
from crmbot.core.models import Customer, ModelRun
from crmbot.training.scores import write_scores


def book(customers: int, seed: int) -> TrainingData:
    rng = np.random.default_rng(seed)
    per_customer = rng.poisson(9, customers) + 1
    owner = np.repeat(np.arange(1, customers + 1), per_customer)
    start = pd.Timestamp("2024-07-01")
    first = np.repeat(rng.integers(0, 700, customers), per_customer)
    days = np.minimum(first + rng.integers(0, 730, len(owner)), 729)
    orders = pd.DataFrame(
        {
            "order_pk": np.arange(len(owner)),
            "customer_pk": owner,
            "ordered_at": start
            + pd.to_timedelta(days, unit="D")
            + pd.to_timedelta(rng.integers(0, 86_400, len(owner)), unit="s"),
            "amount": rng.gamma(2.0, 50.0, len(owner)),
        }
    )
    index = pd.Index(np.arange(1, customers + 1), name="customer_pk")
    people = pd.DataFrame(
        {"customer_id": [f"C{i}" for i in index], "signed_up_at": pd.NaT}, index=index
    )
    tickets_n, feedback_n = customers // 2, customers // 3
    tickets = pd.DataFrame(
        {
            "customer_pk": rng.integers(1, customers + 1, tickets_n),
            "opened_at": start + pd.to_timedelta(rng.integers(0, 700, tickets_n), unit="D"),
            "closed_at": pd.NaT,
            "channel": None,
            "subject": None,
            "body": None,
            "csat": rng.integers(1, 6, tickets_n),
        }
    )
    feedback = pd.DataFrame(
        {
            "customer_pk": rng.integers(1, customers + 1, feedback_n),
            "submitted_at": start + pd.to_timedelta(rng.integers(0, 700, feedback_n), unit="D"),
            "nps": rng.integers(0, 11, feedback_n),
            "csat": None,
            "comment": None,
        }
    )
    empty = pd.DataFrame
    return TrainingData(
        date(2026, 6, 30),
        people,
        orders,
        empty(columns=["order_pk", "product_pk", "quantity", "unit_price"]),
        empty(),
        tickets,
        feedback,
        empty(columns=["referrer_pk", "referred_pk", "referred_at"]),
    )


def write(scores: pd.DataFrame, directory: Path) -> float:
    engine = make_engine(f"sqlite:///{directory / 'scores.db'}")
    upgrade(engine)
    with engine.begin() as connection:
        connection.execute(
            insert(Customer.__table__),  # type: ignore[attr-defined]
            [{"id": int(pk), "customer_id": f"C{pk}"} for pk in scores.index],
        )
        connection.execute(
            insert(ModelRun.__table__),  # type: ignore[attr-defined]
            [{"id": 1, "as_of": date(2026, 6, 30), "started_at": datetime(2026, 7, 1)}],
        )
    started = time.perf_counter()
    write_scores(engine, 1, scores)
    seconds = time.perf_counter() - started
    engine.dispose()
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", default="100000")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    for size in (int(s) for s in args.customers.split(",")):
        data = book(size, args.seed)
        ctx = RunContext.start(data, Settings(_env_file=None))  # type: ignore[call-arg]
        times = {}
        for stage in (features, segments, clusters, clv):
            started = time.perf_counter()
            stage.run(ctx)
            times[stage.__name__.rsplit(".", 1)[-1]] = time.perf_counter() - started
        with tempfile.TemporaryDirectory() as directory:
            times["write scores (SQLite)"] = write(ctx.scores, Path(directory))
        print(
            f"{size:,} customers, {len(data.orders):,} orders: "
            + ", ".join(f"{name} {seconds:.2f}s" for name, seconds in times.items())
            + f"; BG/NBD fit {ctx.metrics['clv']['bgnbd']['fit_seconds']:.2f}s"
        )


if __name__ == "__main__":
    main()
