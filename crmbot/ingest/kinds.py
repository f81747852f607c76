"""The seven kinds of file crmbot imports: their columns, what is required, what each
column must look like, which column points at which table, and the natural key.

"Only ids, dates and amounts are required": a required column must be in the header and
filled in on every row; any other canonical column may be left out of the file entirely
(the database keeps what it has) or left blank on a row (the value becomes empty).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from sqlalchemy import Table

from crmbot.core.models import Customer, Feedback, Order, OrderLine, Product, Referral, Ticket
from crmbot.ingest import cleaning

# Cross-column checks: given the cleaned columns (name -> values) and the raw ones, return
# {row index: (column, reason)} for rows that break the rule. They may fill values in place.
RowCheck = Callable[[dict[str, list[Any]], dict[str, Sequence[str]]], dict[int, tuple[str, str]]]


@dataclass(frozen=True)
class Column:
    name: str
    cleaner: cleaning.Cleaner = cleaning.text
    required: bool = False
    # The table column it fills; references fill the foreign key (`customer_id` -> customer_pk)
    db_column: str = ""
    # Kind whose natural id this column names ("customers", "products", "orders")
    references: str | None = None
    default: Any = None
    minimum: float | None = None
    maximum: float | None = None
    minimum_exclusive: bool = False
    # A date that may not lie after the import's `today`
    not_in_future: bool = False

    @property
    def target(self) -> str:
        return self.db_column or self.name

    def range_problem(self, value: Any) -> str | None:
        low, high = self.minimum, self.maximum
        if low is not None and high is not None and not low <= value <= high:
            return f"must be between {low:g} and {high:g}"
        if low is not None and self.minimum_exclusive and value <= low:
            return "must be more than 0" if low == 0 else f"must be more than {low:g}"
        if low is not None and value < low:
            return "must not be negative" if low == 0 else f"must be at least {low:g}"
        if high is not None and value > high:
            return f"must be at most {high:g}"
        return None


@dataclass(frozen=True)
class Kind:
    name: str
    table: Table
    columns: tuple[Column, ...]
    # File columns identifying a row; the table's unique constraint is on their targets.
    key: tuple[str, ...]
    # The natural id other files use to point at this kind (None: nothing points at it).
    natural_id: str | None = None
    row_checks: tuple[RowCheck, ...] = field(default=())

    @property
    def required(self) -> list[str]:
        return [c.name for c in self.columns if c.required]

    @property
    def canonical(self) -> list[str]:
        return [c.name for c in self.columns]

    def column(self, name: str) -> Column:
        return next(c for c in self.columns if c.name == name)

    @property
    def key_targets(self) -> tuple[str, ...]:
        return tuple(self.column(name).target for name in self.key)


def _table(model: Any) -> Table:
    return cast(Table, model.__table__)


def _closed_after_opened(
    cleaned: dict[str, list[Any]], _raw: dict[str, Sequence[str]]
) -> dict[int, tuple[str, str]]:
    if "closed_at" not in cleaned:
        return {}
    return {
        index: ("closed_at", f"is before opened_at ({opened:%Y-%m-%d %H:%M})")
        for index, (opened, closed) in enumerate(
            zip(cleaned["opened_at"], cleaned["closed_at"], strict=True)
        )
        if opened is not None and closed is not None and closed < opened
    }


def _not_self_referral(
    cleaned: dict[str, list[Any]], _raw: dict[str, Sequence[str]]
) -> dict[int, tuple[str, str]]:
    return {
        index: ("referred_id", "a customer cannot refer themselves")
        for index, (referrer, referred) in enumerate(
            zip(cleaned["referrer_id"], cleaned["referred_id"], strict=True)
        )
        if referrer is not None and referrer == referred
    }


def _currency_from_amount(
    cleaned: dict[str, list[Any]], raw: dict[str, Sequence[str]]
) -> dict[int, tuple[str, str]]:
    # "$1,234.50" says USD, "12 EUR" says EUR: use that where the currency cell is empty.
    currencies = cleaned.get("currency")
    if currencies is None:
        currencies = cleaned["currency"] = [None] * len(cleaned["amount"])
    if None not in currencies:
        return {}
    amounts_raw = raw["amount"]
    for index, currency in enumerate(currencies):
        if currency is None:
            amount_text = amounts_raw[index]
            named = None
            if amount_text and not amount_text.strip().lstrip("-").replace(".", "", 1).isdigit():
                try:
                    parsed = cleaning.money(amount_text)
                except cleaning.BadValue:
                    parsed = None  # reported by the amount column
                named = parsed[1] if parsed else None
            currencies[index] = named or "USD"
    return {}


def _text(name: str, **kwargs: Any) -> Column:
    return Column(name, cleaning.text, **kwargs)


KINDS: dict[str, Kind] = {
    kind.name: kind
    for kind in (
        Kind(
            "customers",
            _table(Customer),
            (
                _text("customer_id", required=True),
                _text("name"),
                Column("email", cleaning.email),
                _text("phone"),
                _text("company"),
                _text("region"),
                _text("owner"),
                Column("signed_up_at", cleaning.parse_date, not_in_future=True),
            ),
            key=("customer_id",),
            natural_id="customer_id",
        ),
        Kind(
            "products",
            _table(Product),
            (
                _text("product_id", required=True),
                _text("name"),
                _text("category"),
                Column("price", cleaning.number, minimum=0),
                Column("margin", cleaning.percentage_or_fraction, minimum=0, maximum=1),
            ),
            key=("product_id",),
            natural_id="product_id",
        ),
        Kind(
            "orders",
            _table(Order),
            (
                _text("order_id", required=True),
                _text(
                    "customer_id", required=True, references="customers", db_column="customer_pk"
                ),
                Column("ordered_at", cleaning.parse_datetime, required=True, not_in_future=True),
                # Negative amounts are refunds (kept; analytics leave them out of spend).
                Column("amount", cleaning.number, required=True),
                Column("currency", cleaning.currency),
            ),
            key=("order_id",),
            natural_id="order_id",
            row_checks=(_currency_from_amount,),
        ),
        Kind(
            "order-lines",
            _table(OrderLine),
            (
                _text("order_id", required=True, references="orders", db_column="order_pk"),
                _text("product_id", required=True, references="products", db_column="product_pk"),
                Column("quantity", cleaning.number, default=1.0, minimum=0, minimum_exclusive=True),
                Column("unit_price", cleaning.number, minimum=0),
            ),
            key=("order_id", "product_id"),
        ),
        Kind(
            "tickets",
            _table(Ticket),
            (
                _text("ticket_id", required=True),
                _text(
                    "customer_id", required=True, references="customers", db_column="customer_pk"
                ),
                Column("opened_at", cleaning.parse_datetime, required=True, not_in_future=True),
                Column("closed_at", cleaning.parse_datetime, not_in_future=True),
                _text("channel"),
                _text("subject"),
                _text("body"),
                Column("csat", cleaning.whole_number, minimum=1, maximum=5),
            ),
            key=("ticket_id",),
            row_checks=(_closed_after_opened,),
        ),
        Kind(
            "feedback",
            _table(Feedback),
            (
                _text("feedback_id", required=True),
                _text(
                    "customer_id", required=True, references="customers", db_column="customer_pk"
                ),
                Column("submitted_at", cleaning.parse_datetime, required=True, not_in_future=True),
                Column("nps", cleaning.whole_number, minimum=0, maximum=10),
                Column("csat", cleaning.whole_number, minimum=1, maximum=5),
                _text("comment"),
            ),
            key=("feedback_id",),
        ),
        Kind(
            "referrals",
            _table(Referral),
            (
                _text(
                    "referrer_id", required=True, references="customers", db_column="referrer_pk"
                ),
                _text(
                    "referred_id", required=True, references="customers", db_column="referred_pk"
                ),
                Column("referred_at", cleaning.parse_datetime, not_in_future=True),
            ),
            key=("referrer_id", "referred_id"),
            row_checks=(_not_self_referral,),
        ),
    )
}
