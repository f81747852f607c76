"""`/crm follow <customer>`: be told when a customer's risk changes."""

from __future__ import annotations

from crmbot.actions.follows import follow
from crmbot.chat.commandkit import customer_to_act_on, request_now
from crmbot.chat.registry import Request, command
from crmbot.core.db import write_session
from crmbot.reply import Button, Reply
from crmbot.reply.format import clip

USAGE = "follow <id | email | name>"


@command("follow", usage=USAGE, aliases=("watch",))
def follow_command(request: Request) -> Reply:
    """Follow a customer: a DM when its churn risk jumps after a retrain.

    The account's owner is told anyway; following adds you. `/crm unfollow` stops it.
    """
    found = customer_to_act_on(request, request.text, usage=USAGE)
    if isinstance(found, Reply):
        return found
    customer, pk = found
    with write_session(request.engine) as session:
        new = follow(
            session=session,
            customer_pk=pk,
            user_id=request.user_id,
            now=request_now(request),
        )
    name = clip(customer.name or customer.customer_id, 60)
    text = (
        f"You follow *{name}* ({customer.customer_id}) now: you'll be told when its risk changes."
        if new
        else f"You already follow *{name}* ({customer.customer_id})."
    )
    return Reply(
        title="",
        text=text,
        buttons=[Button("Unfollow", "crm_unfollow", customer.customer_id)],
        customer_ids=[customer.customer_id],
    )
