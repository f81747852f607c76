"""Render a Reply as plain text for the local shell (and `--dry-run` digests)."""

from __future__ import annotations

import re
from pathlib import Path

from crmbot.core.privacy import mask_pii
from crmbot.reply import Reply

# Only real link targets: a usage line such as `customer <id | email | name>` is not a link.
_SLACK_LINK = re.compile(r"<((?:https?://|mailto:|[#@])[^|>\s]+)\|([^>]+)>")


def _plain(text: str) -> str:
    # Slack mrkdwn links read as their label in a terminal.
    return _SLACK_LINK.sub(r"\2", text)


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


def render(reply: Reply, *, chart_path: Path | None = None) -> str:
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
    for section in reply.sections:
        lines = [section.title]
        for item in section.items:
            text = _plain(item.text).replace("*", "").replace("\n", "\n    ")
            button = f"  [{item.button.label}]" if item.button is not None else ""
            lines.append(f"  • {text}{button}")
        parts.append("\n".join(lines))
    if reply.table:
        parts.append(render_table(reply.table.columns, reply.table.rows))
    if chart_path is not None:
        parts.append(f"[chart saved to {chart_path}]")
    if reply.buttons:
        parts.append("Next: " + " · ".join(f"[{b.label}]" for b in reply.buttons))
    if reply.footer:
        parts.append(_plain(reply.footer))
    text = "\n\n".join(p for p in parts if p)
    return text if reply.private else mask_pii(text)
