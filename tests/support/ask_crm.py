"""A tiny scored CRM for the `ask` tests: five customers (one erased), two model runs a
week apart (the newer active), orders with a refund, and referrals — rows written straight
into the real tables, as import and training would have left them."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy.engine import Engine

from crmbot.core import name_index
from crmbot.core.db import write_session
from crmbot.core.models import ActiveRun, Customer, CustomerScore, ModelRun, Order, Referral

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
            session.add(CustomerScore(run_id=runs[0], customer_pk=pks[cid], segment=segment))
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
                    cluster=0 if clv > 1000 else 1,
                    cluster_label="frequent, high spend" if clv > 1000 else "occasional",
                    # Offers kept in the row itself, as runs before `RunOffer` stored them.
                    next_products=[{"product_id": "P9", "name": "Descaler", "confidence": 0.8}],
                )
            )
        session.flush()
        session.add(ActiveRun(slot="scores", run_id=runs[1], activated_at=datetime(2026, 6, 30)))
        for order_id, cid, at, amount in ORDERS:
            session.add(
                Order(order_id=order_id, customer_pk=pks[cid], ordered_at=at, amount=amount)
            )
        for referrer, referred, at in REFERRALS:
            session.add(
                Referral(referrer_pk=pks[referrer], referred_pk=pks[referred], referred_at=at)
            )
    name_index.rebuild_all(engine)  # as an import leaves it
