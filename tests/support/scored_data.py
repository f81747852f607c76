"""Small scored databases for digest and scheduler tests: customers and a model run with
scores written straight into the real tables (what training would have produced)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy.engine import Engine

from crmbot.core import name_index
from crmbot.core.db import write_session
from crmbot.core.models import ActiveRun, Customer, CustomerScore, ModelRun


@dataclass
class Account:
    customer_id: str
    name: str
    churn_risk: float
    clv: float
    owner: str | None = None
    region: str | None = "EMEA"
    reason: str = "no order for 120 days — usually orders every 30"
    influence: float | None = None
    referred: int = 0
    community: int | None = None
    community_size: int | None = None
    email: str | None = None


def add_customers(engine: Engine, accounts: list[Account]) -> dict[str, int]:
    """Insert the customers (once); their primary keys by customer_id."""
    pks: dict[str, int] = {}
    with write_session(engine) as session:
        for account in accounts:
            customer = Customer(
                customer_id=account.customer_id,
                name=account.name,
                email=account.email,
                owner=account.owner,
                region=account.region,
                company=f"{account.name} Ltd",
            )
            session.add(customer)
            session.flush()
            assert customer.id is not None
            pks[account.customer_id] = customer.id
    name_index.rebuild_all(engine)  # as an import leaves it
    return pks


def add_run(
    engine: Engine,
    accounts: list[Account],
    pks: dict[str, int],
    *,
    as_of: date,
    activate: bool = True,
    at: datetime | None = None,
) -> int:
    """A succeeded model run scoring `accounts`; made the active run when `activate`."""
    moment = at or datetime.combine(as_of, datetime.min.time())
    with write_session(engine) as session:
        run = ModelRun(
            as_of=as_of,
            started_at=moment,
            finished_at=moment,
            status="succeeded",
            activated_at=moment if activate else None,
        )
        session.add(run)
        session.flush()
        assert run.id is not None
        for account in accounts:
            session.add(
                CustomerScore(
                    run_id=run.id,
                    customer_pk=pks[account.customer_id],
                    frequency=3,
                    segment="At risk",
                    clv=account.clv,
                    churn_risk=account.churn_risk,
                    value_at_risk=account.clv * account.churn_risk,
                    churn_reasons=[account.reason, "spend down 40%"],
                    influence=account.influence,
                    referred_customers=account.referred,
                    referred_active=max(account.referred - 1, 0),
                    referred_spend=account.referred * 1000.0,
                    community=account.community,
                    community_size=account.community_size,
                )
            )
        if activate:
            active = session.get(ActiveRun, "scores")
            if active is None:
                session.add(ActiveRun(slot="scores", run_id=run.id, activated_at=moment))
            else:
                active.run_id = run.id
                active.activated_at = moment
        return run.id


def book(
    n: int = 6, *, owners: tuple[str | None, ...] = ("U0AM1", "maria@example.com")
) -> list[Account]:
    """`n` accounts with falling value at risk, owned in turn by `owners`."""
    return [
        Account(
            customer_id=f"C{i:03d}",
            name=f"Customer {i}",
            churn_risk=round(0.9 - i * 0.05, 2),
            clv=10_000 - i * 1_000,
            owner=owners[i % len(owners)] if owners else None,
            influence=round(0.5 - i * 0.05, 3),
            referred=10 - i,
            community=i % 2,
            community_size=40 if i % 2 == 0 else 12,
            region="EMEA" if i % 2 == 0 else ("APAC" if i % 3 else "AMER"),
        )
        for i in range(n)
    ]


def digest_headers(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Of the messages posted to a channel (`SlackFake.messages`), the digests' headers:
    each digest is one header, followed by its rows (the at-risk digest's accounts) as
    messages whose metadata key names the row after the digest's own."""
    headers = []
    for message in messages:
        payload = (message.get("metadata") or {}).get("event_payload") or {}
        key = str(payload.get("digest") or "")
        if key.count("|") == 2:  # kind|channel|period; a row's adds |customer id
            headers.append(message)
    return headers
