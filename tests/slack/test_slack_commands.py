"""Slash commands through the real Bolt app: each command's answer, --share, charts, slow
work acknowledged at once, action ids, and hostile command text.
"""

from __future__ import annotations

import re
import time

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from slack_sdk.models.blocks import Block

from crmbot.core.privacy import contains_pii
from crmbot.slack.app import action_command_text, strip_mention
from tests.support.slack_bot import Bot, text_of

# -- commands ------------------------------------------------------------------------------


def test_a_command_is_acknowledged_empty_then_answered_ephemerally(bot: Bot) -> None:
    response, path = bot.command("customer ada lovelace")
    assert response.status == 200 and not response.body
    answer = bot.answer(path)
    assert answer["response_type"] == "ephemeral"
    text = text_of(answer)
    assert "Ada Lovelace (C001)" in text and "Champions (moved from Loyal)" in text
    assert "ada@analytical.example" in text  # private: only the asker sees it
    actions = [b for b in answer["blocks"] if b["type"] == "actions"][0]["elements"]
    assert [a["action_id"] for a in actions][:3] == ["crm_why", "crm_similar", "crm_history"]
    for block in answer["blocks"]:
        Block.parse(block).validate_json()  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "crmbot commands"),
        ("help at-risk", "value at risk"),
        ("at-risk 3", "Top 3 accounts at risk"),
        ("at-risk emea", "region EMEA"),
        ("at-risk mine", "Grace Hopper"),
        ("segment", "Segments — 11 customers"),
        ("segment cant lose", "Segment Can't lose them"),
        ("influencers 2", "Margaret Hamilton"),
        ("why C002", "two unresolved tickets"),
        ("similar C001", "Customers similar to Ada Lovelace"),
        ("history C001", "Order history — Ada Lovelace"),
        ("model", "roc_auc 0.810"),
        ("customer john smith", "matches more than one customer"),
        ("customer Tim Bernard", "did you mean Tim Berners-Lee"),
        ("frobnicate", "I don't know the command"),
    ],
)
def test_each_command_answers(bot: Bot, text: str, expected: str) -> None:
    _, path = bot.command(text)
    assert expected in text_of(bot.answer(path))


def test_share_posts_in_the_channel_with_pii_masked(bot: Bot) -> None:
    _, path = bot.command("customer C001 --share")
    answer = bot.answer(path)
    assert answer["response_type"] == "in_channel"
    text = text_of(answer)
    assert "Ada Lovelace" in text and not contains_pii(text)
    assert "a•••@a•••" in text


def test_charts_are_uploaded_to_the_askers_dm_when_private(bot: Bot) -> None:
    _, path = bot.command("segment")
    bot.answer(path)
    completed = bot.wait_for(
        lambda rs: [r for r in rs if r.method == "files.completeUploadExternal"]
    )
    assert completed[0].params["channel_id"] == "DAM1"  # conversations.open with UAM1
    uploads = [r for r in bot.slack.requests if r.path.startswith("/upload/")]
    assert len(uploads) == 1 and int(uploads[0].headers["Content-Length"]) > 1000  # a PNG


def test_shared_charts_go_to_the_channel(bot: Bot) -> None:
    bot.command("history C001 --share")
    completed = bot.wait_for(
        lambda rs: [r for r in rs if r.method == "files.completeUploadExternal"]
    )
    assert completed[0].params["channel_id"] == "C0CRM"


# -- slow work -----------------------------------------------------------------------------


def test_a_slow_command_is_acknowledged_at_once_and_answered_later(bot: Bot) -> None:
    started = time.perf_counter()
    response, path = bot.command("retrain", user="UADMIN")
    acked_in = time.perf_counter() - started
    assert response.status == 200 and acked_in < 1.0
    assert "Working on `retrain`" in (response.body or "")
    assert not [
        r
        for r in bot.slack.requests
        if r.path == path and "Retrain" in text_of(r.params) and "finished" in text_of(r.params)
    ]
    # The first answer that is not a progress note is the result.
    final = bot.wait_for(
        lambda rs: [r for r in rs if r.path == path and "⏳" not in text_of(r.params)],
        timeout=120,
    )
    said = text_of(final[0].params)
    assert "Retrain failed" in said or "Retrain finished" in said, said
    assert final[0].params["response_type"] == "ephemeral"
    progress = [p for p in bot.answers(path) if "⏳" in text_of(p)]
    assert 1 <= len(progress) <= 3  # a response_url takes five answers; keep room
    rows = [r for r in bot.audit_rows() if r.command == "retrain"]
    assert len(rows) == 1 and rows[0].user_id == "UADMIN"


# -- helpers -------------------------------------------------------------------------------


def test_action_ids_map_to_commands() -> None:
    assert action_command_text("crm_at_risk", "") == "at-risk"
    assert action_command_text("crm_why.2", "C1") == "why C1"
    assert strip_mention("<@UBOT> customer 1") == "customer 1"
    assert strip_mention("<@UBOT|crmbot>: help") == "help"


# -- hostile input -------------------------------------------------------------------------

COMMAND_WORDS = [
    "customer",
    "at-risk",
    "segment",
    "influencers",
    "why",
    "similar",
    "history",
    "model",
    "help",
    "audit",
    "cust",
    "risk",
    "",
]
HOSTILE = [
    "<!channel>",
    "<!here>",
    "<@U0HACK>",
    "<#C1|x>",
    "' OR 1=1 --",
    "%",
    "\\",
    '"',
    "'",
    "--share",
    "&amp;",
    "```",
    "\u202e",
    "🙂",
    "Robert'); DROP TABLE customer;--",
    "a@b.co",
    "+1 555 010 9999",
    "\x00",
    "ｃｕｓｔｏｍｅｒ",
]


@hypothesis_settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    word=st.sampled_from(COMMAND_WORDS),
    parts=st.lists(st.one_of(st.sampled_from(HOSTILE), st.text(max_size=40)), max_size=6),
    padding=st.sampled_from([0, 0, 0, 3000, 10_000]),
)
def test_any_command_text_gets_a_valid_reply_and_nothing_live(
    bot: Bot, word: str, parts: list[str], padding: int
) -> None:
    text = " ".join([word, *parts]) + "x" * padding
    response, path = bot.command(text)
    assert response.status == 200
    answer = bot.answer(path)
    blocks_ = answer["blocks"]
    assert 1 <= len(blocks_) <= 50
    for block in blocks_:
        Block.parse(block).validate_json()  # type: ignore[union-attr]
    # The one mention written on purpose: a card's account owner (from the CRM's owner
    # field, never from what was typed or a customer's data).
    rendered = re.sub(r"<@(UAM1|UAM2)>", "", text_of(answer))
    assert "<!" not in rendered and "<@" not in rendered and "<#" not in rendered
    assert "failed on my side" not in rendered, rendered[:300]
    if answer.get("response_type") == "in_channel":
        assert not contains_pii(rendered)
