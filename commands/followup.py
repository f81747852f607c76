"""`/crm followup <customer> <when> <note>`: something to do about a customer on a day."""

from __future__ import annotations

from crmbot.actions import InvalidAction
from crmbot.actions.followups import add_follow_up
from crmbot.chat.commandkit import (
    customer_to_act_on,
    mentioned_user,
    parse_due,
    request_now,
    split_customer,
    usage_reply,
)
from crmbot.chat.registry import Request, command
from crmbot.core.db import write_session
from crmbot.reply import Button, Reply
from crmbot.reply.format import ago, clip, day

USAGE = "followup <customer> <YYYY-MM-DD | tomorrow | friday | in N days> <note> [for:@someone]"
FOR_PREFIX = "for:"


@command("followup", usage=USAGE, aliases=("follow-up", "remind"))
def followup_command(request: Request) -> Reply:
    """Set a follow-up on a customer: you (or someone else) get a DM on the day.

    The customer is the first word (an id, an email, a name) or a name in quotes; the day
    is a date (2026-07-10), today, tomorrow, a weekday (the next one), "in 3 days" or
    "in 2 weeks". `for:@maria` gives it to someone else. `/crm followups` lists yours.
    """
    who, rest = split_customer(request.text)
    words = rest.split()
    assignee = request.user_id
    kept = []
    for word in words:
        if word.lower().startswith(FOR_PREFIX) and len(word) > len(FOR_PREFIX):
            assignee = mentioned_user(word[len(FOR_PREFIX) :])
        else:
            kept.append(word)
    due = parse_due(kept, request.today)
    if not who or due is None:
        return usage_reply(
            request,
            USAGE,
            "Which customer, and when? For example `followup C-1042 friday call back`.",
        )
    due_on, note_words = due
    found = customer_to_act_on(request, who, usage=USAGE, rest=rest)
    if isinstance(found, Reply):
        return found
    customer, pk = found
    try:
        with write_session(request.engine) as session:
            follow_up = add_follow_up(
                session=session,
                customer_pk=pk,
                assignee=assignee,
                due_on=due_on,
                created_by=request.user_id,
                now=request_now(request),
                today=request.today,
                note=" ".join(note_words),
            )
    except InvalidAction as problem:
        return usage_reply(request, USAGE, str(problem))
    name = clip(customer.name or customer.customer_id, 60)
    whom = "you" if assignee == request.user_id else assignee
    when = ago(due_on, request.today)
    text = (
        f"Follow-up #{follow_up.id} on *{name}* ({customer.customer_id}) for {whom}, "
        f"due {day(due_on)} ({when})."
    )
    if follow_up.note:
        text += f"\n> {clip(follow_up.note, 300)}"
    return Reply(
        title="",
        text=text,
        buttons=[Button("Customer card", "crm_customer", customer.customer_id)],
        customer_ids=[customer.customer_id],
    )
