"""Render a Reply as Slack Block Kit, always inside Slack's limits.

Slack rejects a whole message when one limit is broken, so every piece is cut to size
here: at most 50 blocks, section text up to 3000 characters, at most 10 fields of up to
2000 characters per section, headers up to 150, button labels up to 75. Every piece of text
is escaped (`&`, `<`, `>`), so a customer named `<!channel>` or a user typing `<@U123>`
is shown as text and never notifies anyone; a shared reply is also masked of emails and
phone numbers. The one mention written on purpose is an account owner
(`crmbot.reply.people.owner_ref`), resolved through the `People` directory given: a
mention in text and fields, a name in tables, headers and button labels.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from crmbot.core.privacy import mask_pii
from crmbot.reply import Button, Item, Reply, Section, Table
from crmbot.reply.people import SLACK_USER_ID, People, name_of, replace, split, stored

MAX_BLOCKS = 50
MAX_HOME_BLOCKS = 100
MAX_SECTION_TEXT = 3000
MAX_FIELDS = 10
MAX_FIELD_TEXT = 2000
MAX_HEADER_TEXT = 150
MAX_BUTTON_TEXT = 75
MAX_BUTTON_VALUE = 2000
MAX_BUTTON_URL = 3000
MAX_ACTION_ID = 255
MAX_ACTIONS = 25
MAX_CONTEXT_TEXT = 2000
MAX_FALLBACK_TEXT = 3000
ELLIPSIS = "…"

Block = dict[str, Any]


def escape(text: str) -> str:
    """Slack's three control characters as entities: `<!channel>` becomes inert text."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def fit(text: str, limit: int) -> str:
    """Cut already-escaped `text` to `limit` characters without splitting an entity."""
    if len(text) <= limit:
        return text
    cut = text[: limit - len(ELLIPSIS)]
    amp = cut.rfind("&")
    if amp != -1 and ";" not in cut[amp:]:
        cut = cut[:amp]  # a half entity like "&am" would show as garbage
    mention = cut.rfind("<")
    if mention != -1 and ">" not in cut[mention:]:
        cut = cut[:mention]  # nor would half a mention like "<@U12"
    return cut + ELLIPSIS


class _Text:
    """Prepares text for a message: masked when shared, then escaped; account owners as
    mentions (`__call__`, mrkdwn) or names (`names`, before plain text and tables)."""

    def __init__(self, *, shared: bool, people: People | None = None) -> None:
        self.shared = shared
        self.people = people

    def __call__(self, text: str | None) -> str:
        out = []
        for piece, is_owner in split(text or ""):
            out.append(self._mention(piece) if is_owner else self._plain(piece))
        return "".join(out)

    def _plain(self, text: str) -> str:
        return escape(mask_pii(text) if self.shared else text)

    def _mention(self, owner: str) -> str:
        if SLACK_USER_ID.match(owner):
            return f"<@{owner}>"  # Slack shows the name; nothing to look up
        person = self.people.person(owner) if self.people is not None else None
        user_id = person.user_id if person is not None else None
        if user_id and SLACK_USER_ID.match(user_id):
            return f"<@{user_id}>"
        return self._plain(stored(owner, in_list=False, shared=self.shared))

    def names(self, text: str | None, *, in_list: bool = False) -> str:
        """`text` with owners as names, not yet escaped (plain text, table cells)."""
        return replace(
            text or "",
            lambda owner: name_of(owner, self.people, in_list=in_list, shared=self.shared),
        )


def _section(text: str) -> Block:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text or " "}}


def _paragraph_sections(text: str, limit: int = MAX_SECTION_TEXT) -> list[Block]:
    """Split escaped text into sections of at most `limit`, at line breaks where possible."""
    chunks: list[str] = []
    current = ""
    for line in text.split("\n"):
        while len(line) > limit:
            if current:
                chunks.append(current)
                current = ""
            piece = fit(line, limit)
            chunks.append(piece)
            line = line[len(piece) - len(ELLIPSIS) :] if piece.endswith(ELLIPSIS) else ""
        candidate = f"{current}\n{line}" if current else line
        if len(candidate) > limit:
            chunks.append(current)
            current = line
        else:
            current = candidate
    if current.strip():
        chunks.append(current)
    return [_section(chunk) for chunk in chunks if chunk.strip()]


def _table_lines(table: Table, clean: _Text) -> list[str]:
    widths = [len(c) for c in table.columns]
    # Mentions do not render in a code block: owners are written by name.
    rows = [[_cell(clean.names(c, in_list=True)) for c in row[: len(widths)]] for row in table.rows]
    for row in rows:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))

    def line(cells: Sequence[str]) -> str:
        return "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=False)).rstrip()

    header = [_cell(c) for c in table.columns]
    lines = [line(header), line(["-" * w for w in widths])]
    lines += [line(row) for row in rows]
    return [clean(text) for text in lines]


def _cell(value: object) -> str:
    # Backticks would close the code block the table is drawn in.
    return " ".join(str(value).split()).replace("`", "'")


def _table_sections(table: Table, clean: _Text, budget: int) -> tuple[list[Block], int]:
    """The table as code-block sections within `budget` blocks; rows left out."""
    lines = _table_lines(table, clean)
    fence = 8  # "```\n" + "\n```"
    limit = MAX_SECTION_TEXT - fence
    sections: list[list[str]] = [[]]
    size = 0
    for text in lines:
        text = fit(text, limit)
        if size + len(text) + 1 > limit and sections[-1]:
            sections.append([])
            size = 0
        sections[-1].append(text)
        size += len(text) + 1
    left_out = 0
    if len(sections) > budget:
        kept = sections[: max(budget, 0)]
        shown = sum(len(s) for s in kept)
        left_out = max(len(lines) - max(shown, 2), 0)
        sections = kept
    blocks = [_section("```\n" + "\n".join(s) + "\n```") for s in sections if s]
    return blocks, left_out


def _field(label: str, value: str, clean: _Text) -> dict[str, str]:
    title = clean(label)
    body = clean(value) or "—"
    text = f"*{title}*\n{body}" if title else body
    return {"type": "mrkdwn", "text": fit(text, MAX_FIELD_TEXT)}


def _buttons(buttons: Sequence[Button], clean: _Text) -> Block | None:
    elements = []
    seen: dict[str, int] = {}
    for button in list(buttons)[:MAX_ACTIONS]:
        # Action ids must be unique within a block; the transport strips the suffix.
        count = seen.get(button.action_id, 0)
        seen[button.action_id] = count + 1
        action_id = button.action_id if count == 0 else f"{button.action_id}.{count}"
        element: Block = {
            "type": "button",
            "text": {
                "type": "plain_text",
                "text": fit(clean(clean.names(button.label)) or "Open", MAX_BUTTON_TEXT),
                "emoji": True,
            },
            "action_id": action_id[:MAX_ACTION_ID],
            "value": button.value[:MAX_BUTTON_VALUE],
        }
        if button.style:
            element["style"] = button.style
        if button.url:
            element["url"] = button.url[:MAX_BUTTON_URL]
        elements.append(element)
    if not elements:
        return None
    return {"type": "actions", "elements": elements}


def render_blocks(
    reply: Reply, *, shared: bool = False, people: People | None = None
) -> list[Block]:
    """The Block Kit blocks for `reply`; `shared` masks emails and phone numbers; `people`
    resolves account owners to Slack users."""
    clean = _Text(shared=shared or not reply.private, people=people)
    head: list[Block] = []
    if reply.title:
        head.append(
            {
                "type": "header",
                "text": {
                    "type": "plain_text",
                    "text": fit(
                        clean(clean.names(" ".join(reply.title.split()))) or " ",
                        MAX_HEADER_TEXT,
                    ),
                    "emoji": True,
                },
            }
        )
    body: list[Block] = []
    if reply.text:
        body += _paragraph_sections(clean(reply.text))
    for start in range(0, len(reply.fields), MAX_FIELDS):
        fields = [_field(label, value, clean) for label, value in reply.fields[start:][:MAX_FIELDS]]
        body.append({"type": "section", "fields": fields})
    sections = _section_blocks(reply.sections, clean)
    # Under a table, the sections are about its rows (the buttons that act on them): they
    # follow it.
    with_table = reply.table is not None and bool(reply.table.columns)
    under_table = sections[: MAX_BLOCKS // 2] if with_table else []
    if not with_table:
        body += sections
    tail: list[Block] = []
    actions = _buttons(reply.buttons, clean)
    if actions is not None:
        tail.append(actions)
    footer = clean(reply.footer)
    # Room for the header, the buttons, the footer and a "rows left out" note.
    budget = MAX_BLOCKS - len(head) - len(tail) - 2 - len(under_table)
    if len(body) > budget:
        body = body[: budget - 1] + [_section(fit("(reply cut to fit in one Slack message)", 80))]
    if reply.table is not None and reply.table.columns:
        table_blocks, left_out = _table_sections(reply.table, clean, budget - len(body))
        body += table_blocks
        if left_out:
            note = f"{left_out} more rows not shown; ask for fewer (e.g. a smaller N)."
            footer = f"{note} {footer}".strip()
    body += under_table
    if footer:
        tail.append(
            {
                "type": "context",
                "elements": [{"type": "mrkdwn", "text": fit(footer, MAX_CONTEXT_TEXT)}],
            }
        )
    blocks = head + body + tail
    if not blocks:
        blocks = [_section("Done.")]
    return blocks[:MAX_BLOCKS]


def fallback_text(reply: Reply, *, shared: bool = False, people: People | None = None) -> str:
    """The plain `text` Slack shows in notifications and where blocks cannot render."""
    clean = _Text(shared=shared or not reply.private, people=people)
    text = reply.title or reply.text or "crmbot"
    return fit(clean(clean.names(" ".join(text.split()))), MAX_FALLBACK_TEXT)


def message(reply: Reply, *, shared: bool = False, people: People | None = None) -> dict[str, Any]:
    """`text` and `blocks` for chat.postMessage / chat.postEphemeral / respond()."""
    return {
        "text": fallback_text(reply, shared=shared, people=people),
        "blocks": render_blocks(reply, shared=shared, people=people),
    }


def _section_blocks(sections: Sequence[Section], clean: _Text) -> list[Block]:
    """Titled lists whose rows may each carry a button (e.g. "Why?")."""
    blocks: list[Block] = []
    for section in sections:
        blocks.append({"type": "divider"})
        blocks.append(_section(fit(f"*{clean(section.title)}*", MAX_SECTION_TEXT)))
        for item in section.items:
            block = _section(fit(clean(item.text), MAX_SECTION_TEXT))
            if item.button is not None:
                actions = _buttons([item.button], clean)
                assert actions is not None
                block["accessory"] = actions["elements"][0]
            blocks.append(block)
            row = _buttons(item.actions, clean)
            if row is not None:
                blocks.append(row)
    return blocks


def home(reply: Reply, people: People | None = None) -> dict[str, Any]:
    """The App Home view for a Reply (the registered `app-home` view, or why not)."""
    return home_view(
        people=people,
        title=reply.title or "crmbot",
        sections=[
            (section.title, [(item.text, item.button) for item in section.items])
            for section in reply.sections
        ],
        context=reply.footer or reply.text,
        intro=reply.text if reply.footer else "",
    )


def home_view(
    *,
    title: str,
    sections: Sequence[tuple[str, Sequence[tuple[str, Button | None]]]],
    context: str,
    intro: str = "",
    people: People | None = None,
) -> dict[str, Any]:
    """An App Home view: a header, a context line, then titled lists whose rows may each
    carry a button (e.g. "Why?"). Text is escaped like every message."""
    clean = _Text(shared=False, people=people)
    blocks: list[Block] = [
        {
            "type": "header",
            "text": {"type": "plain_text", "text": fit(clean(title), MAX_HEADER_TEXT)},
        },
        {"type": "context", "elements": [{"type": "mrkdwn", "text": fit(clean(context), 2000)}]},
    ]
    if intro:
        blocks += _paragraph_sections(clean(intro))
    blocks += _section_blocks(
        [
            Section(heading, [Item(text, button) for text, button in rows])
            for heading, rows in sections
        ],
        clean,
    )
    return {"type": "home", "blocks": blocks[:MAX_HOME_BLOCKS]}
