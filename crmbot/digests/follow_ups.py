"""A follow-up reminder as content: the message its assignee gets by DM on the day."""

from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING

from crmbot.core.models import Customer, FollowUp
from crmbot.reply import Button, Reply
from crmbot.reply.acting import LOG_TOUCH
from crmbot.reply.format import day
from crmbot.reply.rows import customer_label

if TYPE_CHECKING:
    from crmbot.core.config import Settings


def build_follow_up_reminder(
    follow_up: FollowUp, customer: Customer, *, today: date, settings: Settings
) -> Reply:
    """ "Follow-up due today: Grace Hopper (C002)", the note, who set it and when, and the
    buttons to log what was done or open the card."""
    when = "today" if follow_up.due_on >= today else f"since {day(follow_up.due_on)}"
    lines = [f"Set by {follow_up.created_by} on {day(follow_up.created_at)}."]
    if follow_up.note:
        lines.insert(0, f"“{follow_up.note}”")
    return Reply(
        title=f"Follow-up due {when}: {customer_label(customer, 60)}",
        text="\n".join(lines),
        buttons=[
            Button("Log a touch", LOG_TOUCH, customer.customer_id, style="primary"),
            Button("Open the card", "crm_customer", customer.customer_id),
            Button("Why?", "crm_why", customer.customer_id),
        ],
        private=True,
        customer_ids=[customer.customer_id],
        footer=f"`{settings.slash_command} followups` lists the others.",
    )
