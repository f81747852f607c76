"""The keyboard commands that act on an account — log, followup, followups, follow,
unfollow, snooze — through the shell transport's dispatcher (access check, audit), on
every database."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.engine import Engine

from crmbot.core.config import Settings
from crmbot.core.db import read_session
from crmbot.core.models import AuditLog, Follow, FollowUp, Snooze, Touch
from tests.support.small_crm import TODAY, ChatBot, SmallCrm, seed


@pytest.fixture
def small(storage_engine: Engine) -> SmallCrm:
    return seed(storage_engine)


@pytest.fixture
def chat(small: SmallCrm, settings: Settings, tmp_path: Path) -> ChatBot:
    return ChatBot(small.engine, settings, tmp_path / "charts")


def audit(engine: Engine) -> list[tuple[str, str, list[str] | None]]:
    with read_session(engine) as session:
        rows = session.execute(select(AuditLog).order_by(AuditLog.id)).scalars()  # type: ignore[arg-type]
        return [(row.command, row.outcome, row.customer_ids) for row in rows]


def test_log_stores_a_touch_and_the_card_shows_it(chat: ChatBot, small: SmallCrm) -> None:
    reply = chat.reply('log "Ada Lovelace" call renewal talk, wants a discount outcome:reached')
    assert reply.outcome == "ok"
    assert reply.text.startswith("Logged a call on *Ada Lovelace* (C001) — reached.")
    assert "renewal talk, wants a discount" in reply.text
    assert "an email" in chat.say("log C002 email sent the quote")
    with read_session(small.engine) as session:
        touches = session.execute(select(Touch).order_by(Touch.id)).scalars().all()  # type: ignore[arg-type]
    assert [(t.customer_pk, t.kind, t.note, t.outcome, t.author, t.run_id) for t in touches] == [
        (
            small.pks["C001"],
            "call",
            "renewal talk, wants a discount",
            "reached",
            "UAM1",
            small.run_id,
        ),
        (small.pks["C002"], "email", "sent the quote", None, "UAM1", small.run_id),
    ]
    assert touches[0].created_at.date() == TODAY
    card = chat.reply("customer C001")
    assert ("Last touch", "call by UAM1, today — reached") in card.fields
    assert audit(small.engine)[:2] == [("log", "ok", ["C001"]), ("log", "ok", ["C002"])]


def test_log_explains_what_it_needs(chat: ChatBot, small: SmallCrm) -> None:
    assert "Which customer" in chat.say("log")
    assert "What happened?" in chat.say("log C001")
    assert "is not an outcome" in chat.say("log C001 call outcome:perhaps")
    assert "No customer 'Nobody'" in chat.say("log Nobody call hello")
    # An erased customer is answered like one that does not exist.
    assert "No customer 'C011'" in chat.say("log C011 note hello")
    with read_session(small.engine) as session:
        assert session.execute(select(Touch)).first() is None
    assert [outcome for _, outcome, _ in audit(small.engine)] == [
        "usage",
        "usage",
        "usage",
        "not_found",
        "not_found",
    ]


def test_a_misspelt_customer_gets_did_you_mean(chat: ChatBot) -> None:
    text = chat.say("follow Lovelase")
    assert "Ada Lovelace" in text and "C001" in text


def test_an_ambiguous_customer_is_offered_with_the_whole_command(chat: ChatBot) -> None:
    both = chat.say('log "John Smith" call left a message')
    assert "matches more than one customer" in both
    assert "`/crm log C007 call left a message`" in both
    assert "`/crm log C008 call left a message`" in both
    snooze = chat.say("snooze John Smith 14")
    assert "`/crm snooze C007 14`" in snooze and "`/crm snooze C008 14`" in snooze


def test_followup_then_followups_lists_it_on_its_day(chat: ChatBot, small: SmallCrm) -> None:
    made = chat.say("followup C001 tomorrow send the renewal quote")
    assert "Follow-up #1 on *Ada Lovelace* (C001) for you, due 2026-07-04 (tomorrow)." in made
    assert "for UAM2" in chat.say("followup C002 in 3 days check in for:<@UAM2|bob>")
    assert "due 2026-07-10" in chat.say("followup C003 2026-07-10 QBR")
    assert "has passed" in chat.say("followup C003 2026-07-01 too late")
    assert "when?" in chat.say("followup C003 someday")

    assert "nothing due today or overdue. 2 more due later." in chat.say("followups")
    # Three days on, the first one is overdue: listed with how late it is.
    reply = chat.dispatcher.handle(
        "followups", user_id="UAM1", channel_id="shell", today=TODAY + timedelta(days=3)
    )
    assert reply.table is not None
    assert reply.table.rows == [
        ["1", "2026-07-04 (2 days late)", "Ada Lovelace (C001)", "send the renewal quote"]
    ]
    assert "1 more due later." in reply.text
    assert chat.say("followups done 1") == "Follow-up #1 done."
    assert "already done" in chat.say("followups done 1")
    assert "No follow-up #2 of yours" in chat.say("followups done 2", user="UAM3")
    assert "Only admins" in chat.say("followups all")
    everyone = chat.dispatcher.handle(
        "followups all", user_id="UADMIN", channel_id="shell", today=TODAY + timedelta(days=7)
    )
    assert everyone.table is not None
    assert [row[0] for row in everyone.table.rows] == ["2", "3"]
    assert [row[-1] for row in everyone.table.rows] == ["UAM2", "UAM1"]
    with read_session(small.engine) as session:
        stored = session.execute(select(FollowUp).order_by(FollowUp.id)).scalars().all()  # type: ignore[arg-type]
    assert [(f.assignee, f.created_by, f.done_at is not None) for f in stored] == [
        ("UAM1", "UAM1", True),
        ("UAM2", "UAM1", False),
        ("UAM1", "UAM1", False),
    ]


def test_follow_unfollow_and_snooze(chat: ChatBot, small: SmallCrm) -> None:
    assert "You follow *Ada Lovelace* (C001) now" in chat.say("follow C001")
    assert "already follow" in chat.say("follow ada@analytical.example")
    assert "You follow *Grace Hopper*" in chat.say("follow C002", user="UAM2")
    assert "no longer follow" in chat.say("unfollow C001")
    assert "did not follow" in chat.say("unfollow C001")
    assert "back in your alerts and digests on 2026-07-17" in chat.say("snooze Ada Lovelace 14")
    assert "1 to 365 days" in chat.say("snooze C001 400")
    assert "how many days" in chat.say("snooze C001")
    with read_session(small.engine) as session:
        follows = session.execute(select(Follow.customer_pk, Follow.user_id)).all()
        snoozes = session.execute(select(Snooze.customer_pk, Snooze.user_id, Snooze.until)).all()
    assert [tuple(row) for row in follows] == [(small.pks["C002"], "UAM2")]
    assert [tuple(row) for row in snoozes] == [
        (small.pks["C001"], "UAM1", TODAY + timedelta(days=14))
    ]
    commands = [command for command, _, _ in audit(small.engine)]
    assert commands == ["follow"] * 3 + ["unfollow"] * 2 + ["snooze"] * 3
