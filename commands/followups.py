"""`/crm followups [all | done N]`: the follow-ups due, and marking one done."""

from __future__ import annotations

from datetime import date

from crmbot import queries
from crmbot.actions.followups import complete_follow_up
from crmbot.chat.commandkit import owner_identities, reader_scope, request_now, usage_reply
from crmbot.chat.registry import Request, command
from crmbot.core.db import read_session, write_session
from crmbot.core.models import FollowUp
from crmbot.reply import Reply, Table
from crmbot.reply.format import clip, count, day

USAGE = "followups [all | done N]"
LIMIT = 50


@command("followups", usage=USAGE, aliases=("follow-ups", "todo"))
def followups_command(request: Request) -> Reply:
    """Your follow-ups due today and overdue; `done N` marks one done.

    `followups all` (admins) lists everyone's. Set one with `/crm followup`; each is also
    sent to its assignee by DM on its day.
    """
    words = [w.lower() for w in request.args]
    if words[:1] == ["done"]:
        return _done(request, words[1:])
    if words not in ([], ["all"]):
        return usage_reply(request, USAGE)
    everyone = words == ["all"]
    if everyone and not request.is_admin:
        return Reply.error(
            "Only admins can list everyone's follow-ups; `followups` lists yours.",
            outcome="denied",
        )
    assignees = None if everyone else owner_identities(request)
    scope = reader_scope(request)
    with read_session(request.engine) as session:
        rows = queries.follow_ups_for(
            session=session, scope=scope, assignees=assignees, as_of=request.today, limit=LIMIT
        )
        coming = queries.count_follow_ups(
            session=session, scope=scope, assignees=assignees, after=request.today
        )
    whose = "Everyone's" if everyone else "Your"
    later = f"{count(coming, 'more', 'more')} due later." if coming else "None due later."
    if not rows:
        return Reply(title="", text=f"{whose} follow-ups: nothing due today or overdue. {later}")
    columns = ["#", "Due", "Customer", "Note"] + (["For"] if everyone else [])
    table = Table(
        columns=columns,
        rows=[
            [
                str(row.follow_up.id),
                _due(row.follow_up.due_on, request.today),
                f"{clip(row.name, 28)} ({row.customer_id})",
                clip(row.follow_up.note, 60) or "—",
            ]
            + ([row.follow_up.assignee] if everyone else [])
            for row in rows
        ],
    )
    return Reply(
        title=f"{whose} follow-ups due",
        text=f"{count(len(rows), 'follow-up')} due today or overdue. {later}",
        table=table,
        customer_ids=[row.customer_id for row in rows],
        footer=f"Mark one done: `{request.settings.slash_command} followups done N`.",
    )


def _due(due_on: date, today: date) -> str:
    late = (today - due_on).days
    if late <= 0:
        return "today"
    return f"{day(due_on)} ({count(late, 'day')} late)"


def _done(request: Request, words: list[str]) -> Reply:
    if len(words) != 1 or not (words[0].lstrip("#").isascii() and words[0].lstrip("#").isdigit()):
        return usage_reply(request, USAGE, "Which follow-up? Give its number.")
    number = int(words[0].lstrip("#")[:9])
    mine = set(owner_identities(request))
    with write_session(request.engine) as session:
        follow_up = session.get(FollowUp, number)
        visible = follow_up is not None and (
            request.is_admin or follow_up.assignee in mine or follow_up.created_by in mine
        )
        if follow_up is None or not visible:
            return Reply.error(f"No follow-up #{number} of yours.", outcome="not_found")
        if not complete_follow_up(session=session, follow_up_id=number, now=request_now(request)):
            return Reply(title="", text=f"Follow-up #{number} was already done.")
    return Reply(title="", text=f"Follow-up #{number} done.")
