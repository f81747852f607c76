"""`/crm influencers [N]`: the customers whose referrals and purchases move others."""

from __future__ import annotations

from crmbot import queries
from crmbot.chat.commandkit import (
    active_run,
    clip,
    count_arg,
    money,
    no_model_reply,
    number,
    usage_reply,
)
from crmbot.chat.registry import Request, command
from crmbot.core.db import read_session
from crmbot.reply import Button, Reply, Table

USAGE = "influencers [N]"


@command("influencers", usage=USAGE, aliases=("influencer", "influence", "hubs"))
def influencers_command(request: Request) -> Reply:
    """The customers whose referrals and purchases move others (PageRank over referrals).

    Each row shows the influence rank, how many customers they referred (and how many of
    those still buy), what the referred customers spent, and the size of their community.
    """
    count, rest = count_arg(request.args, default=10, maximum=50)
    if rest:
        return usage_reply(request, USAGE, f"I only take a number here, not '{clip(rest[0])}'.")
    with read_session(request.engine) as session:
        run = active_run(session)
        if run is None:
            return no_model_reply(request)
        rows = queries.influencers(session=session, run=run, limit=count)
    if not rows:
        return Reply(
            title="Influencers",
            text="No customer has measurable influence yet (no referrals in the data).",
        )
    table = Table(
        columns=["#", "Customer", "Influence", "Referred", "Active", "Referred spend", "Community"],
        rows=[
            [
                str(row.score.influence_rank or rank),
                f"{clip(row.customer.name or row.customer.customer_id, 24)} "
                f"({row.customer.customer_id})",
                number(row.score.influence, 2),
                f"{row.score.referred_customers:,}",
                f"{row.score.referred_active:,}",
                money(row.score.referred_spend),
                f"{row.score.community_size:,}" if row.score.community_size else "—",
            ]
            for rank, row in enumerate(rows, start=1)
        ],
    )
    return Reply(
        title=f"Top {len(rows)} influencers",
        text="Ranked by PageRank over the referral network (and co-purchase ties).",
        table=table,
        buttons=[
            Button(
                f"Open {clip(r.customer.name or r.customer.customer_id, 24)}",
                "crm_customer",
                r.customer.customer_id,
            )
            for r in rows[:3]
        ],
        customer_ids=[row.customer.customer_id for row in rows],
        footer=f"Model run {run.id}, data as of {run.as_of:%Y-%m-%d}.",
    )
