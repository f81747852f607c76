"""`/crm influencers [N]`: the customers whose referrals and purchases move others."""

from __future__ import annotations

from crmbot import queries, runs
from crmbot.chat.commandkit import count_arg, no_model_reply, reader_scope, usage_reply
from crmbot.chat.registry import Request, command
from crmbot.core.db import read_session
from crmbot.reply import Button, Reply
from crmbot.reply.format import clip
from crmbot.reply.rows import INFLUENCER_LIST
from crmbot.reply.rows import table as rows_table

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
        run = runs.active_run(session=session)
        if run is None:
            return no_model_reply(request)
        rows = queries.influencers(
            session=session, run=run, scope=reader_scope(request), limit=count
        )
    if not rows:
        return Reply(
            title="Influencers",
            text="No customer has measurable influence yet (no referrals in the data).",
        )
    table = rows_table(
        rows,
        INFLUENCER_LIST,
        ranks=[row.score.influence_rank or rank for rank, row in enumerate(rows, start=1)],
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
