"""The buttons that act on an account — log a touch, set a follow-up, follow or unfollow,
snooze — defined once and shown on the card, the lists, the digests, the alerts and the
follow-up reminders.

Their action ids start with `act_` (not `crm_`, which runs the command a button names):
the Slack transport (`crmbot.slack.acting`) opens a form for a touch or a follow-up and
acts at once for the others. The value is the customer id people see (`Customer.customer_id`),
and, for a snooze, the number of days after a space.
"""

from __future__ import annotations

from crmbot.reply import Button, Item, Section

LOG_TOUCH = "act_touch"
FOLLOW_UP = "act_follow_up"
FOLLOW = "act_follow"
UNFOLLOW = "act_unfollow"
SNOOZE = "act_snooze"
SNOOZE_DAYS = 7


def account_buttons(
    customer_id: str, *, following: bool = False, snooze: bool = True
) -> list[Button]:
    """The four buttons that act on `customer_id`: "Log a touch", "Follow-up",
    "Follow" (or "Unfollow" when the asker follows it already) and "Snooze 7 days"."""
    buttons = [
        Button("Log a touch", LOG_TOUCH, customer_id, style="primary"),
        Button("Follow-up", FOLLOW_UP, customer_id),
        Button("Unfollow", UNFOLLOW, customer_id)
        if following
        else Button("Follow", FOLLOW, customer_id),
    ]
    if snooze:
        buttons.append(Button(f"Snooze {SNOOZE_DAYS} days", SNOOZE, f"{customer_id} {SNOOZE_DAYS}"))
    return buttons


def snooze_value(value: str) -> tuple[str, int]:
    """A snooze button's value, "C002 7", as (customer id, days); 7 days when not said."""
    customer_id, _, days = value.strip().rpartition(" ")
    if customer_id and days.isascii() and days.isdigit():
        return customer_id, max(1, min(int(days), 365))
    return value.strip(), SNOOZE_DAYS


ROWS_TO_ACT_ON = 5


def act_on_rows(rows: list[tuple[str, str]], *, limit: int = ROWS_TO_ACT_ON) -> list[Section]:
    """Under a list (the at-risk list, a digest): its first rows, (customer id, label)
    each, with the buttons that act on them; [] for no rows."""
    items = [Item(f"*{label}*", actions=tuple(account_buttons(cid))) for cid, label in rows[:limit]]
    return [Section("Act on one", items)] if items else []
