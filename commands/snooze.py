"""`/crm snooze <customer> <days>`: leave a customer out of your digests and alerts."""

from __future__ import annotations

from crmbot.actions import InvalidAction
from crmbot.actions.follows import snooze
from crmbot.chat.commandkit import customer_to_act_on, usage_reply
from crmbot.chat.registry import Request, command
from crmbot.core.db import write_session
from crmbot.reply import Reply
from crmbot.reply.format import clip, count, day

USAGE = "snooze <customer> <days>"


@command("snooze", usage=USAGE, aliases=("mute",))
def snooze_command(request: Request) -> Reply:
    """Leave a customer out of your alerts and digests for some days.

    `snooze C-1042 14`: the customer is the first words, the number of days (1 to 365)
    the last. A new snooze replaces the one before. Others still see the customer.
    """
    words = request.text.split()
    if len(words) < 2 or not (words[-1].isascii() and words[-1].isdigit()):
        return usage_reply(request, USAGE, "Which customer, and for how many days?")
    days = int(words[-1][:4])
    who = " ".join(words[:-1]).strip("\"'“”‘’")
    found = customer_to_act_on(request, who, usage=USAGE, rest=words[-1])
    if isinstance(found, Reply):
        return found
    customer, pk = found
    try:
        with write_session(request.engine) as session:
            until = snooze(
                session=session,
                customer_pk=pk,
                user_id=request.user_id,
                days=days,
                as_of=request.today,
            )
    except InvalidAction as problem:
        return usage_reply(request, USAGE, str(problem))
    name = clip(customer.name or customer.customer_id, 60)
    return Reply(
        title="",
        text=(
            f"Snoozed *{name}* ({customer.customer_id}) for {count(days, 'day')}: "
            f"back in your alerts and digests on {day(until)}."
        ),
        customer_ids=[customer.customer_id],
    )
