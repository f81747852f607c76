"""A tiny scored CRM for the `ask` tests: five customers (one erased), two model runs a
week apart (the newer active), orders with a refund and their lines of three products,
support tickets, survey answers, and referrals — rows written straight into the real
tables, as import and training would have left them."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy.engine import Engine

from crmbot.core import name_index
from crmbot.core.db import write_session
from crmbot.core.models import (
    ActiveRun,
    Customer,
    CustomerScore,
    Feedback,
    ModelRun,
    Order,
    OrderLine,
    Product,
    Referral,
    Ticket,
)

TODAY = date(2026, 6, 30)

# customer_id: name, region, owner, company, signed up, erased
CUSTOMERS = {
    "C1": ("Ada Lovelace", "EMEA", "maria", "Blue Bean Cafe", date(2025, 1, 10), False),
    "C2": ("Alan Turing", "EMEA", "maria", "Blue Bean Cafe", date(2026, 3, 5), False),
    "C3": ("Grace Hopper", "NA", "james", "Golden Oak Hotel", date(2025, 6, 1), False),
    "C4": ("Linus Berg", "APAC", "aiko", None, date(2026, 5, 20), False),
    "C5": ("Erased Person", "EMEA", "maria", None, date(2025, 2, 1), True),
}
# Run 1 (as of 2026-06-20) then run 2 (as of 2026-06-30, active).
SEGMENTS_RUN1 = {"C1": "Loyal", "C2": "New", "C3": "Champions", "C4": "Prospects", "C5": "Lost"}
# customer_id: segment, clv, churn_risk, recency_days, satisfaction
SCORES_RUN2 = {
    "C1": ("At risk", 5000.0, 0.70, 75.0, 40.0),
    "C2": ("Champions", 12000.0, 0.20, 5.0, 90.0),
    "C3": ("Champions", 8000.0, 0.55, 40.0, 70.0),
    "C4": ("New", 300.0, 0.40, 10.0, None),
    "C5": ("Champions", 99999.0, 0.90, 1.0, 10.0),
}
ORDERS = [
    ("O1", "C1", datetime(2026, 3, 1, 10), 100.0),
    ("O2", "C1", datetime(2026, 4, 16, 9), 300.0),
    ("O3", "C1", datetime(2026, 4, 20, 9), -50.0),  # a refund
    ("O4", "C2", datetime(2026, 6, 25, 15), 1000.0),
    ("O5", "C2", datetime(2026, 5, 10, 11), 500.0),
    ("O6", "C3", datetime(2026, 5, 21, 8), 200.0),
    ("O7", "C4", datetime(2026, 6, 20, 12), 50.0),
    ("O8", "C5", datetime(2026, 6, 1, 12), 999.0),  # erased customer: never shown
]
# product_id: name, category, price
PRODUCTS = {
    "P1": ("Descaler", "Maintenance", 10.0),
    "P2": ("Milk Frother", "Accessories", 40.0),
    "P3": ("Espresso Machine", "Machines", 500.0),
}
# order_id, product_id, quantity, unit price (None: the product's price)
ORDER_LINES = [
    ("O1", "P1", 2, 10.0),
    ("O1", "P2", 2, 40.0),
    ("O2", "P1", 3, 10.0),
    ("O3", "P1", 1, 10.0),  # the refund's line: not a purchase
    ("O4", "P3", 2, 500.0),
    ("O5", "P3", 1, 500.0),
    ("O6", "P2", 5, 40.0),
    ("O7", "P1", 5, None),
    ("O8", "P3", 2, 500.0),  # erased customer
]
# ticket_id, customer_id, opened, closed, channel
TICKETS = [
    ("T1", "C1", datetime(2026, 6, 1, 10), datetime(2026, 6, 3, 10), "email"),
    ("T2", "C1", datetime(2026, 6, 20, 9), None, "chat"),
    ("T3", "C1", datetime(2026, 6, 25, 9), None, "email"),
    ("T4", "C3", datetime(2026, 5, 10, 8), datetime(2026, 5, 14, 8), "phone"),
    ("T5", "C2", datetime(2026, 6, 10, 12), datetime(2026, 6, 11, 12), "chat"),
    ("T6", "C5", datetime(2026, 6, 5, 12), None, "email"),  # erased customer
]
# feedback_id, customer_id, submitted, nps, csat
FEEDBACK = [
    ("F1", "C1", datetime(2026, 6, 2), 3, 2),
    ("F2", "C2", datetime(2026, 6, 5), 10, 5),
    ("F3", "C3", datetime(2026, 5, 15), 8, 4),
    ("F4", "C4", datetime(2026, 6, 15), 9, None),
    ("F5", "C1", datetime(2026, 4, 1), 6, 3),
    ("F6", "C5", datetime(2026, 6, 1), 0, 1),  # erased customer
]
# The run's satisfaction columns: customer_id: NPS category, CSAT average, sentiment
SATISFACTION_RUN2 = {
    "C1": ("detractor", 2.5, -0.5),
    "C2": ("promoter", 5.0, 0.6),
    "C3": ("passive", 4.0, 0.1),
    "C4": ("promoter", None, None),
    "C5": ("detractor", 1.0, -0.9),
}
# Churn risk in run 1: C1 and C4 went up, C2 down, C3 stayed.
CHURN_RUN1 = {"C1": 0.50, "C2": 0.30, "C3": 0.55, "C4": 0.30, "C5": 0.10}
REFERRALS = [
    ("C1", "C2", datetime(2026, 3, 5)),
    ("C1", "C4", datetime(2026, 5, 20)),
    ("C3", "C1", datetime(2025, 1, 10)),
]


def seed(engine: Engine) -> None:
    with write_session(engine) as session:
        pks: dict[str, int] = {}
        for cid, (name, region, owner, company, signed_up, erased) in CUSTOMERS.items():
            customer = Customer(
                customer_id=cid,
                name=name,
                region=region,
                owner=owner,
                company=company,
                signed_up_at=signed_up,
                erased_at=datetime(2026, 6, 2) if erased else None,
            )
            session.add(customer)
            session.flush()
            assert customer.id is not None
            pks[cid] = customer.id
        runs = []
        for as_of in (date(2026, 6, 20), date(2026, 6, 30)):
            run = ModelRun(
                as_of=as_of,
                started_at=datetime.combine(as_of, datetime.min.time()),
                status="succeeded",
                activated_at=datetime.combine(as_of, datetime.min.time()),
            )
            session.add(run)
            session.flush()
            runs.append(run.id)
        for cid, segment in SEGMENTS_RUN1.items():
            session.add(
                CustomerScore(
                    run_id=runs[0],
                    customer_pk=pks[cid],
                    segment=segment,
                    churn_risk=CHURN_RUN1[cid],
                )
            )
        for cid, (segment, clv, churn, recency, satisfaction) in SCORES_RUN2.items():
            session.add(
                CustomerScore(
                    run_id=runs[1],
                    customer_pk=pks[cid],
                    segment=segment,
                    previous_segment=SEGMENTS_RUN1[cid],
                    clv=clv,
                    churn_risk=churn,
                    value_at_risk=clv * churn,
                    recency_days=recency,
                    satisfaction=satisfaction,
                    nps_category=SATISFACTION_RUN2[cid][0],
                    csat_avg=SATISFACTION_RUN2[cid][1],
                    sentiment=SATISFACTION_RUN2[cid][2],
                    cluster=0 if clv > 1000 else 1,
                    cluster_label="frequent, high spend" if clv > 1000 else "occasional",
                    # Offers kept in the row itself, as runs before `RunOffer` stored them.
                    next_products=[{"product_id": "P9", "name": "Descaler", "confidence": 0.8}],
                )
            )
        session.flush()
        session.add(ActiveRun(slot="scores", run_id=runs[1], activated_at=datetime(2026, 6, 30)))
        order_pks: dict[str, int] = {}
        for order_id, cid, at, amount in ORDERS:
            order = Order(order_id=order_id, customer_pk=pks[cid], ordered_at=at, amount=amount)
            session.add(order)
            session.flush()
            assert order.id is not None
            order_pks[order_id] = order.id
        product_pks: dict[str, int] = {}
        for product_id, (name, category, price) in PRODUCTS.items():
            product = Product(product_id=product_id, name=name, category=category, price=price)
            session.add(product)
            session.flush()
            assert product.id is not None
            product_pks[product_id] = product.id
        for order_id, product_id, quantity, unit_price in ORDER_LINES:
            session.add(
                OrderLine(
                    order_pk=order_pks[order_id],
                    product_pk=product_pks[product_id],
                    quantity=quantity,
                    unit_price=unit_price,
                )
            )
        for ticket_id, cid, opened, closed, channel in TICKETS:
            session.add(
                Ticket(
                    ticket_id=ticket_id,
                    customer_pk=pks[cid],
                    opened_at=opened,
                    closed_at=closed,
                    channel=channel,
                )
            )
        for feedback_id, cid, submitted, nps, csat in FEEDBACK:
            session.add(
                Feedback(
                    feedback_id=feedback_id,
                    customer_pk=pks[cid],
                    submitted_at=submitted,
                    nps=nps,
                    csat=csat,
                )
            )
        for referrer, referred, at in REFERRALS:
            session.add(
                Referral(referrer_pk=pks[referrer], referred_pk=pks[referred], referred_at=at)
            )
    name_index.rebuild_all(engine)  # as an import leaves it
