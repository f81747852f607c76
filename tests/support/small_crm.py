"""A dozen customers with orders and two model runs, written straight into the tables.

For the command, query and Slack tests: small enough to read in full, shaped like what
training writes (one `CustomerScore` row per customer per run, `ActiveRun` pointing at the
newer run, `previous_segment` filled), and with the awkward cases planted: two customers
with the same name, a name carrying Slack markup, an erased customer, an owner known by
email and one by Slack user id.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

from sqlalchemy.engine import Engine

from crmbot.chat.dispatch import Dispatcher
from crmbot.core import name_index
from crmbot.core.config import Settings
from crmbot.core.db import write_session
from crmbot.core.models import (
    ActiveRun,
    Customer,
    CustomerScore,
    ModelRun,
    Order,
    Referral,
    RunOffer,
)
from crmbot.reply import Reply
from crmbot.shell.repl import Shell

AS_OF = date(2026, 6, 30)
TODAY = date(2026, 7, 3)

# customer_id, name, email, phone, company, region, owner, segment, previous segment,
# clv, churn risk, influence
PEOPLE = [
    (
        "C001",
        "Ada Lovelace",
        "ada@analytical.example",
        "+44 20 7946 0001",
        "Analytical Engines",
        "EMEA",
        "UAM1",
        "Champions",
        "Loyal",
        9200.0,
        0.08,
        0.12,
    ),
    (
        "C002",
        "Grace Hopper",
        "grace@cobol.example",
        "+1 202 555 0102",
        "Cobol Systems",
        "AMER",
        "UAM1",
        "At risk",
        "Loyal",
        7400.0,
        0.71,
        0.05,
    ),
    (
        "C003",
        "Alan Turing",
        "alan@bletchley.example",
        "+44 20 7946 0003",
        "Bletchley Labs",
        "EMEA",
        "maria@crm.example",
        "Can't lose them",
        "Champions",
        12500.0,
        0.64,
        0.02,
    ),
    (
        "C004",
        "Katherine Johnson",
        "kj@orbit.example",
        "+1 757 555 0104",
        "Orbit Analytics",
        "AMER",
        "UAM2",
        "Loyal",
        "Loyal",
        5100.0,
        0.22,
        0.0,
    ),
    (
        "C005",
        "Edsger Dijkstra",
        "edsger@paths.example",
        "+31 20 555 0105",
        "Shortest Paths",
        "EMEA",
        "UAM2",
        "Hibernating",
        "Need attention",
        300.0,
        0.93,
        0.0,
    ),
    (
        "C006",
        "Barbara Liskov",
        "barbara@subtypes.example",
        "+1 617 555 0106",
        "Subtypes Inc",
        "AMER",
        "maria@crm.example",
        "Potential loyalists",
        None,
        2600.0,
        0.35,
        0.3,
    ),
    (
        "C007",
        "John Smith",
        "john.smith@alpha.example",
        "+1 415 555 0107",
        "Alpha Widgets",
        "APAC",
        "UAM1",
        "New",
        None,
        800.0,
        0.41,
        0.0,
    ),
    (
        "C008",
        "John Smith",
        "jsmith@beta.example",
        "+61 2 5550 0108",
        "Beta Gadgets",
        "APAC",
        "UAM2",
        "Promising",
        "New",
        950.0,
        0.38,
        0.0,
    ),
    (
        "C009",
        "<!channel> Mallory <@U0HACK>",
        "mallory@evil.example",
        "+1 666 555 0109",
        "Evil & Sons <script>",
        "EMEA",
        "UAM2",
        "At risk",
        "At risk",
        4300.0,
        0.66,
        0.01,
    ),
    (
        "C010",
        "Margaret Hamilton",
        "margaret@apollo.example",
        "+1 617 555 0110",
        "Apollo Code",
        "AMER",
        "UAM1",
        "Champions",
        "Champions",
        15800.0,
        0.05,
        0.45,
    ),
    (
        "C011",
        "Erased Person",
        None,
        None,
        None,
        "EMEA",
        "UAM1",
        "Lost",
        "Hibernating",
        100.0,
        0.97,
        0.0,
    ),
    (
        "C012",
        "Tim Berners-Lee",
        "tim@web.example",
        "+44 20 7946 0012",
        "World Wide Web",
        "EMEA",
        "UAM2",
        "Need attention",
        "Loyal",
        3900.0,
        0.52,
        0.2,
    ),
]

REASONS = {
    "C002": [
        "no order for 94 days, usually every 21",
        "two unresolved tickets",
        "CSAT fell from 5 to 2",
    ],
    "C003": ["spend down 60% on the previous quarter", "NPS 3 (detractor)"],
    "C005": ["no order for 240 days", "one purchase only"],
    "C009": ["no order for 70 days", "complaint: <!here> refund <@U0HACK>"],
    "C012": ["order gap twice the usual"],
}


@dataclass
class SmallCrm:
    engine: Engine
    run_id: int
    previous_run_id: int
    pks: dict[str, int]


def seed(engine: Engine) -> SmallCrm:
    """Write the customers, their orders, referrals and two runs; the newer one active."""
    pks: dict[str, int] = {}
    with write_session(engine) as session:
        for row in PEOPLE:
            customer = Customer(
                customer_id=row[0],
                name=row[1],
                email=row[2],
                phone=row[3],
                company=row[4],
                region=row[5],
                owner=row[6],
                signed_up_at=date(2024, 1, 15),
                erased_at=datetime(2026, 6, 1) if row[0] == "C011" else None,
            )
            session.add(customer)
            session.flush()
            assert customer.id is not None
            pks[row[0]] = customer.id
        order_number = 0
        for index, row in enumerate(PEOPLE):
            for month in range(1 + index % 5):
                order_number += 1
                session.add(
                    Order(
                        order_id=f"O{order_number:04d}",
                        customer_pk=pks[row[0]],
                        ordered_at=datetime(2026, 6, 20) - timedelta(days=35 * month + index),
                        amount=100.0 + 10 * index + month,
                    )
                )
        session.add(Referral(referrer_pk=pks["C010"], referred_pk=pks["C006"]))
        session.add(Referral(referrer_pk=pks["C010"], referred_pk=pks["C001"]))
        previous = ModelRun(
            as_of=AS_OF - timedelta(days=7),
            started_at=datetime(2026, 6, 24, 2),
            finished_at=datetime(2026, 6, 24, 2, 1),
            status="succeeded",
            activated_at=datetime(2026, 6, 24, 2, 1),
        )
        current = ModelRun(
            as_of=AS_OF,
            started_at=datetime(2026, 7, 1, 2),
            finished_at=datetime(2026, 7, 1, 2, 1),
            status="succeeded",
            activated_at=datetime(2026, 7, 1, 2, 1),
            row_counts={"customers": len(PEOPLE), "scores": len(PEOPLE)},
            timings={"features": 0.4, "clv": 1.1, "churn": 2.0},
            metrics={
                "churn": {"roc_auc": 0.81, "pr_auc": 0.44, "brier": 0.12, "lift_top_decile": 3.2},
                "clusters": {"k": 4, "silhouette": 0.41},
            },
        )
        session.add_all([previous, current])
        session.flush()
        assert previous.id is not None and current.id is not None
        for rank, row in enumerate(PEOPLE, start=1):
            cid, segment, before, clv, risk, influence = (
                row[0],
                row[7],
                row[8],
                row[9],
                row[10],
                row[11],
            )
            session.add(
                CustomerScore(
                    run_id=previous.id,
                    customer_pk=pks[cid],
                    segment=before or "Prospects",
                    clv=clv,
                    churn_risk=risk,
                    value_at_risk=clv * risk,
                )
            )
            session.add(
                CustomerScore(
                    run_id=current.id,
                    customer_pk=pks[cid],
                    segment=segment,
                    previous_segment=before,
                    recency_days=10.0 + rank * 7,
                    frequency=rank,
                    monetary=120.0 + rank,
                    total_spend=1000.0 + 100 * rank,
                    orders_count=rank,
                    last_order_at=datetime(2026, 6, 20) - timedelta(days=rank),
                    r_score=1 + rank % 5,
                    f_score=1 + (rank * 2) % 5,
                    m_score=1 + (rank * 3) % 5,
                    cluster=rank % 3,
                    cluster_label=["frequent, high spend", "occasional", "lapsed"][rank % 3],
                    expected_purchases=3.5 - rank * 0.1,
                    p_alive=1 - risk / 2,
                    expected_spend=140.0,
                    clv=clv,
                    churn_risk=risk,
                    churn_reasons=REASONS.get(cid, []),
                    value_at_risk=clv * risk,
                    csat_latest=4.0,
                    csat_avg=4.2,
                    nps_latest=9 if risk < 0.5 else 3,
                    nps_category="promoter" if risk < 0.5 else "detractor",
                    sentiment=0.3,
                    satisfaction=72.0,
                    influence=influence or None,
                    influence_rank=rank if influence else None,
                    referred_customers=2 if cid == "C010" else 0,
                    referred_active=1 if cid == "C010" else 0,
                    referred_spend=2400.0 if cid == "C010" else 0.0,
                    community=1,
                    community_size=3,
                    next_products=[0],
                )
            )
        session.add(
            RunOffer(
                run_id=current.id,
                offer=0,
                product_id="P7",
                name="Support Plus",
                confidence=0.42,
                lift=3.1,
                support=0.05,
                reason="bought by 42% of customers with Widget Pro",
            )
        )
        session.add(
            ActiveRun(slot="scores", run_id=current.id, activated_at=datetime(2026, 7, 1, 2, 1))
        )
    name_index.rebuild_all(engine)  # as an import leaves it
    return SmallCrm(engine=engine, run_id=current.id, previous_run_id=previous.id, pks=pks)


class ChatBot:
    """Runs chat lines as a user through the shell transport (the same dispatcher, access
    checks and audit as Slack); keeps the Reply and its rendered text apart."""

    def __init__(self, engine: Engine, settings: Settings, chart_dir: Path) -> None:
        self.dispatcher = Dispatcher(engine, settings)
        self.shell = Shell(self.dispatcher, chart_dir=chart_dir)

    def reply(self, line: str, user: str = "UAM1") -> Reply:
        return self.dispatcher.handle(line, user_id=user, channel_id="shell", today=TODAY)

    def say(self, line: str, user: str = "UAM1") -> str:
        return self.shell.render(self.reply(line, user))
