"""What a command returns: plain data that each transport renders its own way.

Nothing here knows Slack's JSON; `crmbot.slack.blocks` turns a Reply into Block Kit and
`crmbot.shell.text` into the shell's text.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal


@dataclass(frozen=True)
class Button:
    label: str
    action_id: str  # e.g. "crm_why"; the Slack transport routes it back to a command
    value: str = ""  # the command's arguments, e.g. the customer id
    style: Literal["primary", "danger"] | None = None
    # A link button ("Open in CRM"): opens this address; the click runs no command.
    url: str | None = None


@dataclass(frozen=True)
class Table:
    columns: list[str]
    rows: list[list[str]]


@dataclass(frozen=True)
class Chart:
    """A simple chart; transports draw it with matplotlib."""

    kind: Literal["bar", "line"]
    title: str
    labels: list[str]
    values: list[float]
    x_label: str = ""
    y_label: str = ""


@dataclass(frozen=True)
class Item:
    """One entry of a section: a line of text and, optionally, the button beside it."""

    text: str
    button: Button | None = None
    # More buttons, shown in a row under the line (e.g. the account actions of an alert).
    actions: tuple[Button, ...] = ()


@dataclass(frozen=True)
class Section:
    """A titled list of items (the App Home's "Most at risk", "Top value")."""

    title: str
    items: list[Item]


@dataclass(frozen=True)
class Attachment:
    """A file that goes with a reply: a CSV export the command wrote (`crmbot.reply.export`).
    Slack uploads it (to the asker's DM with the bot, or the channel when shared) and
    deletes it; the shell moves it beside its charts and prints the path."""

    path: str
    filename: str
    title: str
    rows: int


@dataclass
class Reply:
    title: str
    text: str = ""
    fields: list[tuple[str, str]] = field(default_factory=list)
    table: Table | None = None
    buttons: list[Button] = field(default_factory=list)
    chart: Chart | None = None
    sections: list[Section] = field(default_factory=list)
    # Only the asker sees it (Slack: ephemeral). A shared reply is masked of PII.
    private: bool = True
    # The reply carries emails or phone numbers; the transport masks them when shared.
    contains_pii: bool = False
    # Who the reply is about, for the audit log (external customer ids, never PII).
    customer_ids: list[str] = field(default_factory=list)
    # ok | denied | error | not_found | usage
    outcome: str = "ok"
    footer: str = ""
    # A file to send with the reply (an export); None for most replies.
    attachment: Attachment | None = None

    @classmethod
    def error(cls, message: str, *, outcome: str = "error") -> Reply:
        return cls(title="", text=message, outcome=outcome)

    @classmethod
    def usage(cls, message: str) -> Reply:
        return cls(title="", text=message, outcome="usage")
