"""The App Home: an account manager's own book — their accounts most at risk, their most
valuable ones, and how fresh the model is. A view: Slack opens it with the Home tab."""

from __future__ import annotations

from sqlalchemy.orm import Session

from crmbot import queries, runs
from crmbot.chat.commandkit import owner_identities, reader_scope
from crmbot.chat.registry import Request, view
from crmbot.core.db import read_session
from crmbot.reply import Button, Item, Reply, Section
from crmbot.reply.acting import LOG_TOUCH
from crmbot.reply.format import clip, count, day, money
from crmbot.reply.rows import home_line

HOME_ROWS = 5
FOLLOW_UP_ROWS = 10


@view("app-home")
def app_home(request: Request) -> Reply:
    """Your book: your accounts most at risk, your most valuable ones, the model's age."""
    prefix = request.settings.slash_command
    with read_session(request.engine) as session:
        book = queries.owner_book(
            session=session, owners=owner_identities(request), limit=HOME_ROWS
        )
        follow_ups = _follow_ups(session, request)
    if book.run is None:
        return Reply(
            title="Your book",
            text=f"An admin can train one with `{prefix} retrain`.",
            sections=follow_ups,
            footer="No model has been trained yet.",
            outcome="not_found",
        )
    age = runs.age_days(book.run, today=request.today)
    if not book.customers:
        intro = (
            "No customers list you as their owner yet (the CRM `owner` field holds your "
            f"Slack user id or email). Everyone's accounts: `{prefix} at-risk`."
        )
    else:
        intro = (
            f"You look after *{book.customers:,}* customers: CLV {money(book.total_clv)}, "
            f"value at risk {money(book.value_at_risk)}."
        )
    sections = [
        Section(
            heading,
            [
                Item(
                    home_line(r, with_risk=with_risk), Button(label, action, r.customer.customer_id)
                )
                for r in rows
            ],
        )
        for heading, rows, with_risk, label, action in (
            ("Most at risk", book.at_risk, True, "Why?", "crm_why"),
            ("Top value", book.top_value, False, "Open", "crm_customer"),
        )
        if rows
    ]
    sections = follow_ups + sections
    ids = [r.customer.customer_id for r in book.at_risk + book.top_value]
    return Reply(
        title="Your book",
        text=intro,
        sections=sections,
        customer_ids=list(dict.fromkeys(ids)),
        footer=f"Model run {book.run.id} · data as of {book.run.as_of:%Y-%m-%d} ({age} days old)",
    )


def _follow_ups(session: Session, request: Request) -> list[Section]:
    """ "Your follow-ups": those due today or overdue, each with "Log a touch", and how
    many are still to come."""
    mine = owner_identities(request)
    scope = reader_scope(request)
    due = queries.follow_ups_for(
        session=session, scope=scope, assignees=mine, as_of=request.today, limit=FOLLOW_UP_ROWS
    )
    later = queries.count_follow_ups(
        session=session, scope=scope, assignees=mine, after=request.today
    )
    if not due and not later:
        return []
    items = []
    for row in due:
        when = (
            f"overdue since {day(row.follow_up.due_on)}"
            if row.overdue(request.today)
            else "due today"
        )
        note = f" — {clip(row.follow_up.note, 80)}" if row.follow_up.note else ""
        items.append(
            Item(
                f"*{clip(row.name)}* ({row.customer_id}) · {when}{note}",
                Button("Log a touch", LOG_TOUCH, row.customer_id),
            )
        )
    if later:
        prefix = request.settings.slash_command
        items.append(Item(f"{count(later, 'more follow-up')} to come: `{prefix} followups`"))
    return [Section("Your follow-ups", items)]
