"""`customer`, `why`, `similar`, `history` through the shell transport (the same dispatcher,
access checks and audit as Slack) on the small CRM."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from crmbot.core import audit
from crmbot.core.config import Settings
from crmbot.core.privacy import contains_pii
from tests.support.small_crm import ChatBot, SmallCrm


def test_the_card_has_every_part(bot: ChatBot) -> None:
    reply = bot.reply("customer C002")
    fields = dict(reply.fields)
    assert reply.title == "Grace Hopper (C002)"
    assert fields["Segment"].startswith("At risk (moved from Loyal)")
    assert fields["Churn risk"].startswith("71% — no order for 94 days, usually every 21")
    assert fields["CLV (12 mo)"].startswith("7,400 · 3.3 purchases expected")
    assert fields["Next best product"].startswith("Support Plus (confidence 42%, lift 3.1)")
    assert fields["Email"] == "grace@cobol.example" and reply.contains_pii
    assert fields["Last order"].startswith("2026-06-19")
    assert reply.customer_ids == ["C002"] and reply.private
    assert [b.action_id for b in reply.buttons] == [
        "crm_why",
        "crm_similar",
        "crm_history",
        "crm_at_risk",
        "act_touch",
        "act_follow_up",
        "act_follow",
        "act_snooze",
    ]
    assert [b.label for b in reply.buttons][4:] == [
        "Log a touch",
        "Follow-up",
        "Follow",
        "Snooze 7 days",
    ]


@pytest.mark.parametrize(
    "query", ["C004", "kj@orbit.example", "katherine johnson", "Katherin Jonson", "Orbit Analytics"]
)
def test_lookup_by_id_email_name_typo_or_company(bot: ChatBot, query: str) -> None:
    assert bot.reply(f"customer {query}").title == "Katherine Johnson (C004)"


def test_ambiguous_and_unknown_names_say_what_to_do(bot: ChatBot) -> None:
    both = bot.say("customer John Smith")
    assert "matches more than one customer" in both
    assert "`/crm customer C007`" in both and "`/crm customer C008`" in both
    assert "Alpha Widgets, APAC, UAM1" in both
    unknown = bot.reply("customer Tim Bernard")
    assert unknown.outcome == "not_found"
    assert "did you mean Tim Berners-Lee (`C012`)" in unknown.text
    empty = bot.reply("customer")
    assert empty.outcome == "usage" and "Usage: `/crm customer <id | email | name>`" in empty.text


def test_shared_card_is_masked_in_text_too(bot: ChatBot) -> None:
    shared = bot.say("customer C001 --share")
    private = bot.say("customer C001")
    assert "ada@analytical.example" in private and "+44 20 7946 0001" in private
    assert not contains_pii(shared) and "a•••@a•••" in shared


def test_why_lists_every_reason(bot: ChatBot) -> None:
    text = bot.say("why grace hopper")
    for reason in [
        "1. no order for 94 days, usually every 21",
        "2. two unresolved tickets",
        "3. CSAT fell from 5 to 2",
    ]:
        assert reason in text
    assert "Moved from Loyal since the previous model." in text
    no_reason = bot.say("why C004")
    assert "no specific reason" in no_reason


def test_similar_stays_in_the_cluster(bot: ChatBot) -> None:
    reply = bot.reply("similar C001")
    assert reply.title == "Customers similar to Ada Lovelace (C001)"
    assert reply.table is not None and len(reply.table.rows) >= 1
    assert "C001" not in [row[0][-5:-1] for row in reply.table.rows]
    assert "cluster 1 (occasional)" in reply.text


def test_history_draws_a_chart(bot: ChatBot, tmp_path: Path) -> None:
    reply = bot.reply("history C010")
    assert reply.chart is not None and len(reply.chart.labels) == 24
    assert sum(reply.chart.values) == pytest.approx(
        sum(float(r[2].split()[0].replace(",", "")) for r in reply.table.rows)
    )  # type: ignore[union-attr]
    text = bot.say("history C010")
    saved = [line for line in text.splitlines() if line.startswith("[chart saved to ")]
    assert saved and Path(saved[0][len("[chart saved to ") : -1]).stat().st_size > 1000


def test_every_lookup_is_audited_with_customer_ids_and_no_pii(bot: ChatBot, crm: SmallCrm) -> None:
    bot.reply("customer grace@cobol.example")
    bot.reply("why C002")
    rows = audit.recent(crm.engine, limit=5)
    assert [r.command for r in rows] == ["why", "customer"]
    assert rows[1].customer_ids == ["C002"]
    assert rows[1].arguments == "g•••@c•••"  # the email typed is masked in the log


def test_no_model_yet_says_how_to_get_one(
    engine: Engine, settings: Settings, tmp_path: Path
) -> None:
    bot = ChatBot(engine, settings, tmp_path)
    reply = bot.reply("why C001")
    assert reply.outcome == "not_found" and "No model has been trained yet" in reply.text


def test_the_card_offers_unfollow_to_a_follower(bot: ChatBot, crm: SmallCrm) -> None:
    from datetime import datetime

    from crmbot.actions.follows import follow
    from crmbot.core.db import write_session

    with write_session(crm.engine) as session:
        follow(
            session=session, customer_pk=crm.pks["C002"], user_id="UAM1", now=datetime(2026, 7, 1)
        )
    mine = [b.label for b in bot.reply("customer C002").buttons]
    theirs = [b.label for b in bot.reply("customer C002", user="UAM2").buttons]
    assert "Unfollow" in mine and "Follow" not in mine
    assert "Follow" in theirs and "Unfollow" not in theirs
