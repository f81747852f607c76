"""The weekly influencer digest: the customers whose referrals and purchases move others,
the newcomers to the list, and the communities they lead."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy.engine import Engine

from crmbot import queries, runs
from crmbot.core.db import read_session
from crmbot.core.privacy import mask_pii
from crmbot.digests.base import INFLUENCERS, MAX_BUTTONS, Digest, masked
from crmbot.digests.ledger import previous_digest
from crmbot.queries.scope import EVERYONE
from crmbot.reply import Button, Reply
from crmbot.reply.format import MISSING
from crmbot.reply.rows import INFLUENCER_DIGEST, display_name
from crmbot.reply.rows import table as rows_table

if TYPE_CHECKING:
    from crmbot.core.config import Settings


def build_influencer_digest(
    engine: Engine, settings: Settings, *, channel: str, period: str
) -> Digest | None:
    """The top influencers, the newcomers to the list, and the communities they lead."""
    with read_session(engine) as session:
        run = runs.active_run(session=session)
        if run is None:
            return None
        rows = queries.influencers(
            session=session, run=run, scope=EVERYONE, limit=settings.digest_size
        )
        regions = queries.community_regions(
            session=session,
            run=run,
            communities={r.score.community for r in rows if r.score.community is not None},
        )
    previous = previous_digest(engine, INFLUENCERS, channel, period)
    ids = [row.customer.customer_id for row in rows]
    newcomers = [cid for cid in ids if previous is not None and cid not in previous.entries]
    communities = []
    for row in rows:
        score = row.score
        community = MISSING
        if score.community is not None and score.community_size:
            region = regions.get(score.community)
            community = f"hub of {score.community_size:,}" + (f" ({region})" if region else "")
        communities.append(community)
    table = rows_table(
        rows,
        INFLUENCER_DIGEST,
        ranks=[row.score.influence_rank or rank for rank, row in enumerate(rows, start=1)],
        extra={
            "Community": communities,
            "Change": ["new" if cid in newcomers else "" for cid in ids],
        },
    )
    if rows:
        lead = f"*{len(rows)}* customers whose referrals and purchases move others the most."
    else:
        lead = "No customer has measurable influence yet (no referrals in the data)."
    if previous is None:
        change = "First digest here: newcomers are shown from the next one on."
    elif newcomers:
        names = {row.customer.customer_id: display_name(row.customer) for row in rows}
        change = f"New on the list since {previous.period}: " + ", ".join(
            f"{names[cid]} ({cid})" for cid in newcomers
        )
    else:
        change = f"No newcomers since {previous.period}."
    reply = Reply(
        title=f"Influencers · {period}",
        text=mask_pii(f"{lead}\n{change}"),
        table=masked(table) if rows else None,
        buttons=[
            Button(f"Open {display_name(row.customer)}", "crm_customer", row.customer.customer_id)
            for row in rows[:MAX_BUTTONS]
        ],
        private=False,
        customer_ids=ids,
        footer=f"Model run {run.id}, data as of {run.as_of:%Y-%m-%d}. "
        "Influence = PageRank over referrals and co-purchases.",
    )
    summary = {
        "run_id": run.id,
        "as_of": run.as_of.isoformat(),
        "entries": [
            {
                "customer_id": row.customer.customer_id,
                "rank": rank,
                "influence": row.score.influence,
                "community": row.score.community,
            }
            for rank, row in enumerate(rows, start=1)
        ],
        "newcomers": newcomers,
    }
    return Digest(INFLUENCERS, period, reply, summary, ids)
