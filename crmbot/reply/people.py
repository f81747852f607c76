"""People in a reply: an account owner written as a reference each transport shows its way.

A customer's `owner` is whatever the CRM holds: a Slack user id (`U0123ABCD`), an email,
or a handle. A command writes it with `owner_ref(owner)`; the transport finds the person
through its `People` directory and shows them — Slack as a mention (`<@U0123ABCD>`) in
text and fields and by name in tables, the shell by name. Without a directory (or for an
owner nobody matches) the owner is shown as stored, an email masked in lists.

The reference is a marked span only this process can write: its marker carries a random
word drawn at start-up, so customer data or typed text can never pose as one and mention
someone.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from crmbot.core.privacy import mask_pii
from crmbot.reply.format import MISSING, clip

_EDGE = "\u2063"  # invisible separator
_JOIN = "\u2064"  # invisible plus: no email or phone pattern runs across it
_WORD = secrets.token_hex(6)
_REFERENCE = re.compile(f"{_EDGE}{_WORD}{_JOIN}([^{_EDGE}]{{1,254}}){_EDGE}")
SLACK_USER_ID = re.compile(r"^[UW][A-Z0-9]{2,}$")
LIST_CHARS = 20


@dataclass(frozen=True)
class Person:
    """Someone an owner field names, as the chat workspace knows them."""

    user_id: str | None  # the chat user (Slack: U…), when known
    name: str  # what people call them ("" when the workspace does not say)


class People(Protocol):
    """Who an owner field names: a Slack user id or an email, looked up (and cached) by
    the transport; None when nobody matches or the lookup is not possible."""

    def person(self, owner: str) -> Person | None: ...


def owner_ref(owner: str | None) -> str:
    """`owner` as a reference the transport shows as a person; MISSING when empty."""
    owner = (owner or "").strip()
    if not owner:
        return MISSING
    return f"{_EDGE}{_WORD}{_JOIN}{owner[:254]}{_EDGE}"


def split(text: str) -> list[tuple[str, bool]]:
    """`text` in pieces, each (piece, is_owner): plain text, and the owners referenced."""
    pieces: list[tuple[str, bool]] = []
    position = 0
    for match in _REFERENCE.finditer(text):
        if match.start() > position:
            pieces.append((text[position : match.start()], False))
        pieces.append((match.group(1), True))
        position = match.end()
    if position < len(text):
        pieces.append((text[position:], False))
    return pieces


def replace(text: str, show: Callable[[str], str]) -> str:
    """`text` with every owner reference replaced by `show(owner)`."""
    return _REFERENCE.sub(lambda match: show(match.group(1)), text)


def stored(owner: str, *, in_list: bool, shared: bool) -> str:
    """An owner nobody resolved, as stored: an email masked in lists and shared replies."""
    if in_list or shared:
        owner = mask_pii(owner)
    return clip(owner, LIST_CHARS) if in_list else owner


def name_of(owner: str, people: People | None, *, in_list: bool, shared: bool) -> str:
    """An owner as a name (the shell, tables): the person's name when the directory knows
    it, else the owner as stored."""
    person = people.person(owner) if people is not None else None
    if person is not None and person.name:
        return clip(person.name, LIST_CHARS) if in_list else person.name
    return stored(owner, in_list=in_list, shared=shared)


def plain(text: str, people: People | None = None, *, shared: bool = False) -> str:
    """`text` with owners as names: what a transport without mentions shows."""
    return replace(text, lambda owner: name_of(owner, people, in_list=False, shared=shared))
