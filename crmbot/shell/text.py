"""Render a Reply as plain text for the local shell (and `--dry-run` digests)."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

from crmbot.core.privacy import mask_pii
from crmbot.reply import Reply, Section, Table
from crmbot.reply.people import People, name_of, plain
from crmbot.reply.people import replace as replace_owners

# Only real link targets: a usage line such as `customer <id | email | name>` is not a link.
_SLACK_LINK = re.compile(r"<((?:https?://|mailto:|[#@])[^|>\s]+)\|([^>]+)>")


def _plain(text: str) -> str:
    # Slack mrkdwn links read as their label in a terminal.
    return _SLACK_LINK.sub(r"\2", text)


def with_names(reply: Reply, people: People | None) -> Reply:
    """`reply` with account owners written as names (`crmbot.reply.people`): the person's
    name when `people` knows it, else the owner as stored (an email masked in lists)."""
    shared = not reply.private

    def names(text: str) -> str:
        return plain(text, people, shared=shared)

    table = reply.table
    if table is not None:
        table = Table(
            columns=table.columns,
            rows=[
                [
                    replace_owners(c, lambda o: name_of(o, people, in_list=True, shared=shared))
                    for c in row
                ]
                for row in table.rows
            ],
        )
    return dataclasses.replace(
        reply,
        title=names(reply.title),
        text=names(reply.text),
        fields=[(label, names(value)) for label, value in reply.fields],
        table=table,
        sections=[
            Section(s.title, [dataclasses.replace(i, text=names(i.text)) for i in s.items])
            for s in reply.sections
        ],
        footer=names(reply.footer),
    )


def render_table(columns: list[str], rows: list[list[str]]) -> str:
    widths = [len(c) for c in columns]
    for row in rows:
        for i, cell in enumerate(row[: len(widths)]):
            widths[i] = max(widths[i], len(cell))

    def line(cells: list[str]) -> str:
        return "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=False)).rstrip()

    out = [line(columns), line(["-" * w for w in widths])]
    out += [line(row) for row in rows]
    return "\n".join(out)


def render(
    reply: Reply,
    *,
    chart_path: Path | None = None,
    people: People | None = None,
    file_path: Path | None = None,
) -> str:
    reply = with_names(reply, people)
    parts: list[str] = []
    if reply.title:
        parts.append(f"== {reply.title} ==")
    if reply.text:
        parts.append(_plain(reply.text))
    if reply.fields:
        width = max(len(label) for label, _ in reply.fields)
        parts.append(
            "\n".join(f"{label.ljust(width)} : {_plain(value)}" for label, value in reply.fields)
        )
    sections = []
    for section in reply.sections:
        lines = [section.title]
        for item in section.items:
            text = _plain(item.text).replace("*", "").replace("\n", "\n    ")
            button = f"  [{item.button.label}]" if item.button is not None else ""
            lines.append(f"  • {text}{button}")
            if item.actions:
                lines.append("    " + " ".join(f"[{b.label}]" for b in item.actions))
        sections.append("\n".join(lines))
    if reply.table:
        parts.append(render_table(reply.table.columns, reply.table.rows))
    # Under a table, the sections are about its rows: they follow it (as in Slack).
    parts += sections
    if chart_path is not None:
        parts.append(f"[chart saved to {chart_path}]")
    if file_path is not None:
        parts.append(f"[CSV saved to {file_path}]")
    if reply.buttons:
        parts.append(
            "Next: "
            + " · ".join(
                f"[{b.label}: {b.url}]" if b.url else f"[{b.label}]" for b in reply.buttons
            )
        )
    if reply.footer:
        parts.append(_plain(reply.footer))
    text = "\n\n".join(p for p in parts if p)
    return text if reply.private else mask_pii(text)
