"""A year of nightly retrains in a few minutes: does the database stay the size of the runs
it keeps, and does writing a run stay as fast on night 60 as on night 1?

    python -m benchmarks.retention                      # 100,000 customers, 60 nights
    python -m benchmarks.retention --customers 20000 --runs 60 --keep 14

Into a fresh SQLite file (made as crmbot makes it: WAL, auto_vacuum=INCREMENTAL), each
night writes one model run the way a retrain does — its offers and one score row per
customer through the real score writer (`crmbot.training.scores`), then activation
(`crmbot.runs.activate`) — and then prunes as a retrain does after activation
(`crmbot.runs.retention.prune_runs`, keeping `--keep` runs). The score rows are synthetic
but full: every column filled as training fills it. The models themselves are not fitted:
the figures are the database's side of a retrain (write, prune, give the room back).
Each night ends with a WAL checkpoint, so the file's size is the database's.

Printed: a table of nights (write and prune seconds, file size), then the file's size
after night `--keep` (the last night before anything is pruned) and after the last night,
their ratio, and the write time per run at the start and at the end.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import insert, update
from sqlalchemy.engine import Engine

from crmbot.core.db import connect, write_session
from crmbot.core.models import Customer, ModelRun
from crmbot.core.storage import sqlite_auto_vacuum
from crmbot.runs import activate
from crmbot.runs.retention import BATCH_ROWS, prune_runs
from crmbot.training.scores import write_offers, write_scores

FIRST_NIGHT = date(2026, 1, 1)
SEGMENTS = [
    "Champions",
    "Loyal",
    "Potential loyalists",
    "New customers",
    "Promising",
    "Need attention",
    "About to sleep",
    "At risk",
    "Cannot lose them",
    "Hibernating",
    "Lost",
    "Prospects",
]
REASONS = [
    "no order for 120 days — usually orders every 30",
    "spend down 40% on the previous 90 days",
    "2 unresolved tickets",
    "tickets took 7.2 days to close on average",
    "last NPS answer was a detractor (3)",
    "5 support tickets in the last 90 days",
]


@dataclass
class Night:
    night: int
    run_id: int
    write_seconds: float
    prune_seconds: float  # deleting the run's rows and giving the room back
    vacuum_seconds: float  # of prune_seconds, the incremental vacuum's share
    pruned_rows: int
    file_bytes: int
    wal_bytes: int


def score_frame(customers: int, rng: np.random.Generator) -> pd.DataFrame:
    """One full score row per customer, as the training stages leave them."""
    n = customers
    frequency = rng.poisson(6, n)
    spend = rng.gamma(2.0, 400.0, n)
    clv = rng.gamma(1.5, 900.0, n)
    churn = rng.beta(2, 5, n)
    reasons = [[REASONS[i % 6], REASONS[(i + 2) % 6]] for i in range(n)]
    products = [[int(i % 50), int((i * 7) % 50), int((i * 13) % 50)] for i in range(n)]
    frame = pd.DataFrame(
        {
            "recency_days": rng.uniform(0, 700, n).round(1),
            "frequency": frequency,
            "monetary": (spend / np.maximum(frequency, 1)).round(2),
            "total_spend": spend.round(2),
            "orders_count": frequency + rng.poisson(1, n),
            "tenure_days": rng.uniform(30, 1500, n).round(1),
            "last_order_at": pd.Timestamp("2025-12-31")
            - pd.to_timedelta(rng.integers(0, 700 * 86_400, n), unit="s"),
            "r_score": rng.integers(1, 6, n),
            "f_score": rng.integers(1, 6, n),
            "m_score": rng.integers(1, 6, n),
            "segment": [SEGMENTS[i] for i in rng.integers(0, len(SEGMENTS), n)],
            "previous_segment": [SEGMENTS[i] for i in rng.integers(0, len(SEGMENTS), n)],
            "cluster": rng.integers(0, 6, n),
            "cluster_label": [f"cluster {i}: frequent, recent, mid spend" for i in range(6)]
            * (n // 6)
            + [f"cluster {i}: frequent, recent, mid spend" for i in range(n % 6)],
            "expected_purchases": rng.gamma(2, 1.5, n).round(4),
            "p_alive": rng.uniform(0, 1, n).round(4),
            "expected_spend": rng.gamma(2, 100, n).round(2),
            "clv": clv.round(2),
            "churn_risk": churn.round(4),
            "churn_reasons": reasons,
            "value_at_risk": (clv * churn).round(2),
            "csat_latest": rng.integers(1, 6, n).astype(float),
            "csat_avg": rng.uniform(1, 5, n).round(2),
            "nps_latest": rng.integers(0, 11, n),
            "nps_category": [
                ("detractor", "passive", "promoter")[i] for i in rng.integers(0, 3, n)
            ],
            "sentiment": rng.uniform(-1, 1, n).round(3),
            "satisfaction": rng.uniform(0, 1, n).round(3),
            "influence": rng.exponential(0.01, n).round(6),
            "influence_rank": rng.permutation(n) + 1,
            "referred_customers": rng.poisson(0.3, n),
            "referred_spend": rng.gamma(0.3, 500, n).round(2),
            "referred_active": rng.poisson(0.2, n),
            "community": rng.integers(0, 200, n),
            "community_size": rng.integers(2, 400, n),
            "next_products": products,
        },
        index=pd.Index(np.arange(1, n + 1), name="customer_pk"),
    )
    return frame


def offers(count: int = 50) -> list[dict[str, Any]]:
    return [
        {
            "product_id": f"P{i:04d}",
            "name": f"Product {i}",
            "confidence": 0.4,
            "lift": 2.5,
            "support": 0.02,
            "reason": f"bought by 40% of the customers who bought Product {i + 1}",
        }
        for i in range(count)
    ]


def add_customers(engine: Engine, customers: int) -> None:
    rows = [
        {"id": i, "customer_id": f"C{i:07d}", "name": f"Customer {i}", "region": "EMEA"}
        for i in range(1, customers + 1)
    ]
    with engine.begin() as connection:
        for start in range(0, len(rows), 50_000):
            connection.execute(insert(Customer), rows[start : start + 50_000])


def checkpoint(engine: Engine) -> None:
    raw = engine.raw_connection()
    try:
        raw.driver_connection.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()  # type: ignore[union-attr]
    finally:
        raw.close()


def file_sizes(path: Path) -> tuple[int, int]:
    wal = Path(f"{path}-wal")
    return path.stat().st_size, wal.stat().st_size if wal.exists() else 0


def night(
    engine: Engine, path: Path, number: int, scores: pd.DataFrame, keep: int, batch_rows: int
) -> Night:
    as_of = FIRST_NIGHT + timedelta(days=number - 1)
    started = datetime.combine(as_of, datetime.min.time()) + timedelta(hours=2)
    with write_session(engine) as session:
        run = ModelRun(as_of=as_of, started_at=started, status="running")
        session.add(run)
        session.flush()
        assert run.id is not None
        run_id = run.id
    t0 = time.perf_counter()
    write_offers(engine, run_id, offers())
    write_scores(engine, run_id, scores)
    write_seconds = time.perf_counter() - t0
    with write_session(engine) as session:
        session.execute(
            update(ModelRun)
            .where(ModelRun.id == run_id)  # type: ignore[arg-type]
            .values(status="succeeded", finished_at=started, row_counts={"scores": len(scores)})
        )
    activate(engine, run_id)
    result = prune_runs(engine, keep=keep, batch_rows=batch_rows)
    checkpoint(engine)  # so the file holds every page written, whether or not a run was pruned
    file_bytes, wal_bytes = file_sizes(path)
    return Night(
        night=number,
        run_id=run_id,
        write_seconds=write_seconds,
        prune_seconds=result.seconds,
        vacuum_seconds=result.reclaim_seconds,
        pruned_rows=sum(result.rows_deleted.values()),
        file_bytes=file_bytes,
        wal_bytes=wal_bytes,
    )


def mib(n_bytes: int) -> str:
    return f"{n_bytes / 1_048_576:,.1f}"


def report(nights: list[Night], keep: int, customers: int, auto_vacuum: str) -> None:
    shown = {1, keep, keep + 1, len(nights)} | set(range(5, len(nights) + 1, 5))
    print(
        f"{customers:,} customers, {len(nights)} nights, keeping {keep} runs "
        f"(SQLite, auto_vacuum={auto_vacuum})"
    )
    print()
    print("| night | write s | prune s | of it vacuum s | rows pruned | file MiB | WAL MiB |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for n in nights:
        if n.night in shown:
            print(
                f"| {n.night} | {n.write_seconds:.2f} | {n.prune_seconds:.2f} | "
                f"{n.vacuum_seconds:.2f} | "
                f"{n.pruned_rows:,} | {mib(n.file_bytes)} | {mib(n.wal_bytes)} |"
            )
    print()
    if len(nights) < keep:
        return
    at_keep = nights[keep - 1]
    last = nights[-1]
    size_keep = at_keep.file_bytes + at_keep.wal_bytes
    size_last = last.file_bytes + last.wal_bytes
    first_writes = [n.write_seconds for n in nights[:keep]]
    last_writes = [n.write_seconds for n in nights[-keep:]]
    prunes = [n.prune_seconds for n in nights[keep:]]
    print(f"database after night {keep}: {mib(size_keep)} MiB")
    print(
        f"database after night {last.night}: {mib(size_last)} MiB "
        f"({size_last / size_keep:.2f}x the size after night {keep})"
    )
    first = nights[0].file_bytes + nights[0].wal_bytes
    per_run = (size_keep - first) / max(keep - 1, 1)
    print(
        f"without pruning it would hold {last.night} runs: about "
        f"{mib(round(size_keep + per_run * (last.night - keep)))} MiB "
        f"({mib(round(per_run))} MiB a run, from nights 1-{keep})"
    )
    print(
        f"write per run: median {statistics.median(first_writes):.2f} s over nights 1-{keep}, "
        f"{statistics.median(last_writes):.2f} s over nights {last.night - keep + 1}-{last.night}; "
        f"slowest {max(n.write_seconds for n in nights):.2f} s"
    )
    if prunes:
        print(
            f"prune per night (one run, then the incremental vacuum): median "
            f"{statistics.median(prunes):.2f} s (of it vacuum "
            f"{statistics.median(n.vacuum_seconds for n in nights[keep:]):.2f} s), "
            f"slowest {max(prunes):.2f} s"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=60, help="nights to simulate")
    parser.add_argument("--keep", type=int, default=14, help="CRMBOT_RETAIN_RUNS")
    parser.add_argument("--batch-rows", type=int, default=BATCH_ROWS)
    parser.add_argument("--workdir", type=Path, default=None, help="default: a temporary one")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as scratch:
        workdir = args.workdir or Path(scratch)
        workdir.mkdir(parents=True, exist_ok=True)
        path = workdir / "retention.db"
        for stale in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
            if stale.exists():
                os.remove(stale)
        engine = connect(f"sqlite:///{path}")
        add_customers(engine, args.customers)
        rng = np.random.default_rng(args.seed)
        scores = score_frame(args.customers, rng)
        nights = []
        for number in range(1, args.runs + 1):
            scores["churn_risk"] = rng.beta(2, 5, len(scores)).round(4)  # a new night's model
            nights.append(night(engine, path, number, scores, args.keep, args.batch_rows))
            print(
                f"  night {number}: write {nights[-1].write_seconds:.2f}s, prune "
                f"{nights[-1].prune_seconds:.2f}s, {mib(nights[-1].file_bytes)} MiB",
                flush=True,
            )
        print()
        report(nights, args.keep, args.customers, sqlite_auto_vacuum(engine))
        engine.dispose()


if __name__ == "__main__":
    main()
