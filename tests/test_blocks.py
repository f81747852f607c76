"""Reply -> Block Kit: Slack's limits always hold, markup is never live, shared text masked.

slack_sdk's own block models (`Block.parse(...).validate_json()`) check every rendered
block as an independent referee of Slack's limits.
"""

from __future__ import annotations

import json
import re
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from slack_sdk.models.blocks import Block

from crmbot.core.privacy import EMAIL_PATTERN, contains_pii
from crmbot.reply import Button, Reply, Table
from crmbot.slack.blocks import (
    MAX_BLOCKS,
    escape,
    fit,
    home_view,
    message,
    render_blocks,
)

LIVE_MARKUP = re.compile(r"<[!@#]")


def texts(value: Any, *, skip: tuple[str, ...] = ("value", "action_id")) -> list[str]:
    """Every string a user would see in rendered blocks (not button payloads)."""
    found: list[str] = []
    if isinstance(value, dict):
        for key, item in value.items():
            if key in skip:
                continue
            found += texts(item, skip=skip)
    elif isinstance(value, list):
        for item in value:
            found += texts(item, skip=skip)
    elif isinstance(value, str):
        found.append(value)
    return found


def assert_within_limits(blocks: list[dict[str, Any]]) -> None:
    assert 1 <= len(blocks) <= MAX_BLOCKS
    for block in blocks:
        Block.parse(block).validate_json()  # type: ignore[union-attr]
        if block["type"] == "section":
            if "text" in block:
                assert 1 <= len(block["text"]["text"]) <= 3000
            for field in block.get("fields", []):
                assert 1 <= len(field["text"]) <= 2000
            assert len(block.get("fields", [])) <= 10
        if block["type"] == "header":
            assert len(block["text"]["text"]) <= 150
        if block["type"] == "actions":
            ids = [e["action_id"] for e in block["elements"]]
            assert len(ids) == len(set(ids)) <= 25
    for text in texts(blocks):
        assert "<" not in text and ">" not in text, text


def test_mentions_and_html_are_escaped() -> None:
    reply = Reply(
        title="<!channel> alert",
        text="hello <@U123> & <!here> <#C1|general> <https://evil.example|click>",
        fields=[("<b>", "<!everyone>")],
        footer="<!subteam^S1>",
    )
    rendered = json.dumps(render_blocks(reply))
    assert not LIVE_MARKUP.search(rendered)
    assert "&lt;!channel&gt;" in rendered and "&lt;@U123&gt; &amp; &lt;!here&gt;" in rendered


def test_escape_is_complete_and_fit_never_splits_an_entity() -> None:
    assert escape("a<b>&c") == "a&lt;b&gt;&amp;c"
    cut = fit(escape("<" * 100), 10)
    assert cut.endswith("…") and len(cut) <= 10
    assert re.fullmatch(r"(&lt;)*…", cut)


def test_long_text_splits_into_sections_at_line_breaks() -> None:
    lines = [f"line {i} " + "x" * 90 for i in range(200)]
    blocks = render_blocks(Reply(title="t", text="\n".join(lines)))
    assert_within_limits(blocks)
    sections = [b["text"]["text"] for b in blocks if b["type"] == "section"]
    assert len(sections) > 1
    assert sections[0].startswith("line 0 ") and "line 199 " in "".join(sections)


def test_one_huge_line_is_cut_not_rejected() -> None:
    blocks = render_blocks(Reply(title="x" * 500, text="y" * 20_000))
    assert_within_limits(blocks)
    assert len(blocks[0]["text"]["text"]) == 150


def test_many_fields_go_ten_per_section() -> None:
    reply = Reply(title="card", fields=[(f"label {i}", "v" * 3000) for i in range(25)])
    blocks = render_blocks(reply)
    assert_within_limits(blocks)
    field_counts = [len(b["fields"]) for b in blocks if "fields" in b]
    assert field_counts == [10, 10, 5]


def test_a_huge_table_fits_in_fifty_blocks_and_says_what_was_left_out() -> None:
    table = Table(columns=["#", "name"], rows=[[str(i), "n" * 60] for i in range(5000)])
    blocks = render_blocks(Reply(title="big", table=table, footer="run 3"))
    assert_within_limits(blocks)
    assert blocks[-1]["type"] == "context"
    assert "more rows not shown" in blocks[-1]["elements"][0]["text"]
    code = [b["text"]["text"] for b in blocks if b["type"] == "section"]
    assert all(c.startswith("```\n") and c.endswith("\n```") for c in code)


def test_backticks_in_cells_cannot_break_the_code_block() -> None:
    table = Table(columns=["a"], rows=[["```<!channel>```"]])
    code = render_blocks(Reply(title="t", table=table))[1]["text"]["text"]
    assert code.count("```") == 2 and "&lt;!channel&gt;" in code


def test_shared_replies_are_masked_private_ones_are_not() -> None:
    reply = Reply(
        title="Ada",
        fields=[("Email", "ada@example.com"), ("Phone", "+44 20 7946 0001")],
        contains_pii=True,
    )
    private = json.dumps(message(reply))
    shared = json.dumps(message(reply, shared=True), ensure_ascii=False)
    assert "ada@example.com" in private
    assert not contains_pii(shared) and "a•••@e•••" in shared
    reply.private = False  # --share sets this; masking follows it too
    assert not contains_pii(json.dumps(message(reply)))


def test_duplicate_buttons_get_unique_action_ids_and_labels_fit() -> None:
    buttons = [Button("Why? " + "x" * 100, "crm_why", f"C{i}") for i in range(30)]
    blocks = render_blocks(Reply(title="t", buttons=buttons))
    assert_within_limits(blocks)
    elements = blocks[-1]["elements"]
    assert len(elements) == 25
    assert elements[0]["action_id"] == "crm_why" and elements[1]["action_id"] == "crm_why.1"
    assert all(len(e["text"]["text"]) <= 75 for e in elements)


def test_an_empty_reply_still_renders() -> None:
    assert_within_limits(render_blocks(Reply(title="")))


def test_home_view_escapes_and_fits() -> None:
    rows = [(f"<!channel> customer {i}", Button("Why?", "crm_why", f"C{i}")) for i in range(200)]
    view = home_view(title="Your book <@U1>", sections=[("At risk", rows)], context="run 3")
    assert view["type"] == "home" and len(view["blocks"]) <= 100
    assert not LIVE_MARKUP.search(json.dumps(view))


# -- properties ------------------------------------------------------------------------

hostile_text = st.one_of(
    st.text(max_size=400),
    st.sampled_from(
        [
            "<!channel>",
            "<@U0HACK>",
            "<!here|here>",
            "<#C123>",
            "&lt;",
            "```",
            "*_~`",
            "\u202e",
            "a@b.co",
            "+1 (555) 010-9999",
            "<https://x.example|y>",
            "\x00",
            "🙂" * 50,
        ]
    ),
    st.text(alphabet="<>&@!#|*`_~ \n", max_size=4000),
)

buttons = st.builds(
    Button,
    label=hostile_text,
    action_id=st.sampled_from(["crm_why", "crm_similar", "crm_at_risk", "crm_customer"]),
    value=st.text(max_size=3000),
)

tables = st.builds(
    Table,
    columns=st.lists(hostile_text, min_size=1, max_size=8),
    rows=st.lists(st.lists(hostile_text, max_size=8), max_size=120),
)

replies = st.builds(
    Reply,
    title=hostile_text,
    text=st.one_of(hostile_text, st.text(max_size=12_000)),
    fields=st.lists(st.tuples(hostile_text, hostile_text), max_size=60),
    table=st.one_of(st.none(), tables),
    buttons=st.lists(buttons, max_size=40),
    private=st.booleans(),
    footer=hostile_text,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(reply=replies, shared=st.booleans())
def test_any_reply_renders_within_limits_with_nothing_live(reply: Reply, shared: bool) -> None:
    rendered = message(reply, shared=shared)
    assert_within_limits(rendered["blocks"])
    assert len(rendered["text"]) <= 3000 and "<" not in rendered["text"]
    if shared or not reply.private:
        for text in texts(rendered):
            assert not EMAIL_PATTERN.search(text), text
