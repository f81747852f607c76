"""`/crm unfollow <customer>`: stop following a customer."""

from __future__ import annotations

from crmbot.actions.follows import unfollow
from crmbot.chat.commandkit import customer_to_act_on
from crmbot.chat.registry import Request, command
from crmbot.core.db import write_session
from crmbot.reply import Reply
from crmbot.reply.format import clip

USAGE = "unfollow <id | email | name>"


@command("unfollow", usage=USAGE, aliases=("unwatch",))
def unfollow_command(request: Request) -> Reply:
    """Stop following a customer (no more alerts about it, unless you own it)."""
    found = customer_to_act_on(request, request.text, usage=USAGE)
    if isinstance(found, Reply):
        return found
    customer, pk = found
    with write_session(request.engine) as session:
        gone = unfollow(session=session, customer_pk=pk, user_id=request.user_id)
    name = clip(customer.name or customer.customer_id, 60)
    text = (
        f"You no longer follow *{name}* ({customer.customer_id})."
        if gone
        else f"You did not follow *{name}* ({customer.customer_id})."
    )
    return Reply(title="", text=text, customer_ids=[customer.customer_id])
