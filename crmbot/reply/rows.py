"""How a customer reads as a row of each list — defined once, shown by every list.

A row is a set of named cells (`customer_cells`); a list is an ordered choice of cell
names (`AT_RISK_LIST`, `AT_RISK_DIGEST`, ...), turned into a `Table` by `table`. The
at-risk command, the at-risk digest and the App Home all read the same cells, so a new
column of the at-risk list is one entry in `customer_cells` and one name in the lists
that show it — both here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from crmbot.core.models import Customer, CustomerScore
from crmbot.queries import ScoredCustomer
from crmbot.reply import Table
from crmbot.reply.format import MISSING, clip, day, money, number, percent
from crmbot.reply.people import owner_ref

NAME_CHARS = 28
SEGMENT_CHARS = 20
REASON_CHARS = 60

# The lists, by the names of the cells they show, in order.
AT_RISK_LIST = ("#", "Customer", "Segment", "CLV", "Churn", "At risk", "Top reason")
AT_RISK_DIGEST = ("#", "Customer", "Owner", "At risk", "Churn", "Change", "Top reason")
INFLUENCER_LIST = (
    "#",
    "Customer",
    "Influence",
    "Referred",
    "Still active",
    "Their spend",
    "Community",
)
INFLUENCER_DIGEST = (
    "#",
    "Customer",
    "Referred",
    "Still active",
    "Their spend",
    "Community",
    "Change",
)
SEGMENT_MEMBERS = ("#", "Customer", "CLV", "Churn", "Last order", "Owner")
SIMILAR_LIST = ("Customer", "Segment", "RFM", "CLV", "Churn")


def display_name(customer: Customer, limit: int = NAME_CHARS) -> str:
    """The name people know a customer by: their name, else their company, else their id."""
    return clip(customer.name or customer.company or customer.customer_id, limit)


def customer_label(customer: Customer, limit: int = NAME_CHARS) -> str:
    """ "Ada Lovelace (C001)": the name people know, and the id commands take."""
    return f"{display_name(customer, limit)} ({customer.customer_id})"


# In an at-risk list, a customer whose risk is below the typical one is there for their
# value; their reasons say what keeps the risk low, so none of them is shown as "why".
BELOW_TYPICAL = "risk below typical; listed for its value"


def top_reason(score: CustomerScore, raised: bool | None = None, limit: int = REASON_CHARS) -> str:
    if raised is False:
        return BELOW_TYPICAL
    return clip((score.churn_reasons or [MISSING])[0], limit)


def rfm(score: CustomerScore) -> str:
    return f"{score.r_score or '-'}{score.f_score or '-'}{score.m_score or '-'}"


def customer_cells(row: ScoredCustomer, rank: int | None = None) -> dict[str, str]:
    """Every cell a list may show for one scored customer, by column name."""
    customer, score = row.customer, row.score
    return {
        "#": str(rank) if rank is not None else "",
        "Customer": customer_label(customer),
        "Owner": owner_ref(customer.owner),
        "Segment": clip(score.segment, SEGMENT_CHARS),
        "CLV": money(score.clv),
        "Churn": percent(score.churn_risk),
        "At risk": money(score.value_at_risk),
        "Top reason": top_reason(score, row.raised),
        "Last order": day(score.last_order_at),
        "RFM": rfm(score),
        "Influence": number(score.influence, 2),
        "Referred": f"{score.referred_customers:,}",
        "Still active": f"{score.referred_active:,}",
        "Their spend": money(score.referred_spend),
        "Community": f"{score.community_size:,}" if score.community_size else MISSING,
    }


def table(
    rows: Sequence[ScoredCustomer],
    columns: Sequence[str],
    *,
    ranks: Sequence[int] | None = None,
    extra: Mapping[str, Sequence[str]] | None = None,
) -> Table:
    """The list `columns` of `rows`; `ranks` replace the positions 1, 2, ... and `extra`
    gives cells only the caller knows (a digest's "Change"), one per row."""
    extra = extra or {}
    body = []
    for position, row in enumerate(rows):
        rank = ranks[position] if ranks is not None else position + 1
        cells = customer_cells(row, rank)
        for name, values in extra.items():
            cells[name] = values[position]
        body.append([cells[name] for name in columns])
    return Table(columns=list(columns), rows=body)


def home_line(row: ScoredCustomer, *, with_risk: bool) -> str:
    """One App Home entry: "*Name* (C001) — Segment · CLV 12,400 · churn 53%" and, for the
    at-risk section, the top reason on the next line."""
    cells = customer_cells(row)
    name = (
        f"*{clip(row.customer.name or row.customer.customer_id, 40)}* ({row.customer.customer_id})"
    )
    line = f"{name} — {row.score.segment} · CLV {cells['CLV']}"
    if with_risk:
        line += f" · churn {cells['Churn']}"
        if row.raised is False:
            line += f"\n{BELOW_TYPICAL}"
        elif row.score.churn_reasons:
            line += f"\n{clip(row.score.churn_reasons[0], 120)}"
    return line
