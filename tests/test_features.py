"""The per-customer summary: exact values on a hand-made book, and as-of consistency."""

from __future__ import annotations

from datetime import date, datetime

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import insert, select
from sqlalchemy.engine import Engine
from sqlmodel import col

from crmbot.analytics.base import RunContext, day_end, load_training_data
from crmbot.analytics.features import run
from crmbot.analytics.source import loading as base
from crmbot.analytics.source.pandas_summary import (
    customer_summary,
    purchase_day_summary,
    purchase_summary,
)
from crmbot.core.config import Settings
from crmbot.core.models import Customer, Feedback, Order, OrderLine, Ticket
from tests.support.value_data import END, build_company, insert_company, order_row

AS_OF = date(2025, 6, 30)


@pytest.fixture
def book(engine: Engine) -> Engine:
    with engine.begin() as connection:
        connection.execute(
            insert(Customer.__table__),  # type: ignore[attr-defined]
            [
                {"id": 1, "customer_id": "A", "signed_up_at": date(2024, 12, 1)},
                {"id": 2, "customer_id": "B", "signed_up_at": None},
                {"id": 3, "customer_id": "C", "signed_up_at": date(2025, 1, 1)},
                {"id": 4, "customer_id": "D", "signed_up_at": date(2025, 8, 1)},  # later
            ],
        )
        connection.execute(
            insert(Order.__table__),  # type: ignore[attr-defined]
            [
                # A: two orders on the first day (one purchase day), then two more days,
                # a refund, and an order after as_of.
                order_row(1, 1, datetime(2025, 1, 10, 9), 100.0),
                order_row(2, 1, datetime(2025, 1, 10, 17), 50.0),
                order_row(3, 1, datetime(2025, 3, 1, 12), 30.0),
                order_row(4, 1, datetime(2025, 5, 31, 23, 59), 90.0),
                order_row(5, 1, datetime(2025, 6, 5), -40.0),
                order_row(6, 1, datetime(2025, 7, 1, 0, 0), 500.0),
                # B: one free order on as_of itself.
                order_row(7, 2, datetime(2025, 6, 30, 23, 0), 0.0),
            ],
        )
        connection.execute(
            insert(Ticket.__table__),  # type: ignore[attr-defined]
            [
                {
                    "ticket_id": "T1",
                    "customer_pk": 1,
                    "opened_at": datetime(2025, 6, 1),
                    "closed_at": datetime(2025, 6, 2, 12),
                    "csat": 4,
                },
                {
                    "ticket_id": "T2",
                    "customer_pk": 1,
                    "opened_at": datetime(2025, 6, 20),
                    "closed_at": datetime(2025, 7, 3),  # closed after as_of: open then
                    "csat": 2,
                },
            ],
        )
        connection.execute(
            insert(Feedback.__table__),  # type: ignore[attr-defined]
            [
                {
                    "feedback_id": "F1",
                    "customer_pk": 2,
                    "submitted_at": datetime(2025, 3, 1),
                    "nps": 9,
                },
                {
                    "feedback_id": "F2",
                    "customer_pk": 2,
                    "submitted_at": datetime(2025, 6, 1),
                    "nps": 3,
                },
                {
                    "feedback_id": "F3",
                    "customer_pk": 2,
                    "submitted_at": datetime(2025, 8, 1),
                    "nps": 10,
                },
            ],
        )
    return engine


def test_summary_values_on_a_hand_made_book(book: Engine) -> None:
    summary = customer_summary(load_training_data(book, AS_OF))
    assert list(summary.index) == [1, 2, 3]  # D signs up after as_of
    a, b, c = summary.loc[1], summary.loc[2], summary.loc[3]

    assert a["frequency"] == 3  # Jan 10 counted once
    assert a["repeat_purchases"] == 2
    assert a["orders_count"] == 4
    assert a["recency_days"] == 30  # May 31 -> Jun 30
    assert a["t_x_days"] == (date(2025, 5, 31) - date(2025, 1, 10)).days
    assert a["age_days"] == (AS_OF - date(2025, 1, 10)).days
    assert a["monetary"] == pytest.approx((30.0 + 90.0) / 2)  # repeat days only
    assert a["day_spend_mean"] == pytest.approx(270.0 / 3)
    assert a["purchases_total"] == pytest.approx(270.0)
    assert a["refunds_total"] == pytest.approx(40.0)
    assert a["refunds_count"] == 1
    assert a["total_spend"] == pytest.approx(230.0)
    assert a["tenure_days"] == (AS_OF - date(2024, 12, 1)).days  # sign-up before first order
    assert a["last_order_at"] == pd.Timestamp("2025-05-31 23:59")
    gaps = [
        (date(2025, 3, 1) - date(2025, 1, 10)).days,
        (date(2025, 5, 31) - date(2025, 3, 1)).days,
    ]
    assert a["gap_mean_days"] == pytest.approx(sum(gaps) / 2)
    assert a["gap_std_days"] == pytest.approx(abs(gaps[1] - gaps[0]) / 2)
    assert a["gap_last_days"] == 91
    assert a["overdue_ratio"] == pytest.approx(30 / a["gap_mean_days"])
    # Last 90 days = Apr 2 .. Jun 30: one purchase day (May 31) of 90 -> 1/3 per 30 days.
    assert a["purchase_rate_last_90d"] == pytest.approx(1 / 3)
    assert a["spend_rate_last_90d"] == pytest.approx(90.0 / 3)
    before_span = (date(2025, 4, 2) - date(2025, 1, 10)).days
    assert a["purchase_rate_before_90d"] == pytest.approx(2 * 30 / before_span)
    assert a["tickets_count"] == 2
    assert a["tickets_open"] == 1
    assert a["tickets_last_90d"] == 2
    assert a["ticket_csat_mean"] == pytest.approx(3.0)
    assert a["ticket_resolution_hours_mean"] == pytest.approx(36.0)
    assert a["days_since_last_ticket"] == 10
    assert a["feedback_count"] == 0 and np.isnan(a["nps_latest"])

    assert b["frequency"] == 1 and b["repeat_purchases"] == 0
    assert b["recency_days"] == 0 and b["age_days"] == 0 and b["t_x_days"] == 0
    assert b["monetary"] == 0 and b["total_spend"] == 0
    assert b["tenure_days"] == 0  # no sign-up date: from the first order
    assert b["feedback_count"] == 2  # the August answer is after as_of
    assert b["nps_latest"] == 3 and b["nps_mean"] == 6
    assert b["days_since_last_feedback"] == 29

    assert c["frequency"] == 0 and c["orders_count"] == 0
    assert np.isnan(c["recency_days"]) and np.isnan(c["age_days"])
    assert c["tenure_days"] == (AS_OF - date(2025, 1, 1)).days
    assert c["tickets_count"] == 0


def test_summary_of_an_earlier_snapshot_equals_loading_as_of_that_day(engine: Engine) -> None:
    insert_company(engine, build_company())
    day = date(2025, 3, 31)
    snapshot = customer_summary(load_training_data(engine, END).as_of_earlier(day))
    direct = customer_summary(load_training_data(engine, day))
    pd.testing.assert_frame_equal(snapshot, direct, check_dtype=False)


def test_loading_in_small_chunks_gives_the_same_frames(
    storage_engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    insert_company(storage_engine, build_company())
    whole = load_training_data(storage_engine, END)
    monkeypatch.setattr(base, "LOAD_CHUNK_ROWS", 7)
    monkeypatch.setattr(base, "LINES_CHUNK_ORDERS", 3)
    chunked = load_training_data(storage_engine, END)
    assert len(chunked.orders) > 7 * 3
    for name in ["customers", "orders", "tickets", "feedback", "referrals"]:
        pd.testing.assert_frame_equal(getattr(chunked, name), getattr(whole, name))
    # Texts come as categoricals, one string per distinct text, NULL still missing.
    with storage_engine.connect() as connection:
        stored = connection.execute(
            select(col(Ticket.subject), col(Ticket.body)).where(
                col(Ticket.opened_at) < day_end(END)
            )
        ).all()
    for texts in (whole, chunked):
        for name in ("subject", "body"):
            assert isinstance(texts.tickets[name].dtype, pd.CategoricalDtype)
        assert isinstance(texts.feedback["comment"].dtype, pd.CategoricalDtype)
        loaded = texts.tickets[["subject", "body"]].astype(object)
        assert sorted(
            tuple(None if pd.isna(v) else v for v in row) for row in loaded.to_numpy()
        ) == (sorted(tuple(row) for row in stored))

    # Lines come in no particular order; the same ones, and exactly those of the orders.
    def in_order(lines: pd.DataFrame) -> pd.DataFrame:
        return lines.sort_values(["order_pk", "product_pk"], ignore_index=True)

    pd.testing.assert_frame_equal(in_order(chunked.lines), in_order(whole.lines))
    with storage_engine.connect() as connection:
        expected = connection.execute(
            select(OrderLine.order_pk, OrderLine.product_pk)
            .join(Order, col(Order.id) == col(OrderLine.order_pk))
            .where(col(Order.ordered_at) < day_end(END))
            .order_by(col(OrderLine.order_pk), col(OrderLine.product_pk))
        ).all()
    assert list(in_order(whole.lines).itertuples(index=False, name=None)) == [
        tuple(row) for row in expected
    ]


def test_a_sample_of_customers_keeps_only_their_rows(engine: Engine) -> None:
    insert_company(engine, build_company())
    data = load_training_data(engine, END)
    keep = data.customers.index[::3]
    sample = data.for_customers(keep)
    assert list(sample.customers.index) == list(keep)
    for frame in [sample.orders, sample.tickets, sample.feedback]:
        assert frame["customer_pk"].isin(keep).all()
    assert sample.lines["order_pk"].isin(sample.orders["order_pk"]).all()
    pd.testing.assert_frame_equal(
        customer_summary(sample), customer_summary(data).loc[keep], check_dtype=False
    )


def test_empty_book(engine: Engine) -> None:
    summary = customer_summary(load_training_data(engine, AS_OF))
    assert summary.empty
    assert "frequency" in summary.columns and "tickets_count" in summary.columns


def test_stage_fills_rfm_columns_and_keeps_the_summary(book: Engine, settings: Settings) -> None:
    ctx = RunContext.start(load_training_data(book, AS_OF), settings)
    run(ctx)
    assert ctx.features is not None and len(ctx.features) == 3
    assert ctx.scores.loc[1, "frequency"] == 3
    assert ctx.scores.loc[1, "total_spend"] == pytest.approx(230.0)
    assert ctx.metrics["features"] == {
        "customers": 3,
        "customers_with_purchases": 2,
        "repeat_customers": 1,
        "customers_with_refunds": 1,
    }


def test_purchase_summary_matches_the_full_summary(engine: Engine) -> None:
    insert_company(engine, build_company())
    data = load_training_data(engine, END)
    day = date(2025, 6, 30)
    full = customer_summary(data.as_of_earlier(day))
    quick = purchase_summary(data.orders, data.customers.index, day)
    shared = list(quick.columns)
    assert {"frequency", "repeat_purchases", "t_x_days", "age_days", "monetary"} <= set(shared)
    pd.testing.assert_frame_equal(quick.loc[full.index, shared], full[shared], check_dtype=False)


def test_purchase_day_summary_from_the_runs_purchase_days(
    engine: Engine, settings: Settings
) -> None:
    insert_company(engine, build_company())
    ctx = RunContext.start(load_training_data(engine, END), settings)
    run(ctx)
    day = date(2025, 6, 30)
    earlier = purchase_day_summary(ctx.cache["purchase_days"], ctx.data.customers.index, day)
    direct = customer_summary(ctx.data.as_of_earlier(day))
    shared = list(earlier.columns)
    assert {"frequency", "t_x_days", "age_days", "monetary", "gap_mean_days"} <= set(shared)
    pd.testing.assert_frame_equal(earlier.loc[direct.index, shared], direct[shared])
