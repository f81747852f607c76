"""A tiny seeded company inserted straight into the real tables with Core inserts.

For the training, CLI and feature tests: customers buy on random days as a Poisson process
and may drop out after a purchase (the BG/NBD story), with refunds, free orders, a
customer without orders, tickets, surveys, products with order lines, and referrals.
Everything after `end` is optional (`with_later_rows`), so a test can compare training as
of an earlier day with and without later rows in the database.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

import numpy as np
from sqlalchemy import insert, update
from sqlalchemy.engine import Engine

from crmbot.core import name_index
from crmbot.core.models import (
    Customer,
    Feedback,
    Order,
    OrderLine,
    Product,
    Referral,
    Ticket,
)

START = date(2024, 1, 1)
END = date(2025, 12, 31)


@dataclass
class Company:
    customers: list[dict] = field(default_factory=list)
    products: list[dict] = field(default_factory=list)
    orders: list[dict] = field(default_factory=list)
    lines: list[dict] = field(default_factory=list)
    tickets: list[dict] = field(default_factory=list)
    feedback: list[dict] = field(default_factory=list)
    referrals: list[dict] = field(default_factory=list)
    # ticket id -> when it was closed, for tickets of an earlier Company closed later
    ticket_closures: dict[int, datetime] = field(default_factory=dict)


def build_company(
    *, customers: int = 40, seed: int = 3, start: date = START, end: date = END
) -> Company:
    """Rows (as dicts with explicit primary keys) for a small company up to `end`."""
    rng = np.random.default_rng(seed)
    company = Company()
    span = (end - start).days
    for pk in range(1, 6):
        company.products.append(
            {
                "id": pk,
                "product_id": f"P{pk}",
                "name": f"Product {pk}",
                "category": "tools" if pk <= 3 else "parts",
                "price": 20.0 * pk,
                "margin": 0.3,
            }
        )
    order_pk = line_pk = ticket_pk = feedback_pk = 0
    for pk in range(1, customers + 1):
        signed = start + timedelta(days=int(rng.integers(0, span - 30)))
        company.customers.append(
            {
                "id": pk,
                "customer_id": f"C{pk:03d}",
                "name": f"Customer {pk}",
                "email": f"c{pk}@example.com",
                "company": f"Company {pk % 7}",
                "region": ["EMEA", "AMER", "APAC"][pk % 3],
                "owner": f"owner{pk % 3}",
                "signed_up_at": signed,
            }
        )
        if pk == customers:  # the last customer never buys: a prospect
            continue
        rate = rng.gamma(2.0, 1 / 60.0)  # purchases per day
        drop = rng.beta(1.0, 6.0)
        spend = rng.gamma(4.0, 30.0)
        day = float((signed - start).days)
        first = True
        while day <= span:
            when = datetime.combine(start, datetime.min.time()) + timedelta(
                days=day, hours=int(rng.integers(8, 18))
            )
            order_pk += 1
            amount = 0.0 if rng.random() < 0.03 else round(float(rng.gamma(4.0, spend / 4)), 2)
            company.orders.append(
                {
                    "id": order_pk,
                    "order_id": f"O{order_pk:05d}",
                    "customer_pk": pk,
                    "ordered_at": when,
                    "amount": amount,
                    "currency": "USD",
                }
            )
            for product in rng.choice(5, size=int(rng.integers(1, 3)), replace=False):
                line_pk += 1
                company.lines.append(
                    {
                        "id": line_pk,
                        "order_pk": order_pk,
                        "product_pk": int(product) + 1,
                        "quantity": 1.0,
                        "unit_price": 20.0 * (int(product) + 1),
                    }
                )
            if rng.random() < 0.05 and amount > 0:  # a refund a few days later
                order_pk += 1
                company.orders.append(
                    {
                        "id": order_pk,
                        "order_id": f"O{order_pk:05d}",
                        "customer_pk": pk,
                        "ordered_at": when + timedelta(days=3),
                        "amount": -round(amount / 2, 2),
                        "currency": "USD",
                    }
                )
            if rng.random() < 0.15:
                ticket_pk += 1
                closed = when + timedelta(days=int(rng.integers(1, 20)))
                company.tickets.append(
                    {
                        "id": ticket_pk,
                        "ticket_id": f"T{ticket_pk:05d}",
                        "customer_pk": pk,
                        "opened_at": when + timedelta(days=1),
                        # The first tickets stay open (later_rows closes them after `end`).
                        "closed_at": closed if rng.random() < 0.8 and ticket_pk > 3 else None,
                        "channel": "email",
                        "subject": "question",
                        "body": "please help with my order",
                        "csat": int(rng.integers(1, 6)),
                    }
                )
            if rng.random() < 0.1:
                feedback_pk += 1
                company.feedback.append(
                    {
                        "id": feedback_pk,
                        "feedback_id": f"F{feedback_pk:05d}",
                        "customer_pk": pk,
                        "submitted_at": when + timedelta(days=2),
                        "nps": int(rng.integers(0, 11)),
                        "csat": int(rng.integers(1, 6)),
                        "comment": "good" if rng.random() < 0.5 else "slow delivery",
                    }
                )
            if not first and rng.random() < drop:
                break
            first = False
            day += max(1.0, rng.exponential(1.0 / rate))
    for referrer in range(1, customers // 2, 3):
        company.referrals.append(
            {
                "referrer_pk": referrer,
                "referred_pk": referrer + 1,
                "referred_at": datetime.combine(
                    start + timedelta(days=int(rng.integers(0, span))), datetime.min.time()
                ),
            }
        )
    return company


def later_rows(company: Company, *, seed: int = 99, after: date = END) -> Company:
    """Rows dated after `after`: more orders, tickets, surveys, a referral and a customer
    who signs up later — everything training as of `after` must not read."""
    rng = np.random.default_rng(seed)
    later = Company()
    base = datetime.combine(after + timedelta(days=1), datetime.min.time())
    next_customer = max(c["id"] for c in company.customers) + 1
    later.customers.append(
        {
            "id": next_customer,
            "customer_id": f"C{next_customer:03d}",
            "name": "Late Signup",
            "email": "late@example.com",
            "signed_up_at": after + timedelta(days=10),
        }
    )
    order_pk = max(o["id"] for o in company.orders)
    line_pk = max((line["id"] for line in company.lines), default=0)
    buyers = [c["id"] for c in company.customers[:-1]] + [next_customer]
    for pk in buyers:
        for _ in range(int(rng.integers(1, 4))):
            order_pk += 1
            later.orders.append(
                {
                    "id": order_pk,
                    "order_id": f"O{order_pk:05d}",
                    "customer_pk": pk,
                    "ordered_at": base + timedelta(days=int(rng.integers(0, 60)), hours=9),
                    "amount": round(float(rng.gamma(3.0, 40.0)), 2) * (-1 if pk % 11 == 0 else 1),
                    "currency": "USD",
                }
            )
            line_pk += 1
            later.lines.append(
                {
                    "id": line_pk,
                    "order_pk": order_pk,
                    "product_pk": int(rng.integers(1, 6)),
                    "quantity": 2.0,
                    "unit_price": 10.0,
                }
            )
    ticket_pk = max((t["id"] for t in company.tickets), default=0)
    feedback_pk = max((f["id"] for f in company.feedback), default=0)
    for pk in buyers[:10]:
        ticket_pk += 1
        later.tickets.append(
            {
                "id": ticket_pk,
                "ticket_id": f"T{ticket_pk:05d}",
                "customer_pk": pk,
                "opened_at": base + timedelta(days=5),
                "closed_at": None,
                "channel": "chat",
                "subject": "angry",
                "body": "terrible, cancel everything",
                "csat": 1,
            }
        )
        feedback_pk += 1
        later.feedback.append(
            {
                "id": feedback_pk,
                "feedback_id": f"F{feedback_pk:05d}",
                "customer_pk": pk,
                "submitted_at": base + timedelta(days=6),
                "nps": 0,
                "csat": 1,
                "comment": "awful experience",
            }
        )
    # Tickets opened before `after` but closed after it are still open as of `after`.
    for ticket in company.tickets[:3]:
        later.ticket_closures[ticket["id"]] = base + timedelta(days=2)
    later.referrals.append(
        {"referrer_pk": 2, "referred_pk": next_customer, "referred_at": base + timedelta(days=10)}
    )
    return later


def insert_company(engine: Engine, company: Company) -> None:
    """Insert every row with Core executemany, parents first."""
    with engine.begin() as connection:
        for model, rows in (
            (Customer, company.customers),
            (Product, company.products),
            (Order, company.orders),
            (OrderLine, company.lines),
            (Ticket, company.tickets),
            (Feedback, company.feedback),
            (Referral, company.referrals),
        ):
            if rows:
                connection.execute(insert(model.__table__), rows)  # type: ignore[attr-defined]
        for ticket_id, closed_at in company.ticket_closures.items():
            connection.execute(
                update(Ticket.__table__)  # type: ignore[attr-defined]
                .where(Ticket.__table__.c.id == ticket_id)  # type: ignore[attr-defined]
                .values(closed_at=closed_at)
            )
        name_index.rebuild(connection)  # as an import leaves it


def order_row(pk: int, customer: int, when: datetime, amount: float) -> dict:
    """One `orders` row for a hand-made book."""
    return {
        "id": pk,
        "order_id": f"O{pk}",
        "customer_pk": customer,
        "ordered_at": when,
        "amount": amount,
        "currency": "USD",
    }
