"""Big answers as CSV files: "Export all N as CSV".

A list in a message shows what fits (the top 10 to 100 rows). When more rows match, the
reply carries a button that runs the same command again with `--csv` (`export_button`),
and the command then writes every row, up to `MAX_EXPORT_ROWS`, into a CSV file
(`write_csv`) that the reply carries as its `Attachment`. Slack uploads the file to the
asker's direct message with the bot (to the channel with `--share`); the shell prints where
it saved it.

Every cell goes through `crmbot.core.spreadsheet`, so no name or id runs as a formula when
a spreadsheet opens the file. A shared export has its email and phone columns masked, and
any email or phone number inside other text too, like a shared message.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from crmbot.core import spreadsheet
from crmbot.core.privacy import mask_email, mask_phone, mask_pii
from crmbot.reply import Attachment, Button

# Rows one export writes at most: a file a spreadsheet opens in a moment (and that a
# command writes within seconds at a million customers).
MAX_EXPORT_ROWS = 100_000
EXPORT_FLAG = "--csv"
# Column names whose values are masked whole in a shared export.
EMAIL_COLUMN = "Email"
PHONE_COLUMN = "Phone"


def export_label(found: int | None) -> str:
    """The button's words: "Export all 1,234 as CSV" (the count unknown: "Export all as
    CSV"; above the limit: "Export the first 100,000 of 250,000 as CSV")."""
    if found is None:
        return "Export all as CSV"
    if found > MAX_EXPORT_ROWS:
        return f"Export the first {MAX_EXPORT_ROWS:,} of {found:,} as CSV"
    return f"Export all {found:,} as CSV"


def export_button(action_id: str, arguments: str, found: int | None = None) -> Button:
    """A button that runs the command of `action_id` again with `arguments` and `--csv`."""
    return Button(export_label(found), action_id, f"{arguments} {EXPORT_FLAG}".strip())


def _slug(title: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")[:48] or "export"


def _masked(value: Any, how: str | None) -> Any:
    if how == EMAIL_COLUMN:
        return mask_email(value) if value else value
    if how == PHONE_COLUMN:
        return mask_phone(value) if value else value
    return mask_pii(value) if isinstance(value, str) else value


def write_csv(
    *,
    title: str,
    columns: Sequence[str],
    rows: Iterable[Sequence[Any]],
    shared: bool,
    stamp: str,
    folder: Path | None = None,
) -> Attachment:
    """Write `columns` and at most `MAX_EXPORT_ROWS` of `rows` (streamed: any iterable)
    into a new CSV file; masked of emails and phone numbers when `shared`. `stamp` makes
    the file name unique (e.g. the time), `folder` defaults to a new temporary one."""
    directory = folder or Path(tempfile.mkdtemp(prefix="crmbot-export-"))
    directory.mkdir(parents=True, exist_ok=True)
    filename = f"{_slug(title)}-{stamp}.csv"
    path = directory / filename
    masks = [name if name in (EMAIL_COLUMN, PHONE_COLUMN) else None for name in columns]
    written = 0
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = spreadsheet.writer(handle)
        writer.writerow(columns)
        for row in rows:
            if written >= MAX_EXPORT_ROWS:
                break
            if shared:
                row = [_masked(value, how) for value, how in zip(row, masks, strict=False)]
            writer.writerow(row)
            written += 1
    return Attachment(path=str(path), filename=filename, title=title, rows=written)


def exported_text(attachment: Attachment, found: int | None, *, shared: bool) -> str:
    """What the reply of an export says: how many rows, and what was masked."""
    rows = f"{attachment.rows:,} row{'s' if attachment.rows != 1 else ''}"
    text = f"{rows[:1].upper()}{rows[1:]} as CSV, in `{attachment.filename}`."
    if found is not None and found > attachment.rows:
        text += f" The first {attachment.rows:,} of {found:,}: ask more narrowly for the rest."
    if shared:
        text += " Emails and phone numbers are masked in a shared export."
    return text
