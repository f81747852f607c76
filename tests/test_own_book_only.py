"""CRMBOT_OWN_BOOK_ONLY: an account manager who is not an admin sees their own book and
nothing else — in every command, every `/crm ask` answer (referrals included), every count
and every "not found" — on SQLite, PostgreSQL and MariaDB.

The asker is UAM1 of the small CRM, who owns C001 Ada Lovelace, C002 Grace Hopper, C007
John Smith and C010 Margaret Hamilton (and C011, erased). Everyone else's customers must
not show up by id, name, company or email, and an id outside the book must be answered
exactly like an id that does not exist.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from crmbot.core.config import Settings
from crmbot.reply import Reply
from crmbot.shell.text import render
from tests.support.small_crm import PEOPLE, TODAY, ChatBot, seed

ASKER = "UAM1"
BOOK = {"C001", "C002", "C007", "C010"}
# Everything that identifies a customer outside the book (the erased C011 included). "John
# Smith" is left out: C007 in the book has the same name as C008 outside it.
OUTSIDERS = {row[0] for row in PEOPLE} - BOOK
TELLS = sorted(
    {
        tell
        for row in PEOPLE
        if row[0] in OUTSIDERS
        for tell in (row[1], row[2], row[4])
        if tell and tell != "John Smith"
    }
    | {"Mallory", "Evil & Sons"}
)
MISSING_ID = "C404"


@pytest.fixture
def book_bot(storage_engine: Engine, settings: Settings, tmp_path: Path) -> Iterator[ChatBot]:
    seed(storage_engine)
    settings.own_book_only = True
    yield ChatBot(storage_engine, settings, tmp_path / "charts")


def everything_shown(reply: Reply) -> str:
    """All a person could read or click: the rendered text, chart labels, button values
    and the customer ids the reply names (and audits)."""
    parts = [render(reply)]
    if reply.chart is not None:
        parts += [reply.chart.title, *reply.chart.labels]
    parts += [f"{b.label} {b.value}" for b in reply.buttons]
    for section in reply.sections:
        parts += [item.button.value for item in section.items if item.button is not None]
    parts += reply.customer_ids
    return "\n".join(parts)


def leaks(reply: Reply, typed: str = "") -> list[str]:
    """The ids, names, companies and emails of customers outside the book that `reply`
    shows; a name the asker typed may be echoed back (it tells them nothing)."""
    shown = everything_shown(reply)
    found = [cid for cid in sorted(OUTSIDERS) if re.search(rf"\b{cid}\b", shown)]
    typed_words = set(typed.lower().split())
    return found + [
        tell
        for tell in TELLS
        if tell.lower() in shown.lower() and not typed_words & set(tell.lower().split())
    ]


# Every command an account manager can type (admin-only ones are refused, and say nothing),
# with lists long enough to hold the whole company, and `/crm ask` phrased many ways.
EVERY_COMMAND = [
    "help",
    "at-risk 50",
    "at-risk 50 EMEA",
    "at-risk 50 at risk",
    "at-risk mine",
    "segment",
    "segment 50 champions",
    "segment 50 at risk",
    "segment 50 loyal",
    "segment 50 need attention",
    "influencers 50",
    "similar C001",
    "similar C002",
    "similar C007",
    "similar C010",
    "customer C010",
    "customer John Smith",
    "customer Katherine",
    "customer Orbit",
    "why C002",
    "history C001",
    "model",
    "audit",
    "retrain",
    "schedule",
    "ask referrals",
    "ask who referred the most customers?",
    "ask how many referrals",
    "ask referrals by region",
    "ask customers",
    "ask top 50 customers by CLV",
    "ask customers with churn risk over 50%",
    "ask how many customers by owner",
    "ask customers by company",
    "ask customers in EMEA",
    "ask orders",
    "ask revenue by region",
    "ask orders of Katherine Johnson",
    "ask orders of Alan Turing",
    "ask customers at Orbit Analytics",
    "ask customers of @maria",
    "ask who moved from Loyal to At risk",
    "ask how many customers moved",
    "ask what should I offer Tim Berners-Lee?",
    "ask what should I offer Ada Lovelace?",
]


@pytest.mark.parametrize("line", EVERY_COMMAND)
def test_no_command_shows_a_customer_outside_the_book(book_bot: ChatBot, line: str) -> None:
    reply = book_bot.dispatcher.handle(line, user_id=ASKER, today=TODAY)
    assert not leaks(reply, typed=line), everything_shown(reply)


def test_the_app_home_shows_only_the_book(book_bot: ChatBot) -> None:
    home = book_bot.dispatcher.show("app-home", user_id=ASKER, today=TODAY)
    assert not leaks(home), everything_shown(home)
    assert set(home.customer_ids) <= BOOK


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("segment", "Segments — 4 customers in your book"),
        ("segment champions", "1 moved in, 0 moved out"),
        ("ask how many customers", "4 found"),
        ("ask how many referrals", "1 found"),  # C010 -> C001; C010 -> C006 is not hers
        ("ask who referred the most customers?", "1 found"),
        ("ask how many customers moved", "2 found"),  # C001, C002; C010 stayed
        ("ask how many orders", "10 found"),  # the book's orders only
    ],
)
def test_counts_cover_the_book_only(book_bot: ChatBot, line: str, expected: str) -> None:
    assert expected in render(book_bot.dispatcher.handle(line, user_id=ASKER, today=TODAY))


# Every way a customer is named by id: someone else's customer (C003 by email, C004 and
# C008 by user id), the erased C011 of the asker's own book, and an id nobody has.
BY_ID = [
    "customer {}",
    "why {}",
    "history {}",
    "similar {}",
    "customer {} --share",
    "ask what should I offer customer {}?",
    "ask orders of customer {}",
    "ask how many orders of customer {}",
    "ask customer {}",
]


@pytest.mark.parametrize("template", BY_ID)
@pytest.mark.parametrize("outsider", ["C003", "C004", "C008", "C011"])
def test_an_id_outside_the_book_answers_like_one_that_does_not_exist(
    book_bot: ChatBot, template: str, outsider: str
) -> None:
    theirs = book_bot.dispatcher.handle(template.format(outsider), user_id=ASKER, today=TODAY)
    nobody = book_bot.dispatcher.handle(template.format(MISSING_ID), user_id=ASKER, today=TODAY)
    assert theirs.outcome == nobody.outcome
    assert render(theirs).replace(outsider, MISSING_ID) == render(nobody)
    assert theirs.customer_ids == nobody.customer_ids == []


@pytest.mark.parametrize(
    ("outsider", "nobody"),
    [
        ("Katherine Johnson", "Zebedee Quartermain"),
        ("Alan Turing", "Zebedee Quartermain"),
        ("Orbit Analytics", "Zebedee Quartermain"),
    ],
)
def test_a_name_outside_the_book_answers_like_one_that_does_not_exist(
    book_bot: ChatBot, outsider: str, nobody: str
) -> None:
    """By name the answer must neither name the customer nor turn the name into their id
    ("Orders · customer = C004 · 0 found" said that C004 exists and is Katherine)."""
    for template in ("ask orders of {}", "ask how many customers at {}"):
        theirs = book_bot.dispatcher.handle(template.format(outsider), user_id=ASKER, today=TODAY)
        none = book_bot.dispatcher.handle(template.format(nobody), user_id=ASKER, today=TODAY)
        assert not leaks(theirs, typed=outsider), render(theirs)
        assert theirs.outcome == none.outcome
        assert theirs.table is None and none.table is None
        assert theirs.customer_ids == none.customer_ids == []
