"""The summary the database computes equals the pandas summary, on every database."""

from __future__ import annotations

from datetime import date, datetime

import pandas as pd
import pytest
from sqlalchemy import insert, update
from sqlalchemy.engine import Engine

from crmbot.analytics.base import load_training_data
from crmbot.analytics.source import sql_summary
from crmbot.analytics.source.pandas_summary import customer_summary, purchase_summary
from crmbot.analytics.source.sql_summary import sql_customer_summary, sql_purchase_rfm
from crmbot.core.models import Customer, Feedback, Order, Ticket
from tests.support.value_data import END, build_company, insert_company, later_rows, order_row


def _pandas_summary(engine: Engine, as_of: date) -> pd.DataFrame:
    return customer_summary(load_training_data(engine, as_of)).sort_index()


def _assert_same(sql: pd.DataFrame, pandas: pd.DataFrame) -> None:
    assert list(sql.index) == list(pandas.index)
    assert list(sql.columns) == list(pandas.columns)
    pd.testing.assert_frame_equal(
        sql, pandas, check_dtype=False, check_exact=False, rtol=1e-9, atol=1e-9
    )


@pytest.mark.parametrize("as_of", [END, date(2025, 3, 31), date(2024, 2, 15)])
def test_equals_the_pandas_summary_with_later_rows_present(
    storage_engine: Engine, as_of: date
) -> None:
    company = build_company()
    insert_company(storage_engine, company)
    insert_company(storage_engine, later_rows(company))
    _assert_same(
        sql_customer_summary(storage_engine, as_of), _pandas_summary(storage_engine, as_of)
    )


def _feedback(pk: int, customer: int, when: datetime, nps: int | None, csat: int | None) -> dict:
    return {
        "id": pk,
        "feedback_id": f"F{pk}",
        "customer_pk": customer,
        "submitted_at": when,
        "nps": nps,
        "csat": csat,
    }


def test_equals_the_pandas_summary_on_the_awkward_cases(storage_engine: Engine) -> None:
    """Same-day orders, refunds only, free orders, ties between answers given at the same
    moment, unanswered questions, tickets closed after as_of, erased and later customers."""
    as_of = date(2025, 6, 30)
    with storage_engine.begin() as connection:
        connection.execute(
            insert(Customer.__table__),  # type: ignore[attr-defined]
            [
                {"id": 1, "customer_id": "A", "signed_up_at": date(2024, 12, 1)},
                {"id": 2, "customer_id": "B", "signed_up_at": None},
                {"id": 3, "customer_id": "C", "signed_up_at": date(2025, 1, 1)},
                {"id": 4, "customer_id": "D", "signed_up_at": date(2025, 8, 1)},
                {"id": 5, "customer_id": "E", "signed_up_at": date(2025, 2, 1)},
                {"id": 6, "customer_id": "F", "signed_up_at": date(2025, 6, 30)},
            ],
        )
        connection.execute(
            update(Customer.__table__)  # type: ignore[attr-defined]
            .where(Customer.__table__.c.id == 5)  # type: ignore[attr-defined]
            .values(erased_at=datetime(2025, 5, 1))
        )
        connection.execute(
            insert(Order.__table__),  # type: ignore[attr-defined]
            [
                order_row(1, 1, datetime(2025, 1, 10, 9), 100.0),
                order_row(2, 1, datetime(2025, 1, 10, 23, 59, 59), 50.0),
                order_row(3, 1, datetime(2025, 3, 1, 12), 30.25),
                order_row(4, 1, datetime(2025, 4, 2, 0, 0), 90.0),  # first day of the window
                order_row(5, 1, datetime(2025, 6, 5), -40.0),
                order_row(6, 1, datetime(2025, 7, 1, 0, 0), 500.0),  # after as_of
                order_row(7, 2, datetime(2025, 6, 30, 23, 59, 59), 0.0),
                order_row(8, 3, datetime(2025, 2, 1), -15.0),  # a refund only
                order_row(9, 5, datetime(2025, 2, 2), 70.0),  # erased customer
                order_row(10, 6, datetime(2025, 6, 29), 12.0),  # before sign-up
                order_row(11, 6, datetime(2025, 6, 30), 8.0),
            ],
        )
        connection.execute(
            insert(Ticket.__table__),  # type: ignore[attr-defined]
            [
                {
                    "id": 1,
                    "ticket_id": "T1",
                    "customer_pk": 1,
                    "opened_at": datetime(2025, 6, 1),
                    "closed_at": datetime(2025, 6, 2, 12, 30),
                    "csat": 4,
                },
                {
                    "id": 2,
                    "ticket_id": "T2",
                    "customer_pk": 1,
                    "opened_at": datetime(2025, 3, 20),
                    "closed_at": datetime(2025, 7, 3),  # closed after as_of: open then
                    "csat": None,
                },
                {
                    "id": 3,
                    "ticket_id": "T3",
                    "customer_pk": 2,
                    "opened_at": datetime(2025, 7, 2),  # after as_of
                    "closed_at": None,
                    "csat": 1,
                },
                {
                    "id": 4,
                    "ticket_id": "T4",
                    "customer_pk": 3,
                    "opened_at": datetime(2025, 1, 5),
                    "closed_at": None,
                    "csat": 5,
                },
            ],
        )
        moment = datetime(2025, 6, 1, 10)
        connection.execute(
            insert(Feedback.__table__),  # type: ignore[attr-defined]
            [
                _feedback(1, 2, datetime(2025, 3, 1), 9, 5),
                _feedback(2, 2, moment, 3, None),  # tie with the next: stored order decides
                _feedback(3, 2, moment, 7, None),
                _feedback(4, 2, datetime(2025, 8, 1), 10, 1),  # after as_of
                _feedback(5, 3, datetime(2025, 2, 1), None, 2),
                _feedback(6, 3, datetime(2025, 2, 1), None, None),
                _feedback(7, 1, datetime(2025, 5, 1), None, None),
            ],
        )
    sql = sql_customer_summary(storage_engine, as_of)
    _assert_same(sql, _pandas_summary(storage_engine, as_of))
    assert list(sql.index) == [1, 2, 3, 6]
    assert sql.loc[2, "nps_latest"] == 7 and sql.loc[2, "feedback_csat_latest"] == 5
    assert sql.loc[1, "tickets_open"] == 1 and sql.loc[1, "frequency"] == 3


def test_empty_book(storage_engine: Engine) -> None:
    summary = sql_customer_summary(storage_engine, date(2025, 6, 30))
    pandas = customer_summary(load_training_data(storage_engine, date(2025, 6, 30)))
    assert summary.empty
    assert list(summary.columns) == list(pandas.columns)


@pytest.mark.parametrize("listed_up_to", [20_000, 5])
def test_a_sample_gets_its_own_rows_of_the_summary(
    storage_engine: Engine, listed_up_to: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The churn snapshots summarise samples: in SQL (PostgreSQL: one array; elsewhere a
    list), or, for a sample too long to list, the whole company cut in pandas."""
    monkeypatch.setattr(sql_summary, "MAX_LISTED_CUSTOMERS", listed_up_to)
    company = build_company()
    insert_company(storage_engine, company)
    as_of = date(2025, 3, 31)
    whole = sql_customer_summary(storage_engine, as_of)
    sample = whole.index[::3].to_numpy()
    sampled = sql_customer_summary(storage_engine, as_of, among=sample[::-1])
    assert list(sampled.index) == list(sample)
    _assert_same(sampled, whole.loc[sample])


def test_the_calibration_summary_equals_the_pandas_one(storage_engine: Engine) -> None:
    """The CLV holdout's BG/NBD columns as of an earlier day, for today's customers."""
    company = build_company()
    insert_company(storage_engine, company)
    insert_company(storage_engine, later_rows(company))
    calibration = date(2025, 3, 31)
    data = load_training_data(storage_engine, END)
    expected = purchase_summary(data.orders, data.customers.index, calibration)
    got = sql_purchase_rfm(storage_engine, calibration, customers_on=END)
    columns = ["frequency", "repeat_purchases", "t_x_days", "age_days"]
    _assert_same(got[columns], expected[columns].sort_index())
