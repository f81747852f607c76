"""Reading a run's tables from the database into frames, as of a date.

`load_training_data` reads every table as of a date — rows dated after `as_of` are never
read — into pandas frames (`TrainingData`). `read_frame` and `integer_column` read any
statement's rows straight from the driver's cursor; the SQL summaries read through them too.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import date, datetime
from typing import Any

import numpy as np
import pandas as pd
from pandas.api.types import union_categoricals
from sqlalchemy import BigInteger, Text, cast, func, select
from sqlalchemy.engine import Engine
from sqlmodel import col

from crmbot.analytics.source.frames import day_end, no_integers
from crmbot.analytics.source.training_data import TrainingData
from crmbot.core.models import Customer, Feedback, Order, OrderLine, Product, Referral, Ticket

# Rows fetched and turned into a frame at a time while loading.
LOAD_CHUNK_ROWS = 250_000
# Orders per query when loading order lines (about two lines each).
LINES_CHUNK_ORDERS = 2_000_000


@contextmanager
def paused_gc() -> Iterator[None]:
    """No cyclic garbage collection inside: building millions of tuples (rows read or
    written) sets off full collections that walk every object already alive — loading a
    million customers took 48.5 s with them and 35.1 s without. Rows hold no cycles."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _row_chunks(engine: Engine, statement: Any) -> Iterator[Sequence[Any]]:
    """The statement's rows straight from the driver's cursor, LOAD_CHUNK_ROWS at a time.

    SQLAlchemy's per-row objects and per-value conversions (a regex per SQLite datetime)
    cost more than the query itself on a large book; dates arrive as the driver gives them
    (text on SQLite) and `_datetimes` converts whole columns at once. Chunks, because as
    Python tuples the 13.6 million order lines of a million customers took 2.3 GB at once.
    """
    with paused_gc(), engine.connect() as connection:
        result = connection.execute(statement)
        try:
            cursor = result.cursor
            while cursor is not None:
                rows = cursor.fetchmany(LOAD_CHUNK_ROWS)
                if not rows:
                    break
                yield rows
        finally:
            result.close()


def read_frame(
    engine: Engine, statement: Any, columns: list[str], *, texts: Sequence[str] = ()
) -> pd.DataFrame:
    """The statement's rows as a frame with these column names (see `_row_chunks`).

    The columns named in `texts` come as categoricals: each chunk's strings are replaced
    by codes into its distinct texts as soon as it is read, so a run does not carry one
    Python string per row (a million customers' ticket subjects, bodies and survey
    comments took about half a gigabyte as strings, and held on to memory the later
    stages could not reuse)."""
    parts = [_frame(rows, columns, texts) for rows in _row_chunks(engine, statement)]
    if not parts:
        frame = pd.DataFrame.from_records([], columns=columns)
        for name in texts:
            frame[name] = _texts(())
        return frame
    if len(parts) == 1:
        return parts[0]
    joined = {
        name: union_categoricals([part[name] for part in parts], sort_categories=True)
        for name in texts
    }
    frame = pd.concat([part.drop(columns=list(texts)) for part in parts], ignore_index=True)
    for name, values in joined.items():
        frame[name] = values
    # A chunk whose column was all NULL came out as objects; the whole column decides.
    return frame.infer_objects()[columns]


def _frame(rows: Sequence[Any], columns: list[str], texts: Sequence[str] = ()) -> pd.DataFrame:
    """`DataFrame.from_records(rows, columns=columns)`, in half the time: a column of plain
    numbers becomes an array in one numpy call, and only the others go through pandas'
    type inference (a chunk of 250,000 orders: 0.13 -> 0.07 s). `rows` is not empty.
    The columns in `texts` become categoricals (see `read_frame`)."""
    data: dict[str, Any] = {}
    for name, values in zip(columns, zip(*rows, strict=True), strict=True):
        if name in texts:
            data[name] = _texts(values)
            continue
        if type(values[0]) in (int, float):
            numbers = np.array(values)
            if numbers.dtype.kind in "if":  # not objects: no NULL, no huge integer
                data[name] = numbers
                continue
        data[name] = pd.Series(values)
    return pd.DataFrame(data)


def _texts(values: Sequence[Any]) -> pd.Categorical:
    """Texts (None for NULL) as a categorical whose categories are strings even when
    there are none, so that chunks join (`union_categoricals`)."""
    texts = pd.Categorical(values)
    if len(texts.categories) == 0:
        texts = pd.Categorical(values, categories=pd.Index([], dtype="str"))
    return texts


def integer_column(engine: Engine, statement: Any) -> np.ndarray:
    """The statement's one integer column as an array, in no particular order.

    On SQLite and PostgreSQL the database joins the numbers into one comma-separated text
    that numpy parses in C: the 1.4 million order lines of 100k customers arrive in 0.15 s
    where a Python int per row took 0.47 s. Elsewhere (MariaDB caps GROUP_CONCAT's length)
    row by row.
    """
    values = statement.subquery().c[0]
    dialect = engine.dialect.name
    if dialect in ("sqlite", "postgresql"):
        joined = (
            func.group_concat(values)
            if dialect == "sqlite"
            else func.string_agg(cast(values, Text), ",")
        )
        with engine.connect() as connection:
            text = connection.execute(select(joined)).scalar()
        return np.fromstring(text or "", dtype=np.int64, sep=",")
    parts = [
        np.fromiter((row[0] for row in rows), np.int64, len(rows))
        for rows in _row_chunks(engine, statement)
    ]
    return np.concatenate(parts) if parts else no_integers()


def _orders(engine: Engine, end: datetime) -> pd.DataFrame:
    orders = read_frame(
        engine,
        select(col(Order.id), col(Order.customer_pk), col(Order.ordered_at), col(Order.amount))
        .where(col(Order.ordered_at) < end)
        .order_by(col(Order.id)),
        ["order_pk", "customer_pk", "ordered_at", "amount"],
    )
    return order_columns(orders)


def order_columns(orders: pd.DataFrame) -> pd.DataFrame:
    """Order rows as read (order_pk, customer_pk, ordered_at, amount) in the types the
    stages expect: datetimes and floats."""
    orders = _datetimes(orders, "ordered_at")
    orders["amount"] = orders["amount"].astype(float)
    return orders


def no_orders() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "order_pk": no_integers(),
            "customer_pk": no_integers(),
            "ordered_at": np.zeros(0, dtype="datetime64[ns]"),
            "amount": np.zeros(0, dtype=float),
        }
    )


def _order_products(engine: Engine, order_pks: np.ndarray) -> pd.DataFrame:
    """(order_pk, product_pk) of the lines of these orders — which products each order
    holds is all the models use of a line. Each line arrives as one integer,
    order_pk x stride + product_pk (see `integer_column`)."""
    if len(order_pks) == 0:
        return pd.DataFrame({"order_pk": no_integers(), "product_pk": no_integers()})
    with engine.connect() as connection:
        stride = int(connection.execute(select(func.max(col(Product.id)))).scalar() or 0) + 1
    packed = cast(col(OrderLine.order_pk), BigInteger) * stride + col(OrderLine.product_pk)
    # Lines by ranges of order ids, straight from the (order, product) index, and the
    # orders' own list decides which to keep: joining each line to its order in SQL took
    # twice as long. Ranges, so no one text of numbers outgrows memory (or PostgreSQL's
    # 1 GB limit on a value).
    last = int(order_pks.max())
    wanted = np.zeros(last + 1, dtype=bool)
    wanted[order_pks] = True
    parts = []
    for after in range(int(order_pks.min()) - 1, last, LINES_CHUNK_ORDERS):
        statement = select(packed).where(
            col(OrderLine.order_pk) > after,
            col(OrderLine.order_pk) <= min(after + LINES_CHUNK_ORDERS, last),
        )
        values = integer_column(engine, statement)
        parts.append(values[wanted[values // stride]])
    values = np.concatenate(parts)
    return pd.DataFrame({"order_pk": values // stride, "product_pk": values % stride})


def _datetimes(frame: pd.DataFrame, *names: str) -> pd.DataFrame:
    for name in names:
        frame[name] = _to_datetime(frame[name])
    return frame


def _to_datetime(values: pd.Series) -> pd.Series:
    # ISO text (SQLite) or datetime objects (PostgreSQL, MariaDB): one vectorised parse.
    return pd.to_datetime(values, format="ISO8601")


def load_training_data(engine: Engine, as_of: date, *, with_orders: bool = True) -> TrainingData:
    """Every table as of `as_of`: nothing dated after it is read.

    `with_orders` False: no orders and no order lines (empty tables), for a run that asks
    the database for their summaries instead (`database_source.DatabaseSource`).
    """
    end = day_end(as_of)
    customers = _customers(engine)
    orders = _orders(engine, end) if with_orders else no_orders()
    lines = _order_products(engine, orders["order_pk"].to_numpy(dtype=np.int64))
    products = _products(engine)
    tickets = _tickets(engine, end)
    feedback = _feedback(engine, end)
    referrals = _referrals(engine, end)
    # A customer who signed up after as_of does not exist yet for this run.
    signed = customers["signed_up_at"]
    customers = customers[signed.isna() | (signed < end)]
    return TrainingData(
        as_of=as_of,
        customers=customers,
        orders=orders,
        lines=lines,
        products=products,
        tickets=tickets,
        feedback=feedback,
        referrals=referrals,
    )


def _customers(engine: Engine) -> pd.DataFrame:
    # Only what the models read: names, companies, regions and owners are for the
    # commands, and as Python strings a million customers' took 300 MB.
    customers = read_frame(
        engine,
        select(col(Customer.id), col(Customer.signed_up_at)).where(
            col(Customer.erased_at).is_(None)
        ),
        ["customer_pk", "signed_up_at"],
    ).set_index("customer_pk")
    customers["signed_up_at"] = _to_datetime(customers["signed_up_at"])
    return customers


def _products(engine: Engine) -> pd.DataFrame:
    return read_frame(
        engine,
        select(
            col(Product.id),
            col(Product.product_id),
            col(Product.name),
            col(Product.category),
            col(Product.price),
            col(Product.margin),
        ),
        ["product_pk", "product_id", "name", "category", "price", "margin"],
    ).set_index("product_pk")


def _tickets(engine: Engine, end: datetime) -> pd.DataFrame:
    tickets = read_frame(
        engine,
        select(
            col(Ticket.customer_pk),
            col(Ticket.opened_at),
            col(Ticket.closed_at),
            col(Ticket.subject),
            col(Ticket.body),
            col(Ticket.csat),
        ).where(col(Ticket.opened_at) < end),
        ["customer_pk", "opened_at", "closed_at", "subject", "body", "csat"],
        texts=["subject", "body"],
    )
    tickets = _datetimes(tickets, "opened_at", "closed_at")
    # A ticket closed after as_of was still open on that day.
    tickets.loc[tickets["closed_at"] >= end, "closed_at"] = pd.NaT
    return tickets


def _feedback(engine: Engine, end: datetime) -> pd.DataFrame:
    feedback = read_frame(
        engine,
        select(
            col(Feedback.customer_pk),
            col(Feedback.submitted_at),
            col(Feedback.nps),
            col(Feedback.csat),
            col(Feedback.comment),
        ).where(col(Feedback.submitted_at) < end),
        ["customer_pk", "submitted_at", "nps", "csat", "comment"],
        texts=["comment"],
    )
    return _datetimes(feedback, "submitted_at")


def _referrals(engine: Engine, end: datetime) -> pd.DataFrame:
    referrals = read_frame(
        engine,
        select(
            col(Referral.referrer_pk), col(Referral.referred_pk), col(Referral.referred_at)
        ).where(col(Referral.referred_at).is_(None) | (col(Referral.referred_at) < end)),
        ["referrer_pk", "referred_pk", "referred_at"],
    )
    return _datetimes(referrals, "referred_at")
