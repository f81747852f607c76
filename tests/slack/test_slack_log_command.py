"""`/crm log` and `/crm followup` through the Bolt app: a signed slash command, answered
privately, stored under the Slack user who typed it, audited."""

from __future__ import annotations

from sqlalchemy import select

from crmbot.core.db import read_session
from crmbot.core.models import AuditLog, FollowUp, Touch
from tests.support.slack_bot import Bot, text_of
from tests.support.small_crm import SmallCrm


def test_log_and_followup_from_slack(bot: Bot, crm: SmallCrm) -> None:
    _, path = bot.command("log C001 meeting QBR went well outcome:saved", user="UAM2")
    answer = bot.answer(path)
    assert answer["response_type"] == "ephemeral"
    assert "Logged a meeting on *Ada Lovelace* (C001) — saved." in text_of(answer)
    _, path = bot.command("followup C001 in 2 weeks renewal call", user="UAM2")
    assert "for you, due " in (made := text_of(bot.answer(path))) and "(in 14 days)" in made
    with read_session(crm.engine) as session:
        touch = session.execute(select(Touch)).scalar_one()
        follow_up = session.execute(select(FollowUp)).scalar_one()
        audit = session.execute(select(AuditLog).order_by(AuditLog.id)).scalars().all()  # type: ignore[arg-type]
    assert (touch.author, touch.kind, touch.outcome, touch.run_id) == (
        "UAM2",
        "meeting",
        "saved",
        crm.run_id,
    )
    assert (follow_up.assignee, follow_up.created_by) == ("UAM2", "UAM2")
    assert [(row.command, row.transport, row.user_id, row.customer_ids) for row in audit] == [
        ("log", "slack", "UAM2", ["C001"]),
        ("followup", "slack", "UAM2", ["C001"]),
    ]
