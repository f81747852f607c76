"""`at-risk`, `segment`, `influencers` through the shell transport on the small CRM."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import update
from sqlalchemy.engine import Engine
from sqlmodel import col

from crmbot.chat.dispatch import Dispatcher
from crmbot.core.config import Settings
from crmbot.core.models import CustomerScore
from tests.support.scored_data import add_customers, add_run, book
from tests.support.small_crm import ChatBot


def ids(reply_table_rows: list[list[str]], column: int = 1) -> list[str]:
    return [row[column].rsplit("(", 1)[1].rstrip(")") for row in reply_table_rows]


def test_at_risk_ranks_by_value_at_risk_with_reasons(bot: ChatBot) -> None:
    reply = bot.reply("at-risk 4")
    assert reply.table is not None
    assert ids(reply.table.rows) == ["C003", "C002", "C009", "C012"]
    assert reply.table.rows[1][-1] == "no order for 94 days, usually every 21"
    assert reply.customer_ids == ["C003", "C002", "C009", "C012"]
    # Why? for the first three, then every account at risk as CSV (the list is full).
    assert [b.value for b in reply.buttons] == ["C003", "C002", "C009", "--csv"]
    assert "*18,120*" in reply.text  # 8,000 + 5,254 + 2,838 + 2,028


@pytest.mark.parametrize(
    ("words", "expected"),
    [
        ("emea", ["C003", "C009", "C012", "C001", "C005"]),
        ("20 AMER", ["C002", "C004", "C006", "C010"]),
        ("at risk", ["C002", "C009"]),
        ("cant lose", ["C003"]),
        ("mine", ["C002", "C010", "C001", "C007"]),
    ],
)
def test_at_risk_filters(bot: ChatBot, words: str, expected: list[str]) -> None:
    reply = bot.reply(f"at-risk {words}")
    assert reply.table is not None
    assert ids(reply.table.rows)[: len(expected)] == expected


def test_at_risk_mine_matches_an_owner_recorded_by_email(bot: ChatBot) -> None:
    reply = bot.dispatcher.handle(
        "at-risk mine", user_id="UMARIA", user_aliases=("maria@crm.example",)
    )
    assert reply.table is not None and ids(reply.table.rows) == ["C003", "C006"]


def test_at_risk_explains_an_unknown_filter(bot: ChatBot) -> None:
    reply = bot.reply("at-risk narnia")
    assert reply.outcome == "usage"
    assert "'narnia' is not a segment or region I know" in reply.text and "EMEA" in reply.text


def test_segment_overview_counts_migration_and_chart(bot: ChatBot) -> None:
    reply = bot.reply("segment")
    assert reply.title == "Segments — 11 customers"
    assert reply.table is not None
    rows = {row[0]: row for row in reply.table.rows}
    assert rows["Loyal"][1] == "1" and rows["Loyal"][-1] == "-3"
    assert rows["Champions"][3] == "25,000"
    assert "• Loyal → At risk: 1" in reply.text
    assert reply.chart is not None and sum(reply.chart.values) == 11


def test_one_segment_lists_its_most_valuable(bot: ChatBot) -> None:
    reply = bot.reply("segment champions")
    assert reply.title == "Segment Champions — top 2 by CLV"
    assert reply.table is not None and ids(reply.table.rows) == ["C010", "C001"]
    assert reply.text == "Since the previous model: 1 moved in, 1 moved out."  # C001 in, C003 out
    assert bot.reply("segment unicorns").outcome == "usage"


def test_influencers_rank_and_limit(bot: ChatBot) -> None:
    reply = bot.reply("influencers 2")
    assert reply.table is not None and ids(reply.table.rows) == ["C010", "C006"]
    assert reply.table.rows[0][3:6] == ["2", "1", "2,400"]
    assert bot.reply("influencers lots").outcome == "usage"


def test_counts_are_bounded(bot: ChatBot) -> None:
    reply = bot.reply("at-risk 100000")
    assert reply.table is not None and len(reply.table.rows) <= 50
    assert bot.reply("at-risk 0").table is not None


def test_a_segment_without_clv_still_lists_its_customers(
    engine: Engine, settings: Settings
) -> None:
    """Prospects never bought, so they have no CLV; the segment still shows who is in it."""
    accounts = book(4)
    add_run(engine, accounts, add_customers(engine, accounts), as_of=date(2026, 6, 28))
    with engine.begin() as connection:
        connection.execute(
            update(CustomerScore)
            .where(col(CustomerScore.customer_pk).in_([1, 2]))
            .values(segment="Prospects", clv=None, value_at_risk=None)
        )
    reply = Dispatcher(engine, settings).handle("segment prospects", user_id="U1", channel_id="D1")
    assert reply.title == "Segment Prospects — 2 customers (no purchase yet)"
    assert reply.table is not None and len(reply.table.rows) == 2


def test_a_digit_that_is_not_ascii_is_a_word_not_a_count(bot: ChatBot) -> None:
    # "¹".isdigit() is True, but int("¹") fails: the list must not crash on it.
    reply = bot.reply("at-risk ¹")
    assert reply.outcome != "error"
